/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ABI shared by the XDP program and every user-space tool: map key and
 * value layouts, counter indexes, pin directory and map names.  Anything the
 * kernel and user space must agree on lives here and nowhere else.
 */
#ifndef IPBLOCK_H
#define IPBLOCK_H

#include <linux/types.h>

/* Where the loader pins the shared maps; --pin-dir overrides it. */
#define IPBLOCK_PIN_DIR_DEFAULT "/sys/fs/bpf/ipblock"

/*
 * Pinned map names: stable, tools outside ipblock may read them.
 *
 * Each family has two tries, set A (ipv4_map, ipv6_map) and set B (the _b
 * maps), and config_map says which set the program reads.  At rest both
 * sets hold the same rules and A is active, so ipv4_map/ipv6_map always
 * show the whole rule set.  A replace fills B, switches to B, brings A up to
 * date and switches back: every packet is judged by the complete old set or
 * the complete new one, never a mix.
 */
#define IPBLOCK_MAP_V4	   "ipv4_map"
#define IPBLOCK_MAP_V6	   "ipv6_map"
#define IPBLOCK_MAP_V4_B   "ipv4_map_b"
#define IPBLOCK_MAP_V6_B   "ipv6_map_b"
#define IPBLOCK_MAP_CONFIG "config_map"
#define IPBLOCK_MAP_STATS  "stats_map"

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
 * reads and a future "which rule judges ADDR" need it).  rule_id will index
 * the per-rule counter array and user-space metadata (added-at, expiry,
 * comment) without changing the pinned maps' names or the packet path; 0
 * means "no id assigned".  flags is reserved and 0.
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
	__u32 flags;	  /* reserved, 0 */
};

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

#endif /* IPBLOCK_H */
