/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables on plain memory: attach a table to its memory, change it
 * rule by rule or by a whole diff, compile it, copy it, read it.  The
 * format is in flat_format.h; this code touches nothing but memory, so unit
 * tests run it on malloc'd arrays and the tools on mmap()ed maps.
 *
 * Concurrency: one writer (callers hold the pin directory's lock), any
 * number of readers (XDP on any CPU) that never lock.  Every change is a
 * sequence of aligned 32/64-bit stores, each of which leaves every address
 * judged by the old or the new rule.  Slots and ext records that readers
 * may still be looking at are not reused for FLAT_QUARANTINE_MS (a
 * packet's lookup takes nanoseconds), which stands in for the RCU grace
 * period user space cannot wait for.  Block summaries are made exact again
 * at the end of every operation; a writer killed half-way leaves blocks
 * mixed (slower), never wrong.
 *
 * A short-lived CLI rebuilds everything from kernel state: the tries give
 * prefix -> id, the ids map id -> length and sets, and the tables carry
 * their own free lists in a header inside the data map.  Id capacity is
 * 2 * max_rules so that a replace (old set and new set alive at once)
 * never runs out; an id is free when no set holds it and it is not
 * reserved.
 *
 * Crowded regions (more long lengths than one record lists) are compiled
 * into trees at the end of each operation, from one pass over the slots;
 * any change in a split region hands it to the trie until then, so trees
 * are never changed in place.  Old trees are freed after the quarantine.
 */
#ifndef IPBLOCK_FLAT_H
#define IPBLOCK_FLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "ipblock.h"
#include "ruleset.h"

/* Default time a freed slot or ext record is kept from reuse. */
#define FLAT_QUARANTINE_MS 10

/* The ids map of one family, shared by both sets. */
struct flat_ids {
	struct flat_rule *rules; /* n elements; element 0 is the header */
	uint32_t n;
};

/*
 * The longest rule of the table's set covering p->addr whose length is at
 * most p->len: 0 and *out filled (its prefix, action and id), -ENOENT when
 * none, other -errno on failure.  For a BPF LPM trie that is one lookup
 * with key.prefixlen = p->len.
 */
typedef int (*flat_parent_fn)(void *ctx, const struct cidr *p, struct rule *out);

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
 * Make rule r judge with its id and action in this set: a new prefix
 * (old_id 0), or an existing one whose action or id changes (old_id: the
 * id it had in this set -- equal to r->id for an action change -- whose
 * set bit is cleared if it differs).  Never fails for lack of room: a
 * region that cannot hold the rule falls back to the trie.
 * -EINVAL for a bad prefix or id, -ENOSPC only if counters overflow.
 */
int flat_add(struct flat *t, const struct rule *r, uint32_t old_id);

/*
 * Remove rule r (its prefix, and r->id, its id in this set).  Addresses it
 * judged go to the next covering rule (t->parent).  -ENOENT if r is not in
 * the table.
 */
int flat_delete(struct flat *t, const struct rule *r);

/*
 * The user-space twin of the BPF lookup: the entry judging addr (network
 * order, 4 or 16 bytes): 0, rule_id << 1 | deny, or FLAT_FALLBACK.
 */
uint32_t flat_judge(const struct flat *t, const uint8_t *addr);

/*
 * Apply a diff (ruleset_changes()): every delete first, then every add and
 * update, as flat_delete() / flat_add() with the old rule's id.  Stops at
 * the first error (-ENOENT of a delete is skipped).
 */
int flat_apply(struct flat *t, const struct ruleset_change *c, size_t n);

/*
 * Fill an empty table with r[0..n) (in any order; they are added shortest
 * first, so each entry is written by few rules).
 */
int flat_build(struct flat *t, const struct rule *r, size_t n);

/*
 * Retry regions that fall back to the trie: rules that found no slot are
 * placed if they fit now (set[0..n): this table's rules; NULL skips
 * that), regions that lost their ext record get one, and regions whose
 * rules fit again list their lengths.  Uses t->parent.  *fixed (may be
 * NULL) gets the number of regions restored.
 */
int flat_repair(struct flat *t, const struct rule *set, size_t n, uint32_t *fixed);

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

#endif /* IPBLOCK_FLAT_H */
