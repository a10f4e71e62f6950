//! Any bytes as a frame on the explicit broker connection (ESCAPE-CASES 33):
//! decoding a request, a reply and each reply body never panics, and a
//! request that decodes encodes back to a frame that decodes to itself.
#![no_main]

use capexec_client::wire::{decode_addrs, decode_reply, Group, Passwd, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_op, id, req) = Request::decode(data);
    if let Ok(req) = req {
        let frame = req.encode(id).expect("a decoded request encodes");
        let (_, id2, again) = Request::decode(&frame);
        assert_eq!(id2, id);
        assert_eq!(again, Ok(req), "round trip");
    }
    if let Ok((_, _, _, body)) = decode_reply(data) {
        let _ = decode_addrs(body);
        let _ = Passwd::decode(body);
        let _ = Group::decode(body);
    }
});
