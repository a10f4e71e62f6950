#!/usr/bin/env bash
# Fuzzes the parsers that take bytes from outside with cargo-fuzz (libFuzzer),
# SECONDS each (default 60 for the declaration loader, half that for the rest):
#   declaration     a .svc file and a drop-in (ESCAPE-CASES 41), seeded with the shipped units
#   explicit_frame  a frame on the explicit broker connection (33)
#   dns_query       a datagram to the broker's stub resolver (35)
# Any panic is a bug: libFuzzer stops, saves the input under fuzz/artifacts/
# and this script exits non-zero. Works on the stable toolchain (no sanitizer:
# the code under test is safe Rust; what is sought is panics).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
mkdir -p fuzz/corpus/declaration fuzz/corpus/explicit_frame fuzz/corpus/dns_query
cp units/*.svc fuzz/corpus/declaration/
# One valid frame of each kind to start from (the format: docs/broker-protocol.md):
# version 1, op, 2 reserved bytes, id (le32), then the op's body.
seed() { printf "$2" > "fuzz/corpus/$1/$3"; }
seed explicit_frame '\x01\x01\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\xa4\x01\x00\x00/srv/data/readme' open
seed explicit_frame '\x01\x02\x00\x00\x08\x00\x00\x00\x06\x00\x50\x00\x7f\x00\x00\x01' connect
seed explicit_frame '\x01\x04\x00\x00\x09\x00\x00\x00\x00example.com' getaddrinfo
seed explicit_frame '\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x7f\x00\x00\x01' reply
# A query for example.com A, with recursion desired.
seed dns_query '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01' a-query
run() {
    cargo fuzz run "$1" --sanitizer none -- -max_total_time="$2" -max_len="$3" -print_final_stats=1 2>&1 | tail -n 12
}
run declaration "$seconds" 4096
run explicit_frame $((seconds / 2)) 4200
run dns_query $((seconds / 2)) 600
