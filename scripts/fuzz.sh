#!/usr/bin/env bash
# Fuzzes the declaration loader with cargo-fuzz (libFuzzer) for SECONDS (default 60),
# seeded with the shipped units. Any panic is a bug: libFuzzer stops, saves the input
# under fuzz/artifacts/ and this script exits non-zero. Works on the stable toolchain
# (no sanitizer: the code under test is safe Rust; what is sought is panics).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
mkdir -p fuzz/corpus/declaration
cp units/*.svc fuzz/corpus/declaration/
cargo fuzz run declaration --sanitizer none -- -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 | tail -n 12
