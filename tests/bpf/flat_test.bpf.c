// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only XDP programs for the flat tables, run by tests/test_flat.c with
 * BPF_PROG_RUN: flat_xdp judges by the flat tables (and the trie where a
 * region falls back), trie_xdp by the trie alone, empty_xdp only parses.
 * All three parse the same way and record what they found in .bss, so
 * their cost difference is the lookup.  Map sizes are set before load.
 */
#include "parse.h"
#include "ipblock.h"
#include "flat_lookup.h"

#define FLAT_MAP(name, value_type)                                                                 \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(map_flags, BPF_F_MMAPABLE);                                                 \
		__uint(max_entries, 1);                                                            \
		__type(key, __u32);                                                                \
		__type(value, value_type);                                                         \
	} name SEC(".maps")

FLAT_MAP(flat4_top, __u64);
FLAT_MAP(flat4_data, struct flat_slot);
FLAT_MAP(flat6_top, __u64);
FLAT_MAP(flat6_data, struct flat_slot);

#define TRIE(name, key_type)                                                                       \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                               \
		__uint(max_entries, 1);                                                            \
		__type(key, key_type);                                                             \
		__type(value, struct ipblock_rule);                                                \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
	} name SEC(".maps")

TRIE(trie4, struct ipblock_key_v4);
TRIE(trie6, struct ipblock_key_v6);

DEFINE_FLAT_PROBE(probe_v4, flat4_data)
DEFINE_FLAT_PROBE(probe_v6, flat6_data)

/* What the last run decided: the entry, and whether the trie answered. */
__u32 result_entry;
__u32 result_fallback;

static __always_inline __u32 entry_of_rule(struct ipblock_rule *r)
{
	if (!r)
		return 0;
	return r->rule_id << 1 | (r->action == IPBLOCK_ACTION_DENY);
}

static __always_inline int verdict(__u32 e, __u32 fell)
{
	result_entry = e;
	result_fallback = fell;
	return e && e != FLAT_FALLBACK && flat_entry_deny(e) ? XDP_DROP : XDP_PASS;
}

static __always_inline __u32 trie_v4(__be32 saddr)
{
	struct ipblock_key_v4 key = { .prefixlen = 32 };

	__builtin_memcpy(key.addr, &saddr, 4);
	return entry_of_rule(bpf_map_lookup_elem(&trie4, &key));
}

static __always_inline __u32 trie_v6(const struct in6_addr *a)
{
	struct ipblock_key_v6 key = { .prefixlen = 128 };

	__builtin_memcpy(key.addr, a, 16);
	return entry_of_rule(bpf_map_lookup_elem(&trie6, &key));
}

SEC("xdp")
int flat_xdp(struct xdp_md *ctx)
{
	struct cursor c;
	__be16 proto;
	__u32 e;

	cursor_init(&c, ctx);
	proto = parse_eth_vlans(&c);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ipv4(&c);

		if (!ip)
			return XDP_PASS;
		e = flat_lookup_v4(&flat4_top, &flat4_data, probe_v4, ip->saddr);
		if (e == FLAT_FALLBACK)
			return verdict(trie_v4(ip->saddr), 1);
		return verdict(e, 0);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ipv6(&c);

		if (!ip6)
			return XDP_PASS;
		e = flat_lookup_v6(&flat6_top, &flat6_data, probe_v6, &ip6->saddr);
		if (e == FLAT_FALLBACK)
			return verdict(trie_v6(&ip6->saddr), 1);
		return verdict(e, 0);
	}
	return XDP_PASS;
}

SEC("xdp")
int trie_xdp(struct xdp_md *ctx)
{
	struct cursor c;
	__be16 proto;

	cursor_init(&c, ctx);
	proto = parse_eth_vlans(&c);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ipv4(&c);

		if (!ip)
			return XDP_PASS;
		return verdict(trie_v4(ip->saddr), 1);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ipv6(&c);

		if (!ip6)
			return XDP_PASS;
		return verdict(trie_v6(&ip6->saddr), 1);
	}
	return XDP_PASS;
}

SEC("xdp")
int empty_xdp(struct xdp_md *ctx)
{
	struct cursor c;
	__be16 proto;

	cursor_init(&c, ctx);
	proto = parse_eth_vlans(&c);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ipv4(&c);

		if (!ip)
			return XDP_PASS;
		return verdict(ip->saddr & 0, 0);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ipv6(&c);

		if (!ip6)
			return XDP_PASS;
		return verdict(ip6->saddr.in6_u.u6_addr32[0] & 0, 0);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
