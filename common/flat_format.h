/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables' format: what the XDP program reads and user space writes
 * (part of the ABI; ipblock.h includes it).  The tries stay the
 * authoritative rule store; one table per family and rule set (A, B) is
 * compiled from them in user space (common/flat.h) and read by the packet
 * path (bpf/flat_lookup.h).  README's Design section says why this shape
 * and what each part costs.
 *
 * Shape, per family (W = 32 or 128 address bits, N = top bits):
 *
 *   top[2^N]  u32, indexed by the address's top N bits (its "region").  An
 *             entry is the verdict of the longest rule of length <= N that
 *             covers the region when no longer rule lies inside it (one load
 *             answers), FLAT_FALLBACK, or FLAT_EXT | index of an ext record.
 *   sum[2^(N-8)]  u32 after top, one per block of 2^FLAT_SUM_SHIFT regions
 *             (a /16): the entry every region of the block has, when they
 *             all have the same plain verdict, else FLAT_SUM_MIXED.  top is
 *             too big to stay in the caches; sum is small enough to, and a
 *             list of thousands of prefixes leaves nearly every block
 *             uniform, so most packets from random sources never touch top.
 *   ext       per region holding rules longer than N: the region's <= N
 *             verdict ("base") and the distinct longer lengths in use there,
 *             longest first, one per byte of a u64 (at most 8); for an IPv4
 *             region with a single long rule, that rule (FLAT_LENS_INLINE).
 *   slots     one open-addressing hash (linear probing, at most
 *             FLAT_MAX_PROBE slots from home) of every rule longer than N,
 *             keyed by (masked address, length).
 *
 * A lookup reads sum; in a mixed block it reads top; for an ext region it
 * probes the region's lengths longest first and stops at the first hit,
 * else answers base.  A region's bloom word has one bit set per long rule
 * (flat_bloom_bit() of its key's hash): a probe whose bit is clear would
 * miss and is skipped.  Bits are not cleared when a rule goes (other rules
 * may share them): a stale bit costs a probe, never a verdict.  Verdicts
 * are those of an LPM over the rules: short rules are pushed into every
 * region they cover (a longer short rule wins), long ones are found exactly.
 *
 * Crowded regions: a region whose long rules use more than 8 distinct
 * lengths (IPv6 only: IPv4 has 8 lengths past /24) is split into a tree of
 * nodes.  Its ext record's lens is FLAT_LENS_SPLIT | root << 8, root being
 * the data-map element of the tree's first node.  A node is an ext record
 * too: base (the verdict of the longest rule no longer than the node's
 * depth covering it, pushed down), lens and more (at most 16 of the lengths
 * under it, the shortest ones, longest first: the 8 longest in lens) and
 * child, the depth c of its children (0: a leaf; c is its longest listed
 * length).  Each child -- one per /c prefix holding rules longer than c --
 * is found in the slot hash under a marker key (prefix /c, tag
 * FLAT_TAG_NODE | c) whose entry is the child's element.  A lookup walks
 * down while a marker matches, then probes the last node's lengths longest
 * first, else answers its base: a child's base already holds every shorter
 * verdict, so a found child never needs its parent's lengths.  Nodes never
 * change once a region points at them.
 *
 * Fallback: a region whose rules cannot all be represented -- a rule that
 * found no slot within FLAT_MAX_PROBE of its home, no free ext record, or a
 * tree deeper than FLAT_MAX_NODES -- answers FLAT_FALLBACK and the program
 * consults the trie of the same set.
 *
 * Entries (32 bits; the same encoding in top, ext.base and slots):
 *   0                       no rule matches
 *   rule_id << 1 | deny     rule_id in 1..FLAT_MAX_ID: the verdict needs no
 *                           further load, and the id indexes per-rule counters
 *   FLAT_EXT | i            (top only) data-map element i is an ext record
 *   FLAT_FALLBACK           (top only) ask the trie
 *
 * Rule ids are small dense integers per family, shared by sets A and B (a
 * prefix keeps its id in both).  The ids map, indexed by id, holds the
 * rule's prefix length and one bit per set the rule is in.
 *
 * Maps, per family, all BPF_MAP_TYPE_ARRAY with BPF_F_MMAPABLE, key u32
 * (ipblock.h lists them; user space sizes them from max_rules):
 *   top  (one per set)  value 8 bytes (two entries), 2^(N-1) elements of
 *                       top, then 2^(N-9) of sum
 *   data (one per set)  value 24 bytes: a user-only header (FLAT_SLOT_BASE
 *                       elements), the slots, the ext records, then
 *                       user-only per-region counters
 *   ids  (one, shared)  value 8 (struct flat_rule), element 0 is a header
 * Array maps round values to 8 bytes, which is why top packs two entries.
 *
 * Ordering: writers publish with aligned 32/64-bit stores in an order that
 * leaves every address judged by its old or its new rule (a slot before its
 * length is listed, an ext record before top points at it, a block marked
 * mixed before any of its top entries changes); readers rely on loads not
 * passing loads (x86).  bpf/flat_lookup.h says what it reads in which order.
 */
#ifndef IPBLOCK_FLAT_FORMAT_H
#define IPBLOCK_FLAT_FORMAT_H

#include <linux/types.h>

/* Inlined on both sides: the verifier needs no calls, user space no cost. */
#define FLAT_INLINE static inline __attribute__((always_inline))

#define FLAT_V4_TOP_BITS 24
#define FLAT_V6_TOP_BITS 24

#define FLAT_EXT      0x80000000u
#define FLAT_FALLBACK 0xffffffffu
#define FLAT_MAX_ID   0x3fffffffu

/* How far from its home a slot may lie; readers scan at most this far. */
#define FLAT_MAX_PROBE 32
/* Distinct long lengths one region can list (one per byte of ext.lens). */
#define FLAT_MAX_LENS 8
/* ext.lens value that sends the region's lookups to the trie. */
#define FLAT_LENS_FALLBACK 0xffull

/* Regions per block summary (2^8: a block is a /16), and its "read top" value. */
#define FLAT_SUM_SHIFT 8
#define FLAT_SUM_MIXED FLAT_EXT

/* Data-map elements before the first slot: user space's header. */
#define FLAT_SLOT_BASE 4

/* Value sizes of the top, data and ids maps. */
#define FLAT_TOP_VALUE_SIZE  8
#define FLAT_DATA_VALUE_SIZE 24
#define FLAT_IDS_VALUE_SIZE  8

/*
 * ext.lens of an IPv4 region whose only long rule is kept in the record:
 * byte 0 its length (25..32), byte 1 zero, byte 2 the rule's last address
 * byte (masked; the region gives the other three), byte 3 this marker,
 * bytes 4..7 its entry.  The rule is in the slot hash too: the record is
 * a copy that saves the probe.
 */
#define FLAT_LENS_INLINE 0x5a

FLAT_INLINE __u64 flat_lens_inline(__u32 len, __u32 last_byte, __u32 entry)
{
	return len | (__u64)(last_byte & 0xff) << 16 | (__u64)FLAT_LENS_INLINE << 24 |
	       (__u64)entry << 32;
}

/* Whether an IPv4 region's lens holds its rule inline (IPv6 never does). */
FLAT_INLINE int flat_lens_is_inline(__u64 lens)
{
	return ((lens >> 24) & 0xff) == FLAT_LENS_INLINE && !((lens >> 8) & 0xff) &&
	       (lens & 0xff) <= 32;
}

/* The entry an inline lens gives IPv4 address a (host order), or base. */
FLAT_INLINE __u32 flat_inline_entry(__u64 lens, __u32 a, __u32 base)
{
	__u32 len = lens & 0x3f, last = (a & (~0u << (32 - len))) & 0xff;

	return last == ((lens >> 16) & 0xff) ? (__u32)(lens >> 32) : base;
}

/* ext.lens value of a split region: low byte, the root node's element above it. */
#define FLAT_LENS_SPLIT 0xfeull
/*
 * Lengths one node of a split region's tree lists: 8 in lens, 8 more in
 * more.  16 rather than 8 halves the levels a host under a finely cut
 * prefix walks through, for at most 16 probes in a leaf.
 */
#define FLAT_NODE_LENS 16
/* Levels of nodes in a split region's tree (16 lengths each: 104 IPv6 lengths past /24). */
#define FLAT_MAX_NODES 7

/*
 * Slot tag (word >> 32): 0 empty, 1..128 a live prefix's length,
 * FLAT_TAG_NODE | c a node's marker at depth c, or dead (FLAT_TAG_DEAD |
 * the tag it had).
 */
#define FLAT_TAG_DEAD 0x100u
#define FLAT_TAG_NODE 0x200u

/*
 * One hash slot.  word is written last with one 64-bit store: tag in the
 * high half, the entry (or, for a dead slot, the time it died) in the low.
 */
struct flat_slot {
	__u64 hi; /* prefix bits 0..63, host order, host bits clear */
	__u64 lo; /* bits 64..127 (0 for IPv4) */
	__u64 word;
};

/*
 * Per-region record for regions holding rules longer than N, and the nodes
 * of a split region's tree (see above).
 */
struct flat_ext {
	__u32 base;	/* entry of the longest rule <= N (node: <= its depth) covering it */
	__u8 slot_bits; /* log2 of the slot count: readers need no config */
	__u8 child;	/* node: its children's depth, 0 for a leaf; region: 0 */
	__u8 nlens;	/* user: distinct long lengths in the region */
	__u8 state;	/* user: 1 region, 2 free, 3 node */
	__u64 lens;	/* long lengths, longest first, 0 ends; or FLAT_LENS_* */
	union {
		struct {
			__u32 nlong; /* user: long rules in region (free: next record) */
			union {
				__u32 freed_ms; /* user, free: when it was freed */
				__u32 bloom;	/* region: flat_bloom_bit() of its long rules */
			};
		};
		__u64 more; /* node: its lengths after the 8 of lens, longest first */
	};
};

/* One element of the ids map. */
struct flat_rule {
	__u8 prefixlen;
	__u8 sets;	/* bit s: in set s */
	__u8 deny_sets; /* bit s: deny in set s (for listings) */
	__u8 flags;	/* FLAT_RULE_RESERVED between alloc and first add */
	__u32 reserved;
};

#define FLAT_RULE_RESERVED 0x1

_Static_assert(sizeof(struct flat_slot) == FLAT_DATA_VALUE_SIZE, "a slot is one data element");
_Static_assert(sizeof(struct flat_ext) == FLAT_DATA_VALUE_SIZE, "a record is one data element");
_Static_assert(sizeof(struct flat_rule) == FLAT_IDS_VALUE_SIZE, "a rule is one ids element");

/*
 * Home slot of a key in a table of 2^bits slots (6..30): one multiply
 * folds the halves and the length, a second spreads them, and the top bits
 * of a product depend on every bit below them.  User space and the BPF
 * program must agree on it bit for bit.
 */
FLAT_INLINE __u64 flat_hash(__u64 hi, __u64 lo, __u32 len)
{
	__u64 x = hi ^ (lo * 0x9e3779b97f4a7c15ull) ^ len;

	return x * 0xd6e8feb86659fd93ull;
}

FLAT_INLINE __u32 flat_home(__u64 hi, __u64 lo, __u32 len, __u32 bits)
{
	return (__u32)(flat_hash(hi, lo, len) >> (64 - bits));
}

/*
 * The bit a long rule with key hash h sets in its region's bloom word: bits
 * 26..30 of the hash, below those any home takes (slot_bits <= 30).
 */
FLAT_INLINE __u32 flat_bloom_bit(__u64 h)
{
	return 1u << ((h >> 26) & 31);
}

/* Clear the bits of (hi, lo) past len (1..128). */
FLAT_INLINE void flat_mask(__u64 *hi, __u64 *lo, __u32 len)
{
	if (len <= 64) {
		*hi &= ~0ull << (64 - len);
		*lo = 0;
	} else {
		*lo &= ~0ull << (128 - len);
	}
}

/* Whether an entry (not FLAT_FALLBACK) names a deny rule. */
FLAT_INLINE int flat_entry_deny(__u32 e)
{
	return e & 1;
}

/* The rule id an entry names; 0 for "no rule". */
FLAT_INLINE __u32 flat_entry_id(__u32 e)
{
	return e >> 1;
}

#endif /* IPBLOCK_FLAT_FORMAT_H */
