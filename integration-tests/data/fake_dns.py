"""A DNS server for tests, on 127.0.0.1 of the network namespace it is
started in, port 53 or the first argument, over UDP and TCP: every A query
is answered with 127.0.0.1, every other type with no record. It prints
"ready" once both are bound."""
import socket, struct, sys, threading

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 53


def answer(q):
    qid = struct.unpack(">H", q[:2])[0]
    i = 12
    while q[i] != 0:
        i += q[i] + 1
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    if qtype == 1:
        record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        return struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + record
    return struct.pack(">HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question


def serve_tcp(listener):
    while True:
        c, _ = listener.accept()
        try:
            while True:
                head = c.recv(2, socket.MSG_WAITALL)
                if len(head) < 2:
                    break
                q = c.recv(struct.unpack(">H", head)[0], socket.MSG_WAITALL)
                a = answer(q)
                c.sendall(struct.pack(">H", len(a)) + a)
        finally:
            c.close()


udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", PORT))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", PORT))
tcp.listen(16)
threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
print("ready", flush=True)
while True:
    q, peer = udp.recvfrom(512)
    udp.sendto(answer(q), peer)
