/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables' format: what the XDP program reads and user space writes
 * (part of the ABI; ipblock.h includes it).  The tries stay the
 * authoritative rule store; the table of the active rule set is compiled
 * from them in user space (common/flat.h) and read by the packet path
 * (bpf/flat_lookup.h), which never reads the tries.  README's Design
 * section says why this shape and what each part costs.
 *
 * Shape, per family and rule set (W = 32 or 128 address bits; a "block"
 * is the address's first 16 bits, a "region" its first 24):
 *
 *   blocks[2^16]  u32 per block: the entry every region of the block has,
 *             when they all have the same plain verdict, else FLAT_EXT |
 *             c, chunk c holds the block's 256 region entries.  Small
 *             enough to stay in the caches: a list of thousands of prefixes
 *             leaves nearly every block uniform, so most packets from random
 *             sources need this one load.
 *   chunks    a pool of chunks of 256 u32 region entries: the verdict of
 *             the longest rule of length <= 24 covering the region, when no
 *             longer rule lies inside it, else FLAT_EXT | x, ext record x.
 *             Only mixed blocks have one, so memory follows the rules.
 *   ext       a pool of 24-byte records: per region holding rules longer
 *             than /24, the region's <= /24 verdict ("base") and the
 *             distinct longer lengths in use there, longest first, one per
 *             byte of a u64 (at most 8); for an IPv4 region with a single
 *             long rule, that rule (FLAT_LENS_INLINE).  Also the nodes of
 *             crowded regions' trees.
 *   slots     one open-addressing hash (linear probing, at most
 *             FLAT_MAX_PROBE slots from home) of every rule longer than
 *             /24, keyed by (masked address, length); 2^slot_bits slots,
 *             load at most 1/2.
 *
 * A lookup reads blocks; in a mixed block it reads the chunk; for an ext
 * region it probes the region's lengths longest first and stops at the
 * first hit, else answers base.  A region's bloom word has one bit set per
 * long rule (flat_bloom_bit() of its key's hash): a probe whose bit is
 * clear would miss and is skipped.  Bits are not cleared when a rule goes
 * (other rules may share them): a stale bit costs a probe, never a
 * verdict.  Verdicts are those of an LPM over the rules: short rules are
 * pushed into every region they cover (a longer short rule wins), long
 * ones are found exactly.
 *
 * Crowded regions: a region whose long rules use more than 8 distinct
 * lengths (IPv6 only: IPv4 has 8 lengths past /24) is split into a tree of
 * nodes.  Its ext record's lens is FLAT_LENS_SPLIT | root << 8, root being
 * the ext record of the tree's first node.  A node is an ext record too:
 * base (the verdict of the longest rule no longer than the node's depth
 * covering it, pushed down), lens and more (at most 16 of the lengths
 * under it, the shortest ones, longest first: the 8 longest in lens) and
 * child, the depth c of its children (0: a leaf; c is its longest listed
 * length).  Each child -- one per /c prefix holding rules longer than c --
 * is found in the slot hash under a marker key (prefix /c, tag
 * FLAT_TAG_NODE | c) whose entry is the child's ext record.  A lookup walks
 * down while a marker matches, then probes the last node's lengths longest
 * first, else answers its base: a child's base already holds every shorter
 * verdict, so a found child never needs its parent's lengths.  Nodes never
 * change once a region points at them.
 *
 * Entries (32 bits; the same encoding in blocks, chunks, ext.base, slots):
 *   0                       no rule matches
 *   rule_id << 1 | deny     rule_id in 1..FLAT_MAX_ID: the verdict needs no
 *                           further load, and the id indexes per-rule counters
 *   FLAT_EXT | i            (blocks: chunk i; chunks: ext record i)
 *
 * Rule ids are small dense integers per family, shared by sets A and B (a
 * prefix keeps its id in both).  The ids area, indexed by id, holds the
 * rule's prefix length and one bit per set the rule is in.
 *
 * Memory that grows: chunks, ext records, slots, the per-region counters
 * (user only) and the ids are kept in segments, fixed-size inner arrays of
 * an array of maps (BPF_MAP_TYPE_ARRAY_OF_MAPS), set s's segment g at
 * outer index s * FLAT_SEGS + g (the ids, shared by the sets, at g).
 * Every inner map of one outer map has the size of its template, which is
 * what lets the verifier inline a lookup in it like one in a plain array:
 * an access costs one more load (the inner map's address) than a plain
 * array's.  A table grows by segments added where its pools run out; its
 * slot hash grows (or shrinks) by a table compiled afresh in the other
 * set, which the program is switched to.  At rest only the active set has
 * segments.
 *
 * Maps, per family (ipblock.h lists them):
 *   blocks  ARRAY, value 8 bytes (two entries): set s's blocks at elements
 *           s << 15 .. (s << 15) + 2^15 - 1; then, user only, each set's
 *           header (FLAT_HDR_ELEMS elements from FLAT_HDR_BASE + s *
 *           FLAT_HDR_ELEMS)
 *   chunks  ARRAY_OF_MAPS of ARRAY, value 8, FLAT_CHUNK_SEG_ELEMS per inner
 *   ext     ARRAY_OF_MAPS of ARRAY, value 24, FLAT_EXT_SEG_ELEMS per inner
 *   slots   ARRAY_OF_MAPS of ARRAY, value 24, FLAT_SLOT_SEG_ELEMS per inner
 *   cnt     ARRAY_OF_MAPS of ARRAY, value 8, FLAT_CNT_SEG_ELEMS (user only)
 *   ids     ARRAY_OF_MAPS of ARRAY, value 8, FLAT_IDS_SEG_ELEMS (user only;
 *           element 0 is a header)
 *   hits    ARRAY_OF_MAPS of PERCPU_ARRAY, value 24, FLAT_HITS_SEG_ELEMS: the
 *           per-rule counters, segment g holding ids g * FLAT_HITS_SEG_ELEMS
 *           on, made and freed with the ids' segment g (not mmapable:
 *           per-CPU; the program writes them, user space sums them)
 * Array maps round values to 8 bytes, which is why blocks and chunks pack
 * two entries in one.
 *
 * Ordering: writers publish with aligned 32/64-bit stores in an order that
 * leaves every address judged by its old or its new rule (a slot before its
 * length is listed, an ext record before a chunk points at it, a chunk
 * filled before its block points at it, a segment in its outer map before
 * anything points into it); readers rely on loads not passing loads (x86).
 * bpf/flat_lookup.h says what it reads in which order.
 */
#ifndef IPBLOCK_FLAT_FORMAT_H
#define IPBLOCK_FLAT_FORMAT_H

#include <linux/types.h>

/* Inlined on both sides: the verifier needs no calls, user space no cost. */
#define FLAT_INLINE static inline __attribute__((always_inline))

/* Bits of a block (the blocks' index) and of a region. */
#define FLAT_BLOCK_BITS	 16
#define FLAT_REGION_BITS 24
#define FLAT_BLOCKS	 (1u << FLAT_BLOCK_BITS)
/* Region entries per chunk: the regions of one block. */
#define FLAT_CHUNK_ENTRIES (1u << (FLAT_REGION_BITS - FLAT_BLOCK_BITS))

#define FLAT_EXT    0x80000000u
#define FLAT_MAX_ID 0x3fffffffu

/* How far from its home a slot may lie; readers scan at most this far. */
#define FLAT_MAX_PROBE 32
/* Distinct long lengths one region can list (one per byte of ext.lens). */
#define FLAT_MAX_LENS 8

/* The blocks map: both sets' blocks (two entries an element), then the headers. */
#define FLAT_HDR_BASE	   FLAT_BLOCKS
#define FLAT_HDR_ELEMS	   32
#define FLAT_BLOCKS_ELEMS  (FLAT_HDR_BASE + 2 * FLAT_HDR_ELEMS)
#define FLAT_BLOCKS_VALUE  8

/*
 * Segments.  FLAT_SEGS per set and kind caps each pool (65,536 chunks, 32M
 * ext records, 64M slots, 128M counters); the sizes are a trade between
 * the memory of a table with few rules (a pool in use has at least one
 * segment) and the number of segments a large one needs, each of which
 * costs an RCU grace period to insert into its outer map.
 */
#define FLAT_SETS	     2
#define FLAT_SEGS	     2048
#define FLAT_CHUNK_SEG_SHIFT 8 /* chunks per segment: 256 (256 KiB) */
#define FLAT_EXT_SEG_SHIFT   14 /* records per segment (384 KiB) */
#define FLAT_SLOT_SEG_SHIFT  15 /* slots per segment (768 KiB) */
#define FLAT_CNT_SEG_SHIFT   FLAT_SLOT_SEG_SHIFT /* one per slot (256 KiB) */
#define FLAT_IDS_SEG_SHIFT   15 /* ids per segment (256 KiB) */
#define FLAT_CHUNK_SEG_ELEMS ((FLAT_CHUNK_ENTRIES / 2) << FLAT_CHUNK_SEG_SHIFT)
#define FLAT_EXT_SEG_ELEMS   (1u << FLAT_EXT_SEG_SHIFT)
#define FLAT_SLOT_SEG_ELEMS  (1u << FLAT_SLOT_SEG_SHIFT)
#define FLAT_CNT_SEG_ELEMS   (1u << FLAT_CNT_SEG_SHIFT)
#define FLAT_IDS_SEG_ELEMS   (1u << FLAT_IDS_SEG_SHIFT)
/* Per-rule counters: one per id, segment g of the hits beside segment g of the ids. */
#define FLAT_HITS_SEG_SHIFT FLAT_IDS_SEG_SHIFT
#define FLAT_HITS_SEG_ELEMS FLAT_IDS_SEG_ELEMS

/* Value sizes of the segments' inner arrays. */
#define FLAT_CHUNK_VALUE 8
#define FLAT_EXT_VALUE	 24
#define FLAT_SLOT_VALUE	 24
#define FLAT_CNT_VALUE	 8
#define FLAT_IDS_VALUE	 8
#define FLAT_HITS_VALUE	 24 /* struct ipblock_rule_counter, per CPU */

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

/* ext.lens value of a split region: low byte, the root node's record above it. */
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
 * Per-region record for regions holding rules longer than /24, and the
 * nodes of a split region's tree (see above).  Record 0 is never used, so
 * that a marker's entry is never 0 (a probe's "not found").
 */
struct flat_ext {
	__u32 base;	/* entry of the longest rule <= /24 (node: <= its depth) covering it */
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

/* One element of the ids. */
struct flat_rule {
	__u8 prefixlen;
	__u8 sets;	/* bit s: in set s */
	__u8 deny_sets; /* bit s: deny in set s (for listings) */
	__u8 flags;	/* FLAT_RULE_RESERVED between alloc and first add */
	__u32 reserved;
};

#define FLAT_RULE_RESERVED 0x1
/*
 * The id has been given to a rule since its counters (the hits) were made:
 * handed out again, it takes FLAT_RULE_RESET too, and the writer zeroes its
 * counters before any table holds it.  A new segment's ids have neither.
 */
#define FLAT_RULE_COUNTED 0x2
#define FLAT_RULE_RESET	  0x4

_Static_assert(sizeof(struct flat_slot) == FLAT_SLOT_VALUE, "a slot is one element");
_Static_assert(sizeof(struct flat_ext) == FLAT_EXT_VALUE, "a record is one element");
_Static_assert(sizeof(struct flat_rule) == FLAT_IDS_VALUE, "a rule is one element");

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

/* Whether an entry names a deny rule. */
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
