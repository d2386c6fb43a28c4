// SPDX-License-Identifier: GPL-2.0
/*
 * ipblock: drop frames whose source address's longest matching prefix is a
 * deny rule.  No match, an allow rule, or a frame that is not IPv4/IPv6 (or is
 * too short to be judged) passes.  Counters are per-CPU: nothing shared is
 * written on the packet path.
 *
 * The verdict comes from the flat table of the active set (flat_lookup.h):
 * one array load for most addresses, a few for a region holding rules
 * longer than /24.  The tries hold the same rules for user space; the
 * program never reads them.  A rule that judges a packet counts it in its
 * own per-CPU counter (the flat entry carries the rule's id); a miss
 * touches no counter but the verdict's.
 */
#include <linux/in.h>

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

/* Both sets' block entries of a family, then the sets' headers (user only). */
#define DEFINE_BLOCKS(name)                                                                        \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(map_flags, BPF_F_MMAPABLE);                                                 \
		__uint(max_entries, FLAT_BLOCKS_ELEMS);                                            \
		__type(key, __u32);                                                                \
		__type(value, __u64);                                                              \
	} name SEC(".maps")

/*
 * A pool's segments: an array of inner arrays, all of the template's size
 * (value sizes given as numbers: a struct named only here would reach BTF
 * as a forward declaration, which libbpf cannot size).
 */
#define DEFINE_POOL(name, vsize, seg_elems, outer_entries)                                         \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                                          \
		__uint(max_entries, outer_entries);                                                \
		__type(key, __u32);                                                                \
		__array(                                                                           \
			values, struct {                                                           \
				__uint(type, BPF_MAP_TYPE_ARRAY);                                  \
				__uint(map_flags, BPF_F_MMAPABLE);                                 \
				__uint(max_entries, seg_elems);                                    \
				__uint(key_size, 4);                                               \
				__uint(value_size, vsize);                                         \
			});                                                                        \
	} name SEC(".maps")

/* The per-rule counters: per-CPU segments, one element per rule id. */
#define DEFINE_HITS(name)                                                                          \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                                          \
		__uint(max_entries, FLAT_SEGS);                                                    \
		__type(key, __u32);                                                                \
		__array(                                                                           \
			values, struct {                                                           \
				__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                           \
				__uint(max_entries, FLAT_HITS_SEG_ELEMS);                          \
				__uint(key_size, 4);                                               \
				__uint(value_size, FLAT_HITS_VALUE);                               \
			});                                                                        \
	} name SEC(".maps")

#define DEFINE_TABLES(f)                                                                           \
	DEFINE_BLOCKS(flat##f##_blocks);                                                           \
	DEFINE_POOL(flat##f##_chunks, FLAT_CHUNK_VALUE, FLAT_CHUNK_SEG_ELEMS,                      \
		    FLAT_SETS *FLAT_SEGS);                                                         \
	DEFINE_POOL(flat##f##_ext, FLAT_EXT_VALUE, FLAT_EXT_SEG_ELEMS, FLAT_SETS *FLAT_SEGS);      \
	DEFINE_POOL(flat##f##_slots, FLAT_SLOT_VALUE, FLAT_SLOT_SEG_ELEMS, FLAT_SETS *FLAT_SEGS);  \
	DEFINE_POOL(flat##f##_cnt, FLAT_CNT_VALUE, FLAT_CNT_SEG_ELEMS, FLAT_SETS *FLAT_SEGS);      \
	DEFINE_POOL(flat##f##_ids, FLAT_IDS_VALUE, FLAT_IDS_SEG_ELEMS, FLAT_SEGS);                 \
	DEFINE_HITS(flat##f##_hits)

DEFINE_TABLES(4);
DEFINE_TABLES(6);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IPBLOCK_CONFIG_ENTRIES);
	__type(key, __u32);
	__type(value, struct ipblock_config);
} config_map SEC(".maps");

/* The sampled drop log: events, and each CPU's token bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, IPBLOCK_DROPLOG_BYTES);
} droplog_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ipblock_droplog_state);
} droplog_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, IPBLOCK_STAT_MAX * IPBLOCK_STAT_IFACES);
	__type(key, __u32);
	__type(value, struct ipblock_stat_slot);
} stats_map SEC(".maps");

/*
 * Who claims which prefix, and the sources' names: written and read by the
 * tools only (common/owners.c), here so that they are made and pinned with
 * the rest.  The program never looks at them.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPBLOCK_MAX_RULES_DEFAULT *IPBLOCK_CLAIMS_PER_RULE);
	__type(key, struct ipblock_owner_key);
	__type(value, struct ipblock_owner);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} owners_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IPBLOCK_SOURCES_MAX);
	__type(key, __u32);
	__type(value, struct ipblock_source);
} sources_map SEC(".maps");

/* One slot-hash probe per family, checked once by the verifier (flat_lookup.h). */
DEFINE_FLAT_PROBE(flat4_probe, flat4_slots)
DEFINE_FLAT_PROBE(flat6_probe, flat6_slots)

static __always_inline int account(struct xdp_md *ctx, __u32 slot, int verdict)
{
	__u32 idx = ipblock_stat_index(ctx->ingress_ifindex, slot);
	struct ipblock_stat_slot *st = bpf_map_lookup_elem(&stats_map, &idx);

	if (st) {
		st->c.packets++;
		st->c.bytes += ctx->data_end - ctx->data;
	}
	return verdict;
}

/*
 * A hit of the rule with id in hits, on this CPU, at now_ns.  A segment or
 * element that is not there (an id the tools have not given counters yet)
 * counts nothing.
 */
static __always_inline void count_rule(void *hits, __u32 id, __u64 len, __u64 now_ns)
{
	__u32 k = id >> FLAT_HITS_SEG_SHIFT;
	void *seg = bpf_map_lookup_elem(hits, &k);
	struct ipblock_rule_counter *c;

	if (!seg)
		return;
	k = id & (FLAT_HITS_SEG_ELEMS - 1);
	c = bpf_map_lookup_elem(seg, &k);
	if (!c)
		return;
	c->packets++;
	c->bytes += len;
	c->last_ns = now_ns;
}

#define NSEC_PER_SEC 1000000000ull

/* Whether the drop log is on: one array load on a drop while it is off. */
static __always_inline int droplog_on(void)
{
	__u32 k = IPBLOCK_CONFIG_DROPLOG;
	struct ipblock_droplog_config *cfg = bpf_map_lookup_elem(&config_map, &k);

	return cfg && (cfg->rate | cfg->sample);
}

/*
 * Whether this CPU's bucket lets one more drop be reported at now_ns (the
 * stats slot's clock, which moves once a tick): a token, else every
 * sample-th drop.  The bucket is refilled when the clock moved, never by
 * more than a second's worth (rate).
 */
static __always_inline int droplog_admit(struct ipblock_droplog_state *s,
					 const struct ipblock_droplog_config *cfg, __u64 now_ns)
{
	__u32 rate = cfg->rate, sample = cfg->sample;

	if (now_ns != s->seen_ns) {
		__u64 d = now_ns - s->refill_ns, add;

		s->seen_ns = now_ns;
		if (d >= NSEC_PER_SEC) {
			s->tokens = rate;
			s->refill_ns = now_ns;
		} else if (rate && (add = d * rate / NSEC_PER_SEC)) {
			s->tokens = s->tokens + add > rate ? rate : s->tokens + add;
			s->refill_ns += add * NSEC_PER_SEC / rate;
		}
	}
	if (s->tokens) {
		s->tokens--;
		return 1;
	}
	if (!sample)
		return 0;
	if (s->skip) {
		s->skip--;
		return 0;
	}
	s->skip = sample - 1;
	return 1;
}

/*
 * Report a drop judged by entry e (family 4 or 6) into the drop log if the
 * bucket admits it: time, interface, source, rule id, length, L4 protocol
 * and ports.  A subprogram, not inlined: it parses the frame again (only
 * the reported drops pay that).  Static, not global: Linux 5.10 refuses a
 * global function's context argument when libxdp loads the program as an
 * extension of its dispatcher ("Unrecognized arg#0 type PTR").
 */
static __attribute__((noinline)) int ipblock_droplog(struct xdp_md *ctx, __u32 e, __u32 family,
						     __u64 now_ns)
{
	__u32 zero = 0, k = IPBLOCK_CONFIG_DROPLOG;
	struct ipblock_droplog_config *cfg = bpf_map_lookup_elem(&config_map, &k);
	struct ipblock_droplog_state *s = bpf_map_lookup_elem(&droplog_state, &zero);
	struct ipblock_drop_event *ev;
	struct cursor c;
	__u8 proto = 0;
	__be16 eth;

	if (!cfg || !s || !droplog_admit(s, cfg, now_ns))
		return 0;
	ev = bpf_ringbuf_reserve(&droplog_ring, sizeof(*ev), 0);
	if (!ev) {
		s->lost++;
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->time_ns = bpf_ktime_get_ns();
	ev->ifindex = ctx->ingress_ifindex;
	ev->rule_id = flat_entry_id(e);
	ev->frame_len = ctx->data_end - ctx->data;
	ev->family = family;
	cursor_init(&c, ctx);
	eth = parse_eth_vlans(&c);
	if (family == 4 && eth == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ipv4(&c);

		if (ip) {
			__builtin_memcpy(ev->addr, &ip->saddr, 4);
			proto = ip->protocol;
			if (ip->frag_off & bpf_htons(0x1fff))
				proto = 0; /* a later fragment: no ports to read */
			ev->l4_proto = ip->protocol;
		}
	} else if (family == 6 && eth == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ipv6(&c);

		if (ip6) {
			__builtin_memcpy(ev->addr, &ip6->saddr, 16);
			proto = ip6->nexthdr;
			ev->l4_proto = proto;
		}
	}
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__be16 *ports = c.pos;

		if ((void *)(ports + 2) <= c.end) {
			ev->sport = ports[0];
			ev->dport = ports[1];
			ev->flags |= IPBLOCK_DROP_PORTS;
		}
	}
	/*
	 * A reader is woken only when the ring is an eighth full: a wakeup per
	 * event (an IPI to the reader's CPU) cost 10 us each here, 20 ns a
	 * drop at 1 in 1000.  Readers poll with a timeout for the rest.
	 */
	bpf_ringbuf_submit(ev, bpf_ringbuf_query(&droplog_ring, BPF_RB_AVAIL_DATA) >=
					       IPBLOCK_DROPLOG_BYTES / 8
				       ? BPF_RB_FORCE_WAKEUP
				       : BPF_RB_NO_WAKEUP);
	s->emitted++;
	return 1;
}

/*
 * The verdict of a flat entry.  A miss counts in its stats slot only; a
 * rule's hit in its verdict's slot and in the rule's own counter, with the
 * slot's clock, which reads the time once a tick (jiffies are one inlined
 * load; bpf_ktime_get_ns() a call of 20-30 ns).
 */
static __always_inline int judge_entry(struct xdp_md *ctx, __u32 e, void *hits, __u32 family)
{
	__u32 slot = flat_entry_deny(e) ? IPBLOCK_STAT_DROP : IPBLOCK_STAT_PASS_ALLOW;
	struct ipblock_stat_slot *st;

	if (!e)
		return account(ctx, IPBLOCK_STAT_PASS_NOMATCH, XDP_PASS);
	slot = ipblock_stat_index(ctx->ingress_ifindex, slot);
	st = bpf_map_lookup_elem(&stats_map, &slot);
	if (st) {
		__u64 now = bpf_jiffies64(), len = ctx->data_end - ctx->data;

		/* A length, not two packet pointers, lives across the calls below. */
		asm volatile("" : "+r"(len));

		st->c.packets++;
		st->c.bytes += len;
		if (st->tick != now) {
			st->tick = now;
			st->tick_ns = bpf_ktime_get_ns();
		}
		count_rule(hits, flat_entry_id(e), len, st->tick_ns);
		if (flat_entry_deny(e) && droplog_on())
			ipblock_droplog(ctx, e, family, st->tick_ns);
	}
	return flat_entry_deny(e) ? XDP_DROP : XDP_PASS;
}

/* Read once per packet: the whole packet is judged by one rule set. */
static __always_inline __u32 active_set(void)
{
	__u32 zero = 0;
	struct ipblock_config *cfg = bpf_map_lookup_elem(&config_map, &zero);

	return cfg ? cfg->active_set & 1 : 0;
}

SEC("xdp")
int ipblock_xdp(struct xdp_md *ctx)
{
	struct flat_maps m4 = { &flat4_blocks, &flat4_chunks, &flat4_ext, &flat4_slots,
				flat4_probe };
	struct flat_maps m6 = { &flat6_blocks, &flat6_chunks, &flat6_ext, &flat6_slots,
				flat6_probe };
	struct cursor c;
	__be16 proto;

	cursor_init(&c, ctx);
	proto = parse_eth_vlans(&c);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ipv4(&c);

		if (!ip)
			goto other;
		return judge_entry(ctx, flat_lookup_v4(&m4, active_set(), ip->saddr), &flat4_hits,
				   4);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ipv6(&c);

		if (!ip6)
			goto other;
		return judge_entry(ctx, flat_lookup_v6(&m6, active_set(), &ip6->saddr), &flat6_hits,
				   6);
	}
other:
	return account(ctx, IPBLOCK_STAT_PASS_OTHER, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
