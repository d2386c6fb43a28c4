// SPDX-License-Identifier: GPL-2.0
/*
 * ipblock: drop frames whose source address's longest matching prefix is a
 * deny rule.  No match, an allow rule, or a frame that is not IPv4/IPv6 (or is
 * too short to be judged) passes.  Counters are per-CPU: nothing shared is
 * written on the packet path.
 *
 * The verdict comes from the flat table of the active set (flat_lookup.h): one
 * array load for most addresses, a few for a region holding rules longer
 * than /24.  Where the table says FLAT_FALLBACK (a region it could not
 * represent, or every region with --lookup trie) the same set's LPM trie
 * answers.  Both say the same: the tables are compiled from the tries.
 */
#include "parse.h"
#include "ipblock.h"
#include "flat_lookup.h"

#define DEFINE_TRIE(name, key_type)                                                                \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                               \
		__uint(max_entries, IPBLOCK_MAX_RULES_DEFAULT);                                    \
		__type(key, key_type);                                                             \
		__type(value, struct ipblock_rule);                                                \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
	} name SEC(".maps")

/* Set A and set B of each family; see ipblock.h for how they alternate. */
DEFINE_TRIE(ipv4_map, struct ipblock_key_v4);
DEFINE_TRIE(ipv6_map, struct ipblock_key_v6);
DEFINE_TRIE(ipv4_map_b, struct ipblock_key_v4);
DEFINE_TRIE(ipv6_map_b, struct ipblock_key_v6);

/* Sizes are set by the loader (pins_obj_size()); these are placeholders. */
#define DEFINE_FLAT(name, value_type, entries)                                                     \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(map_flags, BPF_F_MMAPABLE);                                                 \
		__uint(max_entries, entries);                                                      \
		__type(key, __u32);                                                                \
		__type(value, value_type);                                                         \
	} name SEC(".maps")

DEFINE_FLAT(flat4_top, __u64, 1);
DEFINE_FLAT(flat4_top_b, __u64, 1);
DEFINE_FLAT(flat4_data, struct flat_slot, 1);
DEFINE_FLAT(flat4_data_b, struct flat_slot, 1);
DEFINE_FLAT(flat4_ids, struct flat_rule, 1);
DEFINE_FLAT(flat6_top, __u64, 1);
DEFINE_FLAT(flat6_top_b, __u64, 1);
DEFINE_FLAT(flat6_data, struct flat_slot, 1);
DEFINE_FLAT(flat6_data_b, struct flat_slot, 1);
DEFINE_FLAT(flat6_ids, struct flat_rule, 1);

/* One slot-hash probe per data map, checked once by the verifier (bpf/flat.h). */
DEFINE_FLAT_PROBE(probe_v4_a, flat4_data)
DEFINE_FLAT_PROBE(probe_v4_b, flat4_data_b)
DEFINE_FLAT_PROBE(probe_v6_a, flat6_data)
DEFINE_FLAT_PROBE(probe_v6_b, flat6_data_b)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ipblock_config);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, IPBLOCK_STAT_MAX);
	__type(key, __u32);
	__type(value, struct ipblock_counter);
} stats_map SEC(".maps");

static __always_inline int account(struct xdp_md *ctx, __u32 slot, int verdict)
{
	struct ipblock_counter *cnt = bpf_map_lookup_elem(&stats_map, &slot);

	if (cnt) {
		cnt->packets++;
		cnt->bytes += ctx->data_end - ctx->data;
	}
	return verdict;
}

/* The verdict of a trie lookup's answer. */
static __always_inline int judge_rule(struct xdp_md *ctx, struct ipblock_rule *rule)
{
	if (!rule)
		return account(ctx, IPBLOCK_STAT_PASS_NOMATCH, XDP_PASS);
	if (rule->action == IPBLOCK_ACTION_DENY)
		return account(ctx, IPBLOCK_STAT_DROP, XDP_DROP);
	return account(ctx, IPBLOCK_STAT_PASS_ALLOW, XDP_PASS);
}

/* The verdict of a flat entry other than FLAT_FALLBACK. */
static __always_inline int judge_entry(struct xdp_md *ctx, __u32 e)
{
	if (!e)
		return account(ctx, IPBLOCK_STAT_PASS_NOMATCH, XDP_PASS);
	if (flat_entry_deny(e))
		return account(ctx, IPBLOCK_STAT_DROP, XDP_DROP);
	return account(ctx, IPBLOCK_STAT_PASS_ALLOW, XDP_PASS);
}

/* Read once per packet: the whole packet is judged by one rule set. */
static __always_inline __u32 active_set(void)
{
	__u32 zero = 0;
	struct ipblock_config *cfg = bpf_map_lookup_elem(&config_map, &zero);

	return cfg ? cfg->active_set : 0;
}

SEC("xdp")
int ipblock_xdp(struct xdp_md *ctx)
{
	struct cursor c;
	__be16 proto;

	cursor_init(&c, ctx);
	proto = parse_eth_vlans(&c);

	/*
	 * Each set has its own branch: the maps must be known to the verifier
	 * at each call for their lookups to be inlined into plain loads.
	 */
	if (proto == bpf_htons(ETH_P_IP)) {
		struct ipblock_key_v4 key;
		struct iphdr *ip = parse_ipv4(&c);
		__u32 set, e;

		if (!ip)
			goto other;
		set = active_set();
		e = set ? flat_lookup_v4(&flat4_top_b, &flat4_data_b, probe_v4_b, ip->saddr)
			: flat_lookup_v4(&flat4_top, &flat4_data, probe_v4_a, ip->saddr);
		if (e != FLAT_FALLBACK)
			return judge_entry(ctx, e);
		/*
		 * Fields set one by one: an initialiser would become a
		 * .rodata constant, whose BTF (a DATASEC without variables)
		 * Linux 5.10 refuses.
		 */
		key.prefixlen = 32;
		__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
		return judge_rule(ctx, set ? bpf_map_lookup_elem(&ipv4_map_b, &key)
					   : bpf_map_lookup_elem(&ipv4_map, &key));
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipblock_key_v6 key;
		struct ipv6hdr *ip6 = parse_ipv6(&c);
		__u32 set, e;

		if (!ip6)
			goto other;
		set = active_set();
		e = set ? flat_lookup_v6(&flat6_top_b, &flat6_data_b, probe_v6_b, &ip6->saddr)
			: flat_lookup_v6(&flat6_top, &flat6_data, probe_v6_a, &ip6->saddr);
		if (e != FLAT_FALLBACK)
			return judge_entry(ctx, e);
		key.prefixlen = 128;
		__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
		return judge_rule(ctx, set ? bpf_map_lookup_elem(&ipv6_map_b, &key)
					   : bpf_map_lookup_elem(&ipv6_map, &key));
	}
other:
	return account(ctx, IPBLOCK_STAT_PASS_OTHER, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
