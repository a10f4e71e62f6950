#!/bin/sh
# Rebuilds crates/capexec-sandbox/bpf/netguard.bpf.o from netguard.bpf.c.
# The object is committed so that building capexec needs no clang; the test
# `netguard::tests::the_committed_object_is_current` fails when it is stale.
# Needs clang and bpftool (Debian: clang, bpftool, libbpf-dev for the headers).
set -eu
dir="$(cd "$(dirname "$0")/../crates/capexec-sandbox/bpf" && pwd)"
out="$(realpath -m "${1:-$dir/netguard.bpf.o}")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# -g for BTF (maps and globals need it); `bpftool gen object` then links the
# object without DWARF; line information in BTF keeps the source path, so the
# directory is mapped to "." and the bytes are the same wherever the tree is.
(cd "$dir" && clang -O2 -g -fdebug-prefix-map="$dir"=. -target bpf -I/usr/include/"$(uname -m)"-linux-gnu -c netguard.bpf.c -o "$tmp/netguard.o")
bpftool gen object "$out" "$tmp/netguard.o"
