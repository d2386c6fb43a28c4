// SPDX-License-Identifier: GPL-2.0
/*
 * The benchmarks' packet source and reference programs.
 *
 * tg_tx    run by BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: gives each
 *          frame the next source address of the pool and returns XDP_TX, so
 *          the kernel sends it out of the ctx's ingress interface (one end of
 *          a veth pair) at the rate the receiving end can take it.
 * tg_call  run by BPF_PROG_RUN with repeat: the same source rewriting, then a
 *          tail call into the program under test (slot 0 of `target`), so a
 *          single run judges many different addresses instead of one cached
 *          key.  The empty program behind it measures the wrapper's own cost.
 * tg_drop  drops everything: the floor of the veth receive path.
 * tg_pass  passes everything: the empty program.
 *
 * Frames are Ethernet + IPv4 or IPv6 + UDP without options or VLAN tags; the
 * pool holds each source with the checksums that go with it, precomputed in
 * user space, so the receiving stack sees valid headers.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "trafficgen.h"

/* Pool entries in use minus one (a power of two minus one); set before load. */
const volatile __u32 pool_mask = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_POOL_MAX);
	__type(key, __u32);
	__type(value, struct tg_source);
} pool SEC(".maps");

/* Next pool index, per CPU: nothing shared is written per frame. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

/* Write the next pool source into the frame; false if it is not ours. */
static __always_inline int set_source(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tg_source *src;
	__u32 zero = 0, idx, *n;

	n = bpf_map_lookup_elem(&next, &zero);
	if (!n)
		return 0;
	idx = *n & pool_mask;
	*n += 1;
	src = bpf_map_lookup_elem(&pool, &idx);
	if (!src || (void *)(eth + 1) > end)
		return 0;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > end)
			return 0;
		__builtin_memcpy(&ip->saddr, src->addr, 4);
		ip->check = src->ip_check;
		udp->check = src->udp_check;
		return 1;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip6 + 1);

		if ((void *)(udp + 1) > end)
			return 0;
		__builtin_memcpy(&ip6->saddr, src->addr, 16);
		udp->check = src->udp_check;
		return 1;
	}
	return 0;
}

SEC("xdp")
int tg_tx(struct xdp_md *ctx)
{
	return set_source(ctx) ? XDP_TX : XDP_ABORTED;
}

SEC("xdp")
int tg_call(struct xdp_md *ctx)
{
	if (!set_source(ctx))
		return XDP_ABORTED;
	bpf_tail_call(ctx, &target, 0);
	/* Only reached when slot 0 is empty. */
	return XDP_ABORTED;
}

SEC("xdp")
int tg_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int tg_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
