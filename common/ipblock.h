/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ABI shared by the XDP program and every user-space tool: map key and
 * value layouts, counter indexes, pin directory and the list of maps; the
 * flat tables' format is in flat_format.h, included here.  Anything the
 * kernel and user space must agree on lives here and nowhere else, and
 * nothing here is code of one side only.
 */
#ifndef IPBLOCK_H
#define IPBLOCK_H

#include <linux/bpf.h>
#include <linux/types.h>

#include "flat_format.h"

/* Where the loader pins the shared maps; --pin-dir overrides it. */
#define IPBLOCK_PIN_DIR_DEFAULT "/sys/fs/bpf/ipblock"

/* The XDP program's function name, which is also its kernel program name. */
#define IPBLOCK_PROG_NAME "ipblock_xdp"

/*
 * Default ceiling of rules per family (the tries' max_entries).  Memory
 * follows the rules, not the ceiling: it only stops a runaway writer.
 */
#define IPBLOCK_MAX_RULES_DEFAULT 4000000

/*
 * LPM trie keys.  prefixlen first, then the address in network byte order, as
 * BPF_MAP_TYPE_LPM_TRIE requires.
 */
struct ipblock_key_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct ipblock_key_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

enum ipblock_action {
	IPBLOCK_ACTION_ALLOW = 1,
	IPBLOCK_ACTION_DENY = 2,
};

/*
 * Value of both tries.  prefixlen repeats the key's length so that a lookup,
 * which answers with the longest match, also says which rule matched (exact
 * reads and a future "which rule judges ADDR" need it).  rule_id is the
 * prefix's id in the flat tables (dense, per family, the same in both sets;
 * the flat entries carry it to the packet path), which per-rule counters
 * and user-space metadata (added-at, expiry, comment) will be indexed by;
 * 0 means "no id".  flags is reserved and 0.
 */
struct ipblock_rule {
	__u8 action;	/* enum ipblock_action */
	__u8 prefixlen; /* the key's prefix length */
	__u16 flags;
	__u32 rule_id;
};

/*
 * Entry IPBLOCK_CONFIG_MAIN of config_map.  generation is bumped by every writer when
 * it takes the pin directory's exclusive lock (pins_lock()), so that the
 * service sees a change by any tool and saves the rule state; the program
 * reads only active_set, which shares its first 8 bytes with flags.
 */
struct ipblock_config {
	__u32 active_set; /* 0: set A, 1: set B */
	__u32 flags;	  /* IPBLOCK_CONFIG_*; the program reads none of them */
	__u64 generation; /* changes of the rules so far; wraps */
};

/* config_map's entries: the main one, the drop log's (one 8-byte value each). */
enum ipblock_config_entry {
	IPBLOCK_CONFIG_MAIN = 0,
	IPBLOCK_CONFIG_DROPLOG,
	IPBLOCK_CONFIG_ENTRIES,
};

/*
 * Entry IPBLOCK_CONFIG_DROPLOG of config_map: the sampled drop log, off
 * (zeroes) by default.  Each CPU may report rate drops a second (a token
 * bucket holding at most a second's worth), and beyond them one drop in
 * sample (0: none).  Changed while packets flow, a value is read whole.
 */
struct ipblock_droplog_config {
	__u32 rate;
	__u32 sample;
	__u64 unused; /* the entries share struct ipblock_config's size */
};

_Static_assert(sizeof(struct ipblock_droplog_config) == sizeof(struct ipblock_config),
	       "config_map's entries share one value size");

/* The drop log's ring buffer, shared by the CPUs (a power of two of pages). */
#define IPBLOCK_DROPLOG_BYTES (256 * 1024)

/* ipblock_drop_event.flags */
#define IPBLOCK_DROP_PORTS 0x1 /* sport and dport were parsed (TCP or UDP, first fragment) */

/*
 * One dropped packet in the drop log (ring buffer droplog_ring).  addr is
 * the source, IPv4 in addr[0..3]; ports in network byte order.
 */
struct ipblock_drop_event {
	__u64 time_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u32 ifindex; /* the interface it arrived on */
	__u32 rule_id; /* the deny rule that judged it (its family's id) */
	__u32 frame_len;
	__u8 family;   /* 4 or 6 */
	__u8 l4_proto; /* IPPROTO_* of the IPv4 header or the IPv6 next header */
	__u8 flags;    /* IPBLOCK_DROP_* */
	__u8 pad;
	__be16 sport;
	__be16 dport;
	__u32 pad2;
	__u8 addr[16];
};

/* Per-CPU state of the drop log's token bucket, and what it did. */
struct ipblock_droplog_state {
	__u64 refill_ns; /* the time the tokens are counted up to */
	__u64 seen_ns;	 /* the clock (stats slot) when last looked at */
	__u32 tokens;
	__u32 skip;    /* drops to let go before the next sampled one */
	__u64 emitted; /* events put in the ring */
	__u64 lost;    /* events the ring had no room for */
};

/* Ring buffers have no keys or values: their layout's sizes are 0. */
struct ipblock_nothing {
};

/*
 * A writer is changing the rules: set before its first change, cleared
 * after its last.  Found set by the next writer, it means one died half-way
 * and the flat tables may disagree with the tries, so they are recompiled.
 */
#define IPBLOCK_CONFIG_DIRTY 0x1

/* Index into the per-CPU stats array: one slot per verdict. */
enum ipblock_stat {
	IPBLOCK_STAT_PASS_NOMATCH = 0, /* IP packet, no rule matched */
	IPBLOCK_STAT_PASS_ALLOW,       /* longest match was an allow rule */
	IPBLOCK_STAT_DROP,	       /* longest match was a deny rule */
	IPBLOCK_STAT_PASS_OTHER,       /* not IPv4/IPv6, or truncated: passed unparsed */
	IPBLOCK_STAT_MAX,
};

struct ipblock_counter {
	__u64 packets;
	__u64 bytes;
};

/*
 * stats_map holds IPBLOCK_STAT_MAX slots per interface: interfaces with an
 * ifindex below IPBLOCK_STAT_IFACES have their own, every other one shares
 * index 0's (ifindex 0 is never a device's).  Indexing by ifindex costs the
 * packet path nothing (a hash of ifindexes would cost a lookup a packet),
 * and 256 interfaces take 32 KiB per CPU.
 */
#define IPBLOCK_STAT_IFACES 256

static inline __u32 ipblock_stat_index(__u32 ifindex, __u32 verdict)
{
	return (ifindex < IPBLOCK_STAT_IFACES ? ifindex : 0) * IPBLOCK_STAT_MAX + verdict;
}

/*
 * Value of stats_map, per CPU and verdict: its counter, and for the two
 * verdicts a rule gives (drop, allow) the clock of that rule's hit: tick,
 * the jiffies the slot last saw, and tick_ns, bpf_ktime_get_ns() when it
 * first saw them.  The clock is read once per tick and slot, not per
 * packet (a read costs 20-30 ns where a hit costs 10), so a rule's last
 * hit is known to a tick (1-10 ms) without knowing HZ.
 */
struct ipblock_stat_slot {
	struct ipblock_counter c;
	__u64 tick;
	__u64 tick_ns;
};

/*
 * Per-rule counters: element id of a family's flat*_hits pool (segments of
 * FLAT_HITS_SEG_ELEMS, per-CPU arrays), counted by the program when rule
 * id judges a packet (a miss touches nothing).  last_ns is the CPU's last
 * hit, to a tick (CLOCK_MONOTONIC, from struct ipblock_stat_slot's clock), 0
 * for none.
 */
struct ipblock_rule_counter {
	__u64 packets;
	__u64 bytes;
	__u64 last_ns;
};

/*
 * Rule sources.  Every rule is claimed by one or more named sources
 * ("static" by default; "fail2ban-sshd", "crowdsec", a list's name):
 * owners_map holds one claim per (source, prefix) with its action and
 * deadline, sources_map the sources' names.  The tries hold the one verdict
 * the claims of a prefix resolve to (an allow from any source beats a deny
 * of the same prefix), so the program reads neither map; common/owners.[ch]
 * keep the three in step.
 */
#define IPBLOCK_SOURCES_MAX 256
#define IPBLOCK_SOURCE_NAME_LEN 32 /* with the NUL */
#define IPBLOCK_SOURCE_DEFAULT "static"

/* owners_map holds this many claims per rule of the tries' capacity. */
#define IPBLOCK_CLAIMS_PER_RULE 2

/*
 * owners_map is an LPM trie used as an exact-match map (every key carries
 * the full IPBLOCK_OWNER_KEY_BITS): unlike a hash map, whose buckets are
 * allocated for max_entries up front, its memory follows the claims.
 */
#define IPBLOCK_OWNER_KEY_BITS 160

struct ipblock_owner_key {
	__u32 prefixlen; /* always IPBLOCK_OWNER_KEY_BITS */
	__u16 source;	 /* index into sources_map */
	__u8 family;	/* AF_INET or AF_INET6 */
	__u8 len;	 /* the prefix length: 0..32 or 0..128 */
	__u8 addr[16];	/* network byte order, host bits clear; IPv4 in addr[0..3] */
};

struct ipblock_owner {
	__u8 action; /* enum ipblock_action */
	__u8 pad[7];
	__u64 deadline; /* CLOCK_REALTIME second the claim expires at; 0: never */
};

struct ipblock_source {
	char name[IPBLOCK_SOURCE_NAME_LEN]; /* "": a free slot */
	/* No claim of the source expires before it (0: none has a deadline); may be early. */
	__u64 next_deadline;
};

/*
 * A writer is changing the claims and the tries: set before, cleared after.
 * Found set, the tries are brought back to what the claims resolve to.
 */
#define IPBLOCK_CONFIG_OWNERS_DIRTY 0x2

/*
 * Every map ipblock pins, written once: X(ID, name, type, key, value, flags,
 * max_entries).  name is the map's name in the program and its pin name
 * (stable: tools outside ipblock may read the pins); ID makes its index,
 * IPBLOCK_MAP_<ID>.  max_entries 0: chosen when the maps are created (the
 * tries' capacity, the ceiling of rules per family; owners_map holds
 * IPBLOCK_CLAIMS_PER_RULE times as many claims).
 *
 * Each family has two tries, set A (ipv4_map, ipv6_map) and set B (the _b
 * maps), and config_map says which set is active.  At rest both tries hold
 * the same rules, so either shows the whole rule set.  A replace fills the
 * inactive set, switches to it and brings the other trie along: every
 * packet is judged by the complete old set or the complete new one, never
 * a mix.  The program reads only the active set's flat table
 * (flat_format.h): per family its blocks and the pools of chunks, ext
 * records and slots, each pool an array of maps holding its segments; the
 * counters and the ids (shared by both sets) are pools that only user space
 * reads; the hits (per-rule counters, per-CPU, shared by both sets) a pool
 * only the program writes.
 */
#define IPBLOCK_MAP_TABLES(X, f)                                                                      \
	X(FLAT##f##_BLOCKS, flat##f##_blocks, BPF_MAP_TYPE_ARRAY, __u32, __u64, BPF_F_MMAPABLE,    \
	  FLAT_BLOCKS_ELEMS)                                                                       \
	X(FLAT##f##_CHUNKS, flat##f##_chunks, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, 0,         \
	  FLAT_SETS *FLAT_SEGS)                                                                    \
	X(FLAT##f##_EXT, flat##f##_ext, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, 0,               \
	  FLAT_SETS *FLAT_SEGS)                                                                    \
	X(FLAT##f##_SLOTS, flat##f##_slots, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, 0,           \
	  FLAT_SETS *FLAT_SEGS)                                                                    \
	X(FLAT##f##_CNT, flat##f##_cnt, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, 0,               \
	  FLAT_SETS *FLAT_SEGS)                                                                    \
	X(FLAT##f##_IDS, flat##f##_ids, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, 0, FLAT_SEGS)    \
	X(FLAT##f##_HITS, flat##f##_hits, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, 0, FLAT_SEGS)

#define IPBLOCK_MAP_LIST(X)                                                                        \
	X(V4, ipv4_map, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v4, struct ipblock_rule,         \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(V6, ipv6_map, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v6, struct ipblock_rule,         \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(V4_B, ipv4_map_b, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v4, struct ipblock_rule,     \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(V6_B, ipv6_map_b, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v6, struct ipblock_rule,     \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(CONFIG, config_map, BPF_MAP_TYPE_ARRAY, __u32, struct ipblock_config, 0,                 \
	  IPBLOCK_CONFIG_ENTRIES)                                                                  \
	X(STATS, stats_map, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct ipblock_stat_slot, 0,         \
	  IPBLOCK_STAT_MAX * IPBLOCK_STAT_IFACES)                                                                        \
	X(OWNERS, owners_map, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_owner_key,                     \
	  struct ipblock_owner,                                                                    \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(SOURCES, sources_map, BPF_MAP_TYPE_ARRAY, __u32, struct ipblock_source, 0,               \
	  IPBLOCK_SOURCES_MAX)                                                                     \
	X(DROPLOG, droplog_ring, BPF_MAP_TYPE_RINGBUF, struct ipblock_nothing,                     \
	  struct ipblock_nothing, 0, IPBLOCK_DROPLOG_BYTES)                                        \
	X(DROPLOG_STATE, droplog_state, BPF_MAP_TYPE_PERCPU_ARRAY, __u32,                          \
	  struct ipblock_droplog_state, 0, 1)                                                      \
	IPBLOCK_MAP_TABLES(X, 4)                                                                      \
	IPBLOCK_MAP_TABLES(X, 6)

#define IPBLOCK_MAP_INDEX(id, ...) IPBLOCK_MAP_##id,

/* Index of each map in IPBLOCK_MAP_LIST; IPBLOCK_MAP_COUNT maps in all. */
enum ipblock_map { IPBLOCK_MAP_LIST(IPBLOCK_MAP_INDEX) IPBLOCK_MAP_COUNT };

/* A family's flat maps, in the order IPBLOCK_MAP_TABLES gives them. */
enum ipblock_flat_map {
	IPBLOCK_FLAT_BLOCKS,
	IPBLOCK_FLAT_CHUNKS,
	IPBLOCK_FLAT_EXT,
	IPBLOCK_FLAT_SLOTS,
	IPBLOCK_FLAT_CNT,
	IPBLOCK_FLAT_IDS,
	IPBLOCK_FLAT_HITS,
	IPBLOCK_FLAT_MAPS,
};

_Static_assert(IPBLOCK_MAP_FLAT4_HITS - IPBLOCK_MAP_FLAT4_BLOCKS == IPBLOCK_FLAT_HITS &&
		       IPBLOCK_MAP_FLAT6_HITS - IPBLOCK_MAP_FLAT6_BLOCKS == IPBLOCK_FLAT_HITS,
	       "the flat maps of a family are listed in enum ipblock_flat_map order");

#endif /* IPBLOCK_H */
