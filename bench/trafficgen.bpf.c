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
 * tg_src   reads the Ethernet and IP headers as ipblock does (bpf/parse.h)
 *          and drops every frame whose source address is not 0: the floor
 *          of any filter that judges by source address, which must read it.
 * tg_trie  the plain LPM-trie filter, as most XDP firewalls judge: one
 *          BPF_MAP_TYPE_LPM_TRIE lookup per family (trie4, trie6, filled by
 *          user space), drop on a TG_DENY match, and a per-CPU count of
 *          each verdict, as ipblock keeps.  The same parser as ipblock, so
 *          the two differ by their lookups only.
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

#include "parse.h"
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

/* The LPM-trie filter's rules; user space sizes them before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__type(key, struct tg_key4);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} trie4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__type(key, struct tg_key6);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} trie6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_STATS);
	__type(key, __u32);
	__type(value, struct tg_counter);
} trie_stats SEC(".maps");

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

SEC("xdp")
int tg_src(struct xdp_md *ctx)
{
	struct cursor c;
	__be16 proto;

	cursor_init(&c, ctx);
	proto = parse_eth_vlans(&c);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ipv4(&c);

		if (ip && ip->saddr)
			return XDP_DROP;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ipv6(&c);

		if (ip6 && (ip6->saddr.in6_u.u6_addr32[0] | ip6->saddr.in6_u.u6_addr32[1] |
			    ip6->saddr.in6_u.u6_addr32[2] | ip6->saddr.in6_u.u6_addr32[3]))
			return XDP_DROP;
	}
	return XDP_PASS;
}

/* Count the verdict of a trie lookup's value (NULL: no rule) and return it. */
static __always_inline int trie_verdict(struct xdp_md *ctx, const __u32 *v)
{
	__u32 slot = v && *v == TG_DENY ? TG_STAT_DROP : TG_STAT_PASS;
	struct tg_counter *cnt = bpf_map_lookup_elem(&trie_stats, &slot);

	if (cnt) {
		cnt->packets++;
		cnt->bytes += ctx->data_end - ctx->data;
	}
	return slot == TG_STAT_DROP ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int tg_trie(struct xdp_md *ctx)
{
	struct cursor c;
	__be16 proto;

	cursor_init(&c, ctx);
	proto = parse_eth_vlans(&c);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ipv4(&c);
		struct tg_key4 k = { .prefixlen = 32 };

		if (!ip)
			return trie_verdict(ctx, NULL);
		__builtin_memcpy(k.addr, &ip->saddr, 4);
		return trie_verdict(ctx, bpf_map_lookup_elem(&trie4, &k));
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ipv6(&c);
		struct tg_key6 k = { .prefixlen = 128 };

		if (!ip6)
			return trie_verdict(ctx, NULL);
		__builtin_memcpy(k.addr, &ip6->saddr, 16);
		return trie_verdict(ctx, bpf_map_lookup_elem(&trie6, &k));
	}
	return trie_verdict(ctx, NULL);
}

char LICENSE[] SEC("license") = "GPL";
