/* SPDX-License-Identifier: GPL-2.0 */
/*
 * flat: the lookup structure the XDP program reads instead of the LPM tries.
 * The tries stay the authoritative rule store; one flat table per family and
 * rule set (A, B) is compiled from them in user space and kept in step.
 *
 * Shape, per family (W = 32 or 128 address bits, N = top bits):
 *
 *   top[2^N]  u32, indexed by the address's top N bits (its "region").  An
 *             entry is the verdict of the longest rule of length <= N that
 *             covers the region when no longer rule lies inside it (one load
 *             answers), FLAT_FALLBACK, or FLAT_EXT | index of an ext record.
 *   sum[2^(N-8)]  u32 after top, one per block of 2^FLAT_SUM_SHIFT regions
 *             (a /16): the entry every region of the block has, when they
 *             all have the same plain verdict, else FLAT_SUM_MIXED.
 *   ext       per region holding rules longer than N: the region's <= N
 *             verdict ("base") and the distinct longer lengths in use there,
 *             longest first, one per byte of a u64 (at most 8); for an IPv4
 *             region with a single long rule, that rule (FLAT_LENS_INLINE).
 *   slots     one open-addressing hash (linear probing, at most
 *             FLAT_MAX_PROBE slots from home) of every rule longer than N,
 *             keyed by (masked address, length).
 *
 * A lookup reads sum, which answers for most of the address space; in a
 * mixed block it reads top; for an ext region it probes the region's lengths
 * longest first and stops at the first hit, else answers base.  A region's
 * bloom word has one bit set per long rule (flat_bloom_bit() of its key's
 * hash); a probe whose bit is clear would miss and is skipped, so a miss
 * in a region of a few rules reads their slots rarely.  Bits are set when
 * a rule is added and not cleared when it goes (other rules may share
 * them): stale bits cost a probe, never a verdict, and a region's word
 * starts afresh when its record does (a rebuild, or its last long rule
 * gone).  Verdicts are
 * those of an LPM over the rules: short rules are pushed into every region
 * they cover (a longer short rule wins), long ones are found exactly.
 *
 * Why not DIR-24-8's 256-entry tbl8 groups below the /24 table: a group
 * costs 1 KiB per /24 that holds anything longer than /24, so a million
 * scattered /32s need ~1 GiB per set or most of them fall back to the trie;
 * a hash slot costs 48 bytes per rule at load 1/2 and a hit still takes a
 * few loads.  Why arrays only: on this machine a BPF hash-map probe costs
 * ~25 ns (a call and jhash), an inlined array read ~2 ns.  IPv6 uses the
 * same shape with N = 24 rather than 20: real IPv6 lives in 2000::/3, which
 * holds only 2^17 /20 regions, so a million rules put ~8 rules of ~5
 * lengths in every region and a miss probed them all (+42 ns at 1M rules);
 * with /24 regions it is +9 ns, for 60 MiB more per set.  Per-region length
 * lists keep the probes to the lengths used in the packet's region.
 *
 * Why sum: top is 64 MiB, so a packet from a random source costs a cache
 * and a TLB miss in it (+51..74 ns measured with no rule at all), which is
 * the common case of a flood from spoofed sources.  sum is 256 KiB and
 * stays in the caches; a list of thousands of prefixes leaves nearly every
 * /16 uniform, so such packets never touch top.  In a mixed block it costs
 * one cached load more.  Writers keep it exact at the end of every
 * operation and safe at every instant: a block is marked mixed before any
 * of its top entries changes and gets its uniform value again only after
 * the last one has, so a reader that believes sum sees a value every top
 * entry of the block held at that moment.
 *
 * Crowded regions: a region whose long rules use more than 8 distinct
 * lengths (IPv6 only: IPv4 has 8 lengths past /24) is split into a tree of
 * nodes.  Its ext record's lens is FLAT_LENS_SPLIT | root << 8, root being
 * the data-map element of the tree's first node.  A node is an ext record
 * too: base (the verdict of the longest rule no longer than the node's
 * depth covering it, pushed down), lens and more (at most 16 of the lengths
 * under it, the shortest ones, longest first: the 8 longest in lens) and
 * child, the depth c of its children (0: a leaf; c is its longest listed
 * length).  Each child -- one per /c prefix holding
 * rules longer than c -- is found in the slot hash under a marker key
 * (prefix /c, tag FLAT_TAG_NODE | c) whose entry is the child's element.
 * A lookup walks down while a marker matches, then probes the last node's
 * lengths longest first, else answers its base: a child's base already
 * holds every shorter verdict, so a found child never needs its parent's
 * lengths.  Each level takes 16 lengths, so an IPv6 region needs at most
 * FLAT_MAX_NODES levels; a real list needs one.  Why 16 and not 8: a level
 * costs a marker probe and a record, about two length probes, and a /128
 * host under a /64 cut into many lengths took four levels with 8 (+43 ns
 * warm) and takes two with 16 (+29..31 ns); a miss in a leaf probes at
 * most 16 lengths where it walked more levels.  Nodes are never
 * changed once a region points at them: any change in a split region sends
 * it to the trie, and at the end of the operation the region's tree is
 * compiled afresh from its rules (one pass over the slots finds them),
 * then published with one store; the old tree is freed after the
 * quarantine.  Splitting costs an add into a crowded region a few
 * milliseconds; a region with plain lengths is as cheap to change as before.
 *
 * Fallback: a region whose rules cannot all be represented -- a rule that
 * found no slot within FLAT_MAX_PROBE of its home, no free ext record, or a
 * tree deeper than FLAT_MAX_NODES -- answers FLAT_FALLBACK and the program
 * consults the trie of the same set.  Only that region pays the trie's
 * cost; flat_stats() reports how many there are.  Sized by flat_sizes() for
 * max_rules, only probe overflow (about one rule in a million at load 1/2)
 * can cause it.
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
 * rule's prefix length and one bit per set the rule is in; an id is free
 * when no bit is set and it is not reserved.  So a short-lived CLI rebuilds
 * everything from kernel state: the tries give prefix -> id, the ids map
 * id -> length and sets, and the tables carry their own free lists in a
 * header inside the data map.  Id capacity is 2 * max_rules so that a replace
 * (old set and new set alive at once) never runs out.
 *
 * Concurrency: one writer (callers hold maps_lock()), any number of readers
 * (XDP on any CPU) that never lock.  Every change is a sequence of aligned
 * 32/64-bit stores, each of which leaves every address judged by the old or
 * the new rule: a slot is written before its length is listed, an ext record
 * is filled before top points at it, a length is unlisted before its slot
 * dies.  Slots and ext records that readers may still be looking at are not
 * reused for FLAT_QUARANTINE_MS (a packet's lookup takes nanoseconds), which
 * stands in for the RCU grace period user space cannot wait for.  Readers
 * rely on loads not passing loads (x86); see bpf/flat.h.
 *
 * Maps, per family (names are the lead's to choose), all BPF_MAP_TYPE_ARRAY
 * with BPF_F_MMAPABLE, key u32; flat_sizes() gives max_entries:
 *   top  (one per set)  value 8 bytes (two entries), 2^(N-1) elements of
 *                       top, then 2^(N-9) of sum
 *   data (one per set)  value 24 bytes: a user-only header (FLAT_SLOT_BASE
 *                       elements), the slots, the ext records, then
 *                       user-only per-region counters
 *   ids  (one, shared)  value 8 (struct flat_rule), element 0 is a header
 * Array maps round values to 8 bytes, which is why top packs two entries.
 *
 * Everything below works on plain memory, so unit tests run it on malloc'd
 * arrays and the tools on mmap()ed maps.
 */
#ifndef IPBLOCK_FLAT_H
#define IPBLOCK_FLAT_H

#include <linux/types.h>

#ifdef __bpf__
#define FLAT_INLINE static __always_inline
#else
#define FLAT_INLINE static inline
#endif

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
/* Lengths one node of a split region's tree lists: 8 in lens, 8 more in more. */
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

#ifndef __bpf__

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

/* Default time a freed slot or ext record is kept from reuse. */
#define FLAT_QUARANTINE_MS 10

/* The ids map of one family, shared by both sets. */
struct flat_ids {
	struct flat_rule *rules; /* n elements; element 0 is the header */
	uint32_t n;
};

/* What the LPM store answered: the rule that judges an address. */
struct flat_match {
	uint32_t id;
	uint8_t prefixlen;
	bool deny;
};

/*
 * The longest rule of the table's set covering p->addr whose length is at
 * most p->len: 0 and *m filled, -ENOENT when none, other -errno on failure.
 * For a BPF LPM trie that is one lookup with key.prefixlen = p->len.
 */
typedef int (*flat_parent_fn)(void *ctx, const struct cidr *p, struct flat_match *m);

/*
 * flat_parent_fn over a BPF LPM trie of ipblock's layout: ctx points to
 * the trie's fd (int).  Its values must carry rule ids and prefix lengths.
 */
int flat_parent_trie(void *ctx, const struct cidr *p, struct flat_match *m);

struct flat_hdr;
struct flat_split;

/* One table instance: one family, one rule set.  Fill it with flat_attach(). */
struct flat {
	uint8_t width;	   /* 32 or 128 */
	uint8_t top_bits;  /* N */
	uint8_t slot_bits; /* slots: 2^slot_bits */
	uint8_t set;	   /* which bit of flat_rule.sets this instance owns */
	uint32_t ext_cap;  /* ext records */
	uint32_t cnt_cap;  /* per-region counter records (a power of two) */
	uint32_t *top;
	uint32_t *sum; /* after top, in the same map */
	struct flat_slot *slots;
	struct flat_ext *ext; /* ext[i] is data-map element FLAT_SLOT_BASE + slots + i */
	struct flat_hdr *hdr;
	uint64_t *cnt;
	struct flat_ids *ids;
	flat_parent_fn parent; /* needed by deletes of rules <= N and repair */
	void *parent_ctx;
	uint32_t quarantine_ms;
	/* Split regions to compile at the end of the current operation. */
	struct flat_split *split;
	uint32_t nsplit, split_cap;
	uint32_t unsplit_ms; /* when the last tree was taken off its region */
	/* Blocks whose top entries changed in the current operation (a bitmap). */
	uint64_t *dirty;
	bool dirty_all; /* the bitmap could not be had: recompute every block */
};

/* Geometry and map sizes of one family's tables. */
struct flat_sizes {
	uint32_t slots;	     /* hash slots, a power of two */
	uint32_t ext_cap;    /* ext records */
	uint32_t cnt_cap;    /* per-region counters, a power of two */
	uint32_t top_elems;  /* top map max_entries (value_size 8) */
	uint32_t data_elems; /* data map max_entries (value_size 24) */
	uint32_t ids_elems;  /* ids map max_entries (value_size 8), one per family */
	uint64_t top_bytes;  /* memory of each map as mmap()ed (page multiples) */
	uint64_t data_bytes;
	uint64_t ids_bytes;
};

#define FLAT_TOP_VALUE_SIZE  8
#define FLAT_DATA_VALUE_SIZE 24
#define FLAT_IDS_VALUE_SIZE  8

/*
 * The geometry for max_rules rules per set of family (AF_INET/AF_INET6): no
 * region falls back for want of room while the set holds at most max_rules
 * rules.  -EINVAL for a bad family or max_rules (0, or above 2^29).
 */
int flat_sizes(int family, uint32_t max_rules, struct flat_sizes *out);

/*
 * An explicit geometry (experiments, tests of exhaustion): slots and cnt_cap
 * are rounded up to powers of two (at least 64), ids is the id capacity.
 * The counters must hold every (region, length) pair in use or adds fail
 * with -ENOSPC, so cnt_cap should be at least twice the rule count.
 */
int flat_sizes_geom(int family, uint32_t slots, uint32_t ext_cap, uint32_t cnt_cap, uint32_t ids,
		    struct flat_sizes *out);

/*
 * Attach t to one set's memory: top (sz->top_elems * 8 bytes) and data
 * (sz->data_elems * 24 bytes), ids shared by the family.  Zeroed memory (a
 * new map) is formatted as an empty table; memory holding a table is checked
 * against the geometry (-EPROTO if it differs).  parent may be NULL for
 * tables that are only added to.
 */
int flat_attach(struct flat *t, int family, const struct flat_sizes *sz, void *top, void *data,
		struct flat_ids *ids, unsigned int set, flat_parent_fn parent, void *parent_ctx);

/*
 * Empty the table and take this set's bit off every id.  Only for a set no
 * packet reads (the inactive one): a rebuild is flat_clear() + flat_build().
 */
void flat_clear(struct flat *t);

/*
 * Make dst (another set of the same family and geometry) hold exactly what
 * src holds, ids' set bits included: after a replace both sets carry the
 * same rules, and copying the compiled table is far cheaper than compiling
 * it twice.  Only for a dst no packet reads.  -EINVAL on a geometry
 * mismatch.
 */
int flat_copy(struct flat *dst, const struct flat *src);

/* Attach to an ids map's memory (ids_elems * 8 bytes); zeroed memory is fine. */
void flat_ids_attach(struct flat_ids *ids, void *mem, uint32_t n);

/*
 * Reserve a free id for a new prefix of length prefixlen: *id gets it.  The
 * reservation holds until the id's first flat_add() or flat_ids_release().
 * -ENOSPC when every id is taken.
 */
int flat_ids_alloc(struct flat_ids *ids, uint8_t prefixlen, uint32_t *id);

/* Drop a reservation that was never used (an error path). */
void flat_ids_release(struct flat_ids *ids, uint32_t id);

/* Clear reservations left by a process that died between alloc and add. */
void flat_ids_reclaim(struct flat_ids *ids);

/*
 * Make rule p (normalised) judge with id and deny in this set: a new prefix
 * (old_id 0), or an existing one whose action or id changes (old_id: the
 * id it had in this set -- equal to id for an action change -- whose set
 * bit is cleared if it differs).  Never fails for lack of room: a region
 * that cannot hold the rule falls back to the trie.
 * -EINVAL for a bad prefix or id, -ENOSPC only if counters overflow.
 */
int flat_add(struct flat *t, const struct cidr *p, uint32_t id, bool deny, uint32_t old_id);

/*
 * Remove rule p, whose id in this set is id.  Addresses it judged go to the
 * next covering rule (t->parent).  -ENOENT if p is not in the table.
 */
int flat_delete(struct flat *t, const struct cidr *p, uint32_t id);

/*
 * The user-space twin of the BPF lookup: the entry judging addr (network
 * order, 4 or 16 bytes): 0, rule_id << 1 | deny, or FLAT_FALLBACK.
 */
uint32_t flat_lookup(const struct flat *t, const uint8_t *addr);

/* One change for flat_apply(). */
struct flat_change {
	struct cidr prefix;
	uint32_t id;	 /* add: the rule's id; delete: the id it had */
	uint32_t old_id; /* add over an existing prefix: the id it had, else 0 */
	bool deny;
	bool del;
};

/* A growing array of changes, for callers that collect a diff. */
struct flat_changes {
	struct flat_change *c;
	size_t n, cap;
};

/* Append one change (the array grows by doubling).  -ENOMEM. */
int flat_changes_push(struct flat_changes *l, const struct flat_change *c);

/*
 * Apply a diff: every delete first, then every add, each as flat_delete()
 * / flat_add().  Stops at the first error (-ENOENT of a delete is skipped).
 */
int flat_apply(struct flat *t, const struct flat_change *c, size_t n);

/*
 * Fill an empty table with n rules (shortest first, so each entry is
 * written by few rules).  Sorts c in place.
 */
int flat_build(struct flat *t, struct flat_change *c, size_t n);

struct rulecache;

/*
 * Bring the table from the rules of have to those of want (entries carry
 * rule_id; an action or id change is an update): the diff, applied with
 * flat_apply().  *changes (may be NULL) gets its length.
 */
int flat_sync(struct flat *t, const struct rulecache *have, const struct rulecache *want,
	      size_t *changes);

/*
 * Retry regions that fall back to the trie: rules that found no slot are
 * placed if they fit now (set: this table's rules, may be NULL to skip
 * that), regions that lost their ext record get one, and regions whose
 * rules fit again list their lengths.  Uses t->parent.  *fixed (may be
 * NULL) gets the number of regions restored.
 */
int flat_repair(struct flat *t, const struct rulecache *set, uint32_t *fixed);

struct flat_stats {
	uint32_t long_rules;	   /* rules longer than N (in the hash or missing) */
	uint32_t missing;	   /* of which not in the hash (their region falls back) */
	uint32_t ext_regions;	   /* regions with an ext record */
	uint32_t fallback_regions; /* regions whose lookups go to the trie */
	uint32_t split_regions;	   /* regions judged by a tree of nodes */
	uint32_t nodes;		   /* nodes in those trees */
	uint32_t dead_slots;	   /* tombstones awaiting reuse */
	uint32_t slots;		   /* slot capacity */
	uint32_t mixed_blocks;	   /* /16 blocks whose summary sends lookups to top */
	uint32_t blocks;	   /* blocks in all (2^(N-8)) */
};

/* Counters kept in the table's header. */
void flat_stats(const struct flat *t, struct flat_stats *st);

/* mmap() a BPF_F_MMAPABLE array map read-write; NULL with errno on failure. */
void *flat_map_mmap(int map_fd, uint64_t bytes);

/* Undo flat_map_mmap(). */
void flat_map_munmap(void *mem, uint64_t bytes);

#endif /* !__bpf__ */

#endif /* IPBLOCK_FLAT_H */
