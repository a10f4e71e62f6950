#!/usr/bin/env bash
# Builds the Debian package of capexec with dpkg-deb, from binaries already
# built by cargo:
#
#   cargo build --release --workspace && packaging/build-deb.sh
#   packaging/build-deb.sh --bin-dir target/debug --out /tmp   (what the tests do)
#
# Contents: /usr/bin/capexec and /usr/bin/capexec-oci (the OCI runtime,
# docs/oci.md); libcapexec_client.so and its header; the daemon's
# capexecd.service, the capexec@.service template and capexec-agent.service; man pages and bash, zsh
# and fish completions (generated from the CLI definition, see
# crates/capexec/tests/man.rs); the shipped declarations in
# /usr/lib/capexec/units. Prints the path of the .deb it wrote.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="$repo/target/release"
out="$repo/target/debian"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "build-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for f in capexec capexec-oci libcapexec_client.so; do
    if [ ! -f "$bin_dir/$f" ]; then
        echo "build-deb: $bin_dir/$f is missing: run \`cargo build --release --workspace\` first (or give --bin-dir)" >&2
        exit 1
    fi
done

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/$multiarch" "$root/usr/include" \
    "$root/lib/systemd/system" "$root/usr/share/man/man1" "$root/usr/lib/capexec/units" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/capexec"
install -m 0755 "$bin_dir/capexec" "$root/usr/bin/capexec"
install -m 0755 "$bin_dir/capexec-oci" "$root/usr/bin/capexec-oci"
install -m 0644 "$bin_dir/libcapexec_client.so" "$root/usr/lib/$multiarch/libcapexec_client.so"
if command -v strip > /dev/null; then
    strip --strip-unneeded "$root/usr/bin/capexec" "$root/usr/bin/capexec-oci" "$root/usr/lib/$multiarch/libcapexec_client.so"
fi
install -m 0644 "$repo"/crates/capexec-client/include/*.h "$root/usr/include/"
install -m 0644 "$repo"/packaging/systemd/*.service "$root/lib/systemd/system/"
for page in "$repo"/docs/man/*.1; do
    gzip -9n < "$page" > "$root/usr/share/man/man1/$(basename "$page").gz"
done
install -m 0644 "$repo/packaging/completions/capexec.bash" "$root/usr/share/bash-completion/completions/capexec"
install -m 0644 "$repo/packaging/completions/_capexec" "$root/usr/share/zsh/vendor-completions/_capexec"
install -m 0644 "$repo/packaging/completions/capexec.fish" "$root/usr/share/fish/vendor_completions.d/capexec.fish"
# The declarations and the configuration directories they name as ${UNIT_DIR}/...
for unit in nginx redis memcached unbound dnsmasq; do
    install -m 0644 "$repo/units/$unit.svc" "$root/usr/lib/capexec/units/"
    if [ -d "$repo/units/$unit" ]; then
        install -d "$root/usr/lib/capexec/units/$unit"
        install -m 0644 "$repo/units/$unit"/* "$root/usr/lib/capexec/units/$unit/"
    fi
done
cat > "$root/usr/share/doc/capexec/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: capexec

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: capexec
Version: $version
Architecture: $arch
Maintainer: capexec developers <capexec@example.invalid>
Installed-Size: $size
Depends: libc6 (>= 2.36)
Suggests: nginx-light | nginx, redis-server, memcached, unbound, dnsmasq
Section: admin
Priority: optional
Homepage: https://example.invalid/capexec
Description: run unmodified services least-privileged, from declarations
 capexec starts each service from a short declaration (TOML) in its own
 namespaces, with a filesystem view of only the declared paths, Landlock,
 a seccomp allowlist and no capabilities; a broker answers its further
 requests for files and sockets against the declaration.
 .
 This package ships the capexec command and daemon (capexecd.service), the
 capexec@.service template (systemctl start capexec@nginx), and declarations
 for nginx, redis, memcached, unbound and dnsmasq in /usr/lib/capexec/units;
 capexec-oci, capexec's confinement as an OCI runtime, and capexec-agent.service,
 its broker for containers of runc or crun (not enabled by default).
CONTROL
# The daemon lets members of the capexec group control it.
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && ! getent group capexec > /dev/null; then
    addgroup --system --quiet capexec
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload > /dev/null 2>&1 || true
fi
POSTINST
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload > /dev/null 2>&1 || true
fi
if [ "$1" = purge ] && getent group capexec > /dev/null; then
    delgroup --system --quiet capexec || true
fi
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/capexec_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" > /dev/null
echo "$deb"
