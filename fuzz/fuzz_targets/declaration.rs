//! Any bytes as a declaration file (and as a drop-in): loading must return a
//! spec or errors, never panic (ESCAPE-CASES 41).
#![no_main]

use capexec_decl::{load_unit, Context};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn dir() -> &'static std::path::Path {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("capexec-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(d.join("f.svc.d")).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    // Split the input: the first part is the unit, the rest a drop-in.
    let cut = data.iter().position(|b| *b == 0xfe).unwrap_or(data.len());
    std::fs::write(d.join("f.svc"), &data[..cut]).unwrap();
    std::fs::write(d.join("f.svc.d/10.toml"), data.get(cut + 1..).unwrap_or_default()).unwrap();
    let path = d.join("f.svc");
    for ctx in [
        Context { rootless: false, uid: 0, gid: 0, unit_dir: None },
        Context { rootless: true, uid: 1000, gid: 1000, unit_dir: None },
    ] {
        if let Err(errs) = load_unit(path.to_str().unwrap(), &[], &ctx) {
            // Rendering every error must not panic either.
            let _ = errs.to_string();
        }
    }
});
