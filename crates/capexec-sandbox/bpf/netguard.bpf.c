// SPDX-License-Identifier: Apache-2.0
//
// capexec's network guard: cgroup sock_addr programs on a service's cgroup v2
// directory. They follow every IPv4/IPv6 socket that lives in the host's network
// namespace but is used by a `net = "none"` service (preopened listeners and
// datagram sockets, sockets the broker binds or connects for it), and every
// socket of a `net = "host"` service with address grants, whatever the
// syscall: connect (also inside sendto/sendmsg: Fast Open, MPTCP fallback),
// bind, and every datagram sent with an explicit address.
//
// Why cgroup hooks: Landlock checks TCP bind/connect only, and by port, not by
// address; seccomp cannot read the address behind a pointer safely. These hooks
// run in the kernel on the socket's own state, after the address was copied.
//
// A socket's hooks are those of the cgroup it was created in, so capexec
// creates the service's host sockets from a process in a child of the
// service's cgroup (`exempt_cgroup`): that process (the broker) is trusted and
// its own calls pass, the service's are checked. Sockets in any other network
// namespace (the service's own, with only a loopback) are not capexec's to
// check here.
//
// Built by scripts/gen-bpf.sh into netguard.bpf.o, which is committed so that
// building capexec needs no clang; a test checks that the object is current.

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58 // linux/in6.h, which clashes with linux/in.h here
#endif

#define MAX_GRANTS 64
#define GRANT_CONNECT 1
#define GRANT_BIND 2
#define GRANT_PING 4 // an ICMP echo request's destination; no port

// One declared address range, IPv4 as v4-mapped IPv6 so that one comparison
// serves both families. `net` is already masked; `mask` is per 32-bit word.
struct grant {
	__u32 net[4];
	__u32 mask[4];
	__u16 port_lo;
	__u16 port_hi;
	__u8 kind;  // GRANT_CONNECT, GRANT_BIND or GRANT_PING
	__u8 proto; // 0: TCP and UDP; else IPPROTO_TCP or IPPROTO_UDP
	__u8 pad[2];
};

// Set by the loader before the programs are verified (read-only to them).
const volatile __u64 host_netns = 0;
const volatile __u64 exempt_cgroup = 0;
const volatile __u32 n_grants = 0;
// Under `net = "host"` every socket of the service is the host's: a bind to
// port 0 passes there, as the port a connect binds by itself does.
const volatile __u32 port_zero_binds = 0;
// Under `net = "host"` the service's ICMP packets are its ping sockets'
// echo requests (raw sockets are refused by seccomp): each must go to a
// GRANT_PING range. (Elsewhere the service's own network has only a
// loopback, and the kernel's own ICMP is not sent from its sockets.)
const volatile __u32 check_icmp = 0;
const volatile struct grant grants[MAX_GRANTS] = {};

// A peer a datagram socket received from: it may answer it (a UDP server must
// reply to whoever asked), never start a conversation with anyone else.
struct peer {
	__u64 cookie; // the socket
	__u32 addr[4];
	__u32 port; // network order, as the context holds it
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct peer);
	__type(value, __u8);
} peers SEC(".maps");

// A UDP socket connected to an address the service may only ping: ping
// (iputils) connects one to learn the source address its echo requests
// will have, and sends nothing on it. Such a socket is muted: the packet
// check drops its datagrams. Kept with the socket, gone with it.
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} muted SEC(".maps");

// What the programs refused, for the daemon's denial trail: one record per
// refusal while there is room (a service looping on refused calls fills it,
// and then loses records, never the daemon's memory).
#define REFUSED_CONNECT 1
#define REFUSED_BIND 2
#define REFUSED_SEND 3
#define REFUSED_ROUTE 4
#define REFUSED_PING 5

struct refusal {
	__u32 addr[4]; // v4-mapped for IPv4
	__u32 pid;     // the thread group, as the host names it
	__u16 port;    // host order
	__u8 op;       // REFUSED_*
	__u8 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} refusals SEC(".maps");

// Records a refusal; returns 0, the programs' answer for it. `port` in
// network order.
static __always_inline int report(const __u32 a[4], __u16 port, __u8 op, __u32 proto)
{
	struct refusal r = {
		.addr = {a[0], a[1], a[2], a[3]},
		.pid = bpf_get_current_pid_tgid() >> 32,
		.port = bpf_ntohs(port),
		.op = op,
		.proto = proto,
	};
	bpf_ringbuf_output(&refusals, &r, sizeof(r), 0);
	return 0;
}

static __always_inline int refuse(struct bpf_sock_addr *ctx, const __u32 a[4], __u8 op, __u32 proto)
{
	return report(a, (__u16)ctx->user_port, op, proto);
}

static __always_inline int unguarded(struct bpf_sock_addr *ctx)
{
	if (bpf_get_netns_cookie(ctx) != host_netns)
		return 1;
	return exempt_cgroup && bpf_get_current_cgroup_id() == exempt_cgroup;
}

// A ping socket's connect is granted where its echo requests may go (its
// "port" is the echo identifier); it binds nothing but port 0.
static __always_inline int granted(const __u32 a[4], __u32 port_be, __u32 proto, __u8 kind)
{
	__u16 port = bpf_ntohs((__u16)port_be);
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		if (kind != GRANT_CONNECT)
			return 0;
		kind = GRANT_PING;
	} else if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
		return 0;
	}
	for (__u32 i = 0; i < MAX_GRANTS; i++) {
		if (i >= n_grants)
			break;
		if (grants[i].kind != kind)
			continue;
		if (kind != GRANT_PING && grants[i].proto && grants[i].proto != proto)
			continue;
		if (kind != GRANT_PING && (port < grants[i].port_lo || port > grants[i].port_hi))
			continue;
		if ((a[0] & grants[i].mask[0]) != grants[i].net[0] || (a[1] & grants[i].mask[1]) != grants[i].net[1] ||
		    (a[2] & grants[i].mask[2]) != grants[i].net[2] || (a[3] & grants[i].mask[3]) != grants[i].net[3])
			continue;
		return 1;
	}
	return 0;
}

static __always_inline int known_peer(struct bpf_sock_addr *ctx, const __u32 a[4])
{
	struct peer k = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = {a[0], a[1], a[2], a[3]},
		.port = ctx->user_port,
	};
	return ctx->protocol == IPPROTO_UDP && bpf_map_lookup_elem(&peers, &k) != 0;
}

static __always_inline void remember_peer(struct bpf_sock_addr *ctx, const __u32 a[4])
{
	struct peer k = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = {a[0], a[1], a[2], a[3]},
		.port = ctx->user_port,
	};
	__u8 one = 1;
	bpf_map_update_elem(&peers, &k, &one, BPF_ANY);
}

#define V4(ctx) {0, 0, bpf_htonl(0xffff), (ctx)->user_ip4}
#define V6(ctx) {(ctx)->user_ip6[0], (ctx)->user_ip6[1], (ctx)->user_ip6[2], (ctx)->user_ip6[3]}

// A connect, whatever made it: connect(2), a Fast Open send, a UDP connect.
static __always_inline int check_connect(struct bpf_sock_addr *ctx, const __u32 a[4])
{
	if (unguarded(ctx))
		return 1;
	__u8 *mute = 0;
	if (ctx->protocol == IPPROTO_UDP && check_icmp)
		mute = bpf_sk_storage_get(&muted, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (granted(a, ctx->user_port, ctx->protocol, GRANT_CONNECT) || known_peer(ctx, a)) {
		if (mute)
			*mute = 0;
		return 1;
	}
	if (mute && granted(a, 0, IPPROTO_ICMP, GRANT_CONNECT)) {
		*mute = 1;
		return 1;
	}
	return refuse(ctx, a, REFUSED_CONNECT, ctx->protocol);
}

static __always_inline int check_bind(struct bpf_sock_addr *ctx, const __u32 a[4])
{
	if (unguarded(ctx))
		return 1;
	if (granted(a, ctx->user_port, ctx->protocol, GRANT_BIND) || (port_zero_binds && ctx->user_port == 0))
		return 1;
	return refuse(ctx, a, REFUSED_BIND, ctx->protocol);
}

// A datagram to an explicit address: granted, or the answer to a peer.
static __always_inline int check_send(struct bpf_sock_addr *ctx, const __u32 a[4])
{
	if (unguarded(ctx))
		return 1;
	if (granted(a, ctx->user_port, IPPROTO_UDP, GRANT_CONNECT) || known_peer(ctx, a))
		return 1;
	return refuse(ctx, a, REFUSED_SEND, IPPROTO_UDP);
}

static __always_inline int note_recv(struct bpf_sock_addr *ctx, const __u32 a[4])
{
	if (!unguarded(ctx))
		remember_peer(ctx, a);
	return 1; // recvmsg hooks must allow
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V4(ctx);
	return check_connect(ctx, a);
}

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V6(ctx);
	return check_connect(ctx, a);
}

SEC("cgroup/bind4")
int bind4(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V4(ctx);
	return check_bind(ctx, a);
}

SEC("cgroup/bind6")
int bind6(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V6(ctx);
	return check_bind(ctx, a);
}

SEC("cgroup/sendmsg4")
int sendmsg4(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V4(ctx);
	return check_send(ctx, a);
}

SEC("cgroup/sendmsg6")
int sendmsg6(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V6(ctx);
	return check_send(ctx, a);
}

SEC("cgroup/recvmsg4")
int recvmsg4(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V4(ctx);
	return note_recv(ctx, a);
}

SEC("cgroup/recvmsg6")
int recvmsg6(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = V6(ctx);
	return note_recv(ctx, a);
}

// A packet that names its own route. IPv4 options (IP_OPTIONS, or an
// IP_RETOPTS control message of a single sendmsg) may hold a loose or strict
// source route, and an IPv6 routing header (IPV6_RTHDR: a segment routing
// header needs no privilege) lists the hops to pass: either way the kernel
// sends the packet to the route's first hop, not to the destination the
// hooks above were shown, checked and granted. Neither needs a privilege,
// and a control message is out of seccomp's sight, so it is checked here,
// on each packet as it leaves: a packet of the service's with any IPv4
// option or an IPv6 routing header does not. (A daemon has no use for
// either; the kernel's own IGMP reports with their router alert are not
// sent from the service's sockets.)
#define IPV6_NEXTHDR_HOP 0
#define IPV6_NEXTHDR_ROUTING 43
#define IPV6_NEXTHDR_DEST 60

static __always_inline int refuse_route(struct __sk_buff *skb, const __u32 a[4], __u32 l4, __u8 proto)
{
	__u16 port = 0;
	bpf_skb_load_bytes(skb, l4 + 2, &port, 2); // TCP and UDP alike
	return report(a, port, REFUSED_ROUTE, proto);
}

// An ICMP packet of the service's: a ping socket's echo request, whose
// destination no sock_addr hook saw (sendto on a ping socket runs none).
static __always_inline int check_echo(const __u32 a[4], __u8 proto)
{
	if (!check_icmp || granted(a, 0, proto, GRANT_CONNECT))
		return 1;
	return report(a, 0, REFUSED_PING, proto);
}

// A datagram of a muted socket (see `muted`), refused as a send would be.
static __always_inline int check_datagram(struct __sk_buff *skb, const __u32 a[4], __u32 l4)
{
	if (!check_icmp)
		return 1;
	struct bpf_sock *sk = skb->sk;
	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	__u8 *mute = bpf_sk_storage_get(&muted, sk, 0, 0);
	if (!mute || !*mute)
		return 1;
	__u16 port = 0;
	bpf_skb_load_bytes(skb, l4 + 2, &port, 2);
	return report(a, port, REFUSED_SEND, IPPROTO_UDP);
}

SEC("cgroup_skb/egress")
int egress(struct __sk_buff *skb)
{
	__u8 b[40];
	if (bpf_skb_load_bytes(skb, 0, b, 20))
		return 1;
	if (b[0] >> 4 == 4) {
		__u32 ihl = (b[0] & 0x0f) * 4;
		if (ihl <= 20 && (b[9] == IPPROTO_ICMP || b[9] == IPPROTO_UDP)) {
			__u32 d[4] = {0, 0, bpf_htonl(0xffff), 0};
			__builtin_memcpy(&d[3], &b[16], 4);
			if (b[9] == IPPROTO_UDP)
				return check_datagram(skb, d, 20);
			return check_echo(d, IPPROTO_ICMP);
		}
		if (ihl <= 20)
			return 1;
		// The first hop, which the header now names as its destination.
		__u32 a[4] = {0, 0, bpf_htonl(0xffff), 0};
		__builtin_memcpy(&a[3], &b[16], 4);
		return refuse_route(skb, a, ihl, b[9]);
	}
	if (b[0] >> 4 != 6 || bpf_skb_load_bytes(skb, 0, b, 40))
		return 1;
	__u32 a[4];
	__builtin_memcpy(a, &b[24], 16);
	__u8 next = b[6];
	__u32 off = 40;
	// Hop-by-hop and destination options may come first (both need
	// CAP_NET_RAW to set); a routing header follows them.
	for (int i = 0; i < 2; i++) {
		if (next != IPV6_NEXTHDR_HOP && next != IPV6_NEXTHDR_DEST)
			break;
		__u8 ext[2];
		if (bpf_skb_load_bytes(skb, off, ext, 2))
			return 1;
		next = ext[0];
		off += (ext[1] + 1) * 8;
	}
	if (next == IPPROTO_ICMPV6)
		return check_echo(a, IPPROTO_ICMPV6);
	if (next == IPPROTO_UDP)
		return check_datagram(skb, a, off);
	if (next != IPV6_NEXTHDR_ROUTING)
		return 1;
	__u8 rt[2];
	if (bpf_skb_load_bytes(skb, off, rt, 2))
		return 0;
	return refuse_route(skb, a, off + (rt[1] + 1) * 8, rt[0]);
}

// No GPL-only helper is used.
char LICENSE[] SEC("license") = "Apache-2.0";
