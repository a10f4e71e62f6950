#!/usr/bin/env bash
# Installs what capexec's test suite needs on a fresh Debian machine: the real
# services the integration tests run (nginx-light, redis-server, memcached) and
# the unprivileged user the rootless tests run as. Idempotent; run as root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: run as root (it installs Debian packages and creates a user)" >&2
    exit 1
fi

# gcc: client::c_programs_use_the_c_library builds a C program against
# libcapexec_client.so; util-linux gives unshare and setpriv to the DNS tests.
# The learn tests drive the services with real clients: wrk and curl (nginx),
# redis-benchmark and redis-cli (redis-tools, pulled in by redis-server),
# memcslap and memccat (libmemcached-tools). systemd: systemd-analyze verify
# checks the shipped .service files and `systemd-analyze security` is what
# `capexec analyze` is compared with (PID 1 need not be systemd). unbound and
# dnsmasq: the shipped DNS units run them; dig (bind9-dnsutils) queries them.
# bpftool: the doctor test compares capexec's reading of the kernel's BTF with it.
# stress-ng: scripts/stress-suite.sh runs the suite with both cores busy.
# clang, libbpf-dev (with bpftool): a test rebuilds the network guard's BPF
# object (scripts/gen-bpf.sh) and checks that the committed one is current.
# apache2: tests/debian.rs runs Debian's daemons from their own units; it and
# openssh-server, bind9, postgresql, cron, chrony, rsyslog and mariadb-server:
# every unit of theirs must import into a declaration that passes check.
# lighttpd: the same, for a package the issue does not name (a simple service
# with its pid file directly in /run, which says nothing of when it listens);
# vsftpd too (a passive FTP transfer listens on a port picked per session),
# haproxy (master-worker, a chroot, a CLI socket renamed into place),
# squid (helpers on loopback ports the kernel picks, a 30 s shutdown),
# nsd (a root daemon whose unit bounds its capabilities; its control socket) and
# snmpd with snmp's snmpget and snmpwalk (a directory it makes directly in /var),
# varnish (compiles its VCL to a shared object in its working directory and
# runs it, so that directory is written and executable; varnishadm);
# postfix, preseeded below as Debian's "Local only" site (loopback only);
# prometheus-node-exporter (a Go program reading host-wide /proc files and
# /sys through links; statfs of every mount point); vnstat (reads the host's
# network counters and makes no socket: learning gives it the host's network);
# collectd-core (reads the host's interface counters, logs over a Unix socket
# and makes no IP socket: learning gives it the host's network and the guard);
# dnsdist (asks its backend over TCP for TCP queries, which a UDP-only learning
# run never does).
# dovecot-imapd (a root master whose login processes chroot, an auth process
# reading /etc/shadow through PAM, `doveadm stop` as its ExecStop=) and knot
# (a notify daemon with ambient capabilities, a conf-check before its start,
# knotc over its control socket). at: its unit runs `find` by name (import
# finds it where systemd would) and asks for SIGPIPE at its default;
# munin-node: its unit makes its runtime directory with `install -d`.
# python3-pip: tests/overlay.rs installs a local wheel with --fakeroot.
# runc, busybox-static, podman: tests/oci.rs runs containers of stock runc
# from a busybox root filesystem with `capexec agent` as their seccomp
# agent, and podman with capexec-oci as its runtime; containerd: the same
# file runs an instance of its own and `ctr run` with capexec-oci as runc;
# golang-go: scripts/oci-validation.py builds runtime-tools' validation suite
# (tests/oci_validation.rs), offline, from ../shared/vendor.
# iputils-ping: tests/escape.rs runs ping under a `[broker.net] ping` grant;
# tests/learn.rs learns it, with the file capability its postinst sets
# with libcap2-bin's setcap. prometheus-blackbox-exporter: tests/debian.rs
# learns its icmp module (a Go program pinging over ping sockets) into ping grants.
# i2pd: tests/debian.rs learns it (listeners its process binds while it serves).
# gdnsd: tests/debian.rs reloads it (a daemon that replaces itself and names its successor: MAINPID=).
packages=(nginx-light libcap2-bin iputils-ping redis-server memcached gcc libc6-dev util-linux wrk curl libmemcached-tools systemd unbound dnsmasq bind9-dnsutils bpftool stress-ng clang libbpf-dev
    apache2 openssh-server bind9 postgresql cron chrony rsyslog mariadb-server lighttpd vsftpd haproxy squid nsd snmpd snmp varnish postfix prometheus-node-exporter prometheus-blackbox-exporter i2pd gdnsd vnstat collectd-core dnsdist mosquitto mosquitto-clients tinyproxy dovecot-imapd knot at munin-node python3-pip runc busybox-static podman containerd golang-go)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    # Keep the packages' init scripts from starting the services on install:
    # the tests start them under capexec on the same ports.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    printf '%s\n' 'postfix postfix/main_mailer_type select Local only' 'postfix postfix/mailname string localhost' | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if [ "$created_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

if ! id capexec-test >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin capexec-test
fi
# A supplementary group of the test user in /etc/group: a declared service
# gets its user's groups as initgroups(3) would (escape test 55).
if ! getent group capexec-test-extra >/dev/null; then
    groupadd --system capexec-test-extra
fi
if ! id -nG capexec-test | tr ' ' '\n' | grep -qx capexec-test-extra; then
    usermod -a -G capexec-test-extra capexec-test
fi
# The user debian.rs logs in as over ssh (Debian's sshd from its own unit,
# a key login): a shell and a home; no password ('*': key logins only).
if ! id capexec-ssh >/dev/null 2>&1; then
    useradd --system --create-home --home-dir /var/lib/capexec-ssh --shell /bin/sh capexec-ssh
    usermod -p '*' capexec-ssh
fi

# The user debian.rs logs in as over FTP (vsftpd from its own unit): the
# test sets a random password for its run and locks the account again.
if ! id capexec-ftp >/dev/null 2>&1; then
    useradd --system --create-home --home-dir /var/lib/capexec-ftp --shell /bin/sh capexec-ftp
    usermod -p '*' capexec-ftp
fi

# The user debian.rs logs in as over IMAP (dovecot from its own unit): as
# capexec-ftp, a random password for the test's run, locked again after.
if ! id capexec-mail >/dev/null 2>&1; then
    useradd --system --create-home --home-dir /var/lib/capexec-mail --shell /usr/sbin/nologin capexec-mail
    usermod -p '*' capexec-mail
fi

# The service tests use the shipped units' fixed ports; say so plainly if
# something else holds them instead of failing later with a confusing error.
for port in 8080 6379 11211; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "install-test-deps: warning: something already listens on 127.0.0.1:$port; stop it before running the tests" >&2
    fi
done
echo "install-test-deps: ready (packages: ${packages[*]}; user: capexec-test, in group capexec-test-extra)"
