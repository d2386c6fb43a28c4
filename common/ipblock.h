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

/* Default capacity of each family's trie (prefixes). */
#define IPBLOCK_MAX_RULES_DEFAULT 1000000

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
 * 0 means "no id" (--lookup trie assigns none).  flags is reserved and 0.
 */
struct ipblock_rule {
	__u8 action;	/* enum ipblock_action */
	__u8 prefixlen; /* the key's prefix length */
	__u16 flags;
	__u32 rule_id;
};

/* The one entry of config_map. */
struct ipblock_config {
	__u32 active_set; /* 0: set A, 1: set B */
	__u32 flags;	  /* IPBLOCK_CONFIG_*; the program reads none of them */
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
 * Every map ipblock pins, written once: X(ID, name, type, key, value, flags,
 * max_entries).  name is the map's name in the program and its pin name
 * (stable: tools outside ipblock may read the pins); ID makes its index,
 * IPBLOCK_MAP_<ID>.  max_entries 0: chosen when the maps are created (the
 * tries' capacity, the flat tables' sizes).
 *
 * Each family has two tries, set A (ipv4_map, ipv6_map) and set B (the _b
 * maps), and config_map says which set the program reads.  At rest both
 * sets hold the same rules and A is active, so ipv4_map/ipv6_map always
 * show the whole rule set.  A replace fills B, switches to B, brings A up to
 * date and switches back: every packet is judged by the complete old set or
 * the complete new one, never a mix.  Beside each trie the flat tables
 * (flat_format.h): per family a top and a data array for each set, and one
 * ids array shared by both sets.  With --lookup trie the top arrays hold a
 * single entry saying "ask the trie", and the data and ids arrays one
 * unused element.
 */
#define IPBLOCK_MAP_LIST(X)                                                                        \
	X(V4, ipv4_map, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v4, struct ipblock_rule,         \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(V6, ipv6_map, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v6, struct ipblock_rule,         \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(V4_B, ipv4_map_b, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v4, struct ipblock_rule,     \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(V6_B, ipv6_map_b, BPF_MAP_TYPE_LPM_TRIE, struct ipblock_key_v6, struct ipblock_rule,     \
	  BPF_F_NO_PREALLOC, 0)                                                                    \
	X(CONFIG, config_map, BPF_MAP_TYPE_ARRAY, __u32, struct ipblock_config, 0, 1)              \
	X(STATS, stats_map, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct ipblock_counter, 0,           \
	  IPBLOCK_STAT_MAX)                                                                        \
	X(FLAT4_TOP, flat4_top, BPF_MAP_TYPE_ARRAY, __u32, __u64, BPF_F_MMAPABLE, 0)               \
	X(FLAT4_TOP_B, flat4_top_b, BPF_MAP_TYPE_ARRAY, __u32, __u64, BPF_F_MMAPABLE, 0)           \
	X(FLAT4_DATA, flat4_data, BPF_MAP_TYPE_ARRAY, __u32, struct flat_slot, BPF_F_MMAPABLE, 0)  \
	X(FLAT4_DATA_B, flat4_data_b, BPF_MAP_TYPE_ARRAY, __u32, struct flat_slot, BPF_F_MMAPABLE, \
	  0)                                                                                       \
	X(FLAT4_IDS, flat4_ids, BPF_MAP_TYPE_ARRAY, __u32, struct flat_rule, BPF_F_MMAPABLE, 0)    \
	X(FLAT6_TOP, flat6_top, BPF_MAP_TYPE_ARRAY, __u32, __u64, BPF_F_MMAPABLE, 0)               \
	X(FLAT6_TOP_B, flat6_top_b, BPF_MAP_TYPE_ARRAY, __u32, __u64, BPF_F_MMAPABLE, 0)           \
	X(FLAT6_DATA, flat6_data, BPF_MAP_TYPE_ARRAY, __u32, struct flat_slot, BPF_F_MMAPABLE, 0)  \
	X(FLAT6_DATA_B, flat6_data_b, BPF_MAP_TYPE_ARRAY, __u32, struct flat_slot, BPF_F_MMAPABLE, \
	  0)                                                                                       \
	X(FLAT6_IDS, flat6_ids, BPF_MAP_TYPE_ARRAY, __u32, struct flat_rule, BPF_F_MMAPABLE, 0)

#define IPBLOCK_MAP_INDEX(id, ...) IPBLOCK_MAP_##id,

/* Index of each map in IPBLOCK_MAP_LIST; IPBLOCK_MAP_COUNT maps in all. */
enum ipblock_map { IPBLOCK_MAP_LIST(IPBLOCK_MAP_INDEX) IPBLOCK_MAP_COUNT };

/* A family's flat maps, in the order IPBLOCK_MAP_LIST gives them. */
enum ipblock_flat_map {
	IPBLOCK_FLAT_TOP,
	IPBLOCK_FLAT_TOP_B,
	IPBLOCK_FLAT_DATA,
	IPBLOCK_FLAT_DATA_B,
	IPBLOCK_FLAT_IDS,
	IPBLOCK_FLAT_MAPS,
};

_Static_assert(IPBLOCK_MAP_FLAT4_IDS - IPBLOCK_MAP_FLAT4_TOP == IPBLOCK_FLAT_IDS &&
		       IPBLOCK_MAP_FLAT6_IDS - IPBLOCK_MAP_FLAT6_TOP == IPBLOCK_FLAT_IDS,
	       "the flat maps of a family are listed in enum ipblock_flat_map order");

#endif /* IPBLOCK_H */
