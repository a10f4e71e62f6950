"""A DNS server for tests, on 127.0.0.1 of the network namespace it is
started in, port 53 or the first argument: every A query is answered with
127.0.0.1, every other type with no record. It prints "ready" once bound."""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    qid, flags, qd = struct.unpack(">HHH", q[:6])
    i = 12
    while q[i] != 0:
        i += q[i] + 1
    qtype = struct.unpack(">H", q[i+1:i+3])[0]
    question = q[12:i+5]
    if qtype == 1:
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        hdr = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    else:
        ans = b""
        hdr = struct.pack(">HHHHHH", qid, 0x8180, 1, 0, 0, 0)
    s.sendto(hdr + question + ans, peer)
