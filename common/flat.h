/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables on plain memory: attach a table to its memory, change it
 * rule by rule or by a whole diff, compile it, read it.  The format is in
 * flat_format.h; this code touches nothing but memory, so unit tests run
 * it on anonymous memory and the tools on mmap()ed maps.  Where memory
 * comes from is the caller's: a table asks its struct flat_mem for more
 * chunks, records or ids when its pools run out.
 *
 * Concurrency: one writer (callers hold the pin directory's lock), any
 * number of readers (XDP on any CPU) that never lock.  Every change is a
 * sequence of aligned 32/64-bit stores, each of which leaves every address
 * judged by the old or the new rule.  Slots, ext records and chunks that
 * readers may still be looking at are not reused for FLAT_QUARANTINE_MS (a
 * packet's lookup takes nanoseconds), which stands in for the RCU grace
 * period user space cannot wait for.  Uniform blocks give their chunks
 * back at the end of every operation; a writer killed half-way leaves
 * blocks with chunks (slower), never wrong.
 *
 * A short-lived CLI rebuilds everything from kernel state: the tries give
 * prefix -> id, the ids id -> length and sets, and the tables carry their
 * own free lists in a header.  An id is free when no set holds it and it
 * is not reserved.
 *
 * Crowded regions (more long lengths than one record lists) are compiled
 * into trees at the end of each operation, from one pass over the slots.
 * Lookups keep using a region's old tree until the new one is published
 * with one store; its markers carry the other generation's tag, so both
 * trees can be in the hash at once.  Old trees are freed after the
 * quarantine.
 */
#ifndef IPBLOCK_FLAT_H
#define IPBLOCK_FLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "ipblock.h"
#include "ruleset.h"

/* Default time a freed slot, ext record or chunk is kept from reuse. */
#define FLAT_QUARANTINE_MS 10

/* The pools a table grows on its own, and the ids. */
enum flat_pool {
	FLAT_POOL_CHUNKS,
	FLAT_POOL_EXT,
	FLAT_POOL_IDS,
	FLAT_POOLS,
};

/*
 * Where a table's memory comes from.  grow() makes pool hold at least
 * want elements (chunks, records or ids), mapped right after the ones it
 * has, so that every pointer into the pool stays valid, and returns the
 * new capacity in *cap.  -ENOSPC at the ceiling, other -errno otherwise.
 * For a table packets read, the new memory must be where the program
 * finds it before grow() returns.
 */
struct flat_mem {
	int (*grow)(void *ctx, enum flat_pool pool, uint64_t want, uint32_t *cap);
	void *ctx;
};

/* The ids of one family, shared by both sets. */
struct flat_ids {
	struct flat_rule *rules; /* n elements; element 0 is the header */
	uint32_t n;
	const struct flat_mem *mem; /* NULL: the ids cannot grow */
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

/*
 * Where one table's parts lie: blocks[FLAT_BLOCKS], the header, and the
 * pools' memory, mapped for chunk_cap chunks, ext_cap records and
 * 2^slot_bits slots and counters.
 */
struct flat_area {
	uint32_t *blocks;
	struct flat_hdr *hdr; /* FLAT_HDR_ELEMS * 8 bytes */
	uint32_t *chunks;     /* chunk_cap * FLAT_CHUNK_ENTRIES entries */
	struct flat_ext *ext;
	struct flat_slot *slots;
	uint64_t *cnt; /* as many as slots */
	uint32_t chunk_cap, ext_cap;
	uint8_t slot_bits;
};

/* One table instance: one family, one rule set.  Fill it with flat_attach(). */
struct flat {
	uint8_t width;	   /* 32 or 128 */
	uint8_t slot_bits; /* slots and counters: 2^slot_bits */
	uint8_t set;	   /* which bit of flat_rule.sets this instance owns */
	uint32_t chunk_cap;
	uint32_t ext_cap;
	uint32_t *blocks;
	uint32_t *chunks;
	struct flat_slot *slots;
	struct flat_ext *ext;
	struct flat_hdr *hdr;
	uint64_t *cnt;
	struct flat_ids *ids;
	const struct flat_mem *mem; /* grows chunks and ext; NULL: cannot */
	flat_parent_fn parent;	    /* needed by deletes of rules <= /24 */
	void *parent_ctx;
	uint32_t quarantine_ms;
	/* Split regions to compile at the end of the current operation. */
	struct flat_split *split;
	uint32_t nsplit, split_cap;
	/* Blocks whose entries changed in the current operation (a bitmap). */
	uint64_t *dirty;
	bool dirty_all; /* the bitmap could not be had: look at every block */
};

/* The slot bits of the smallest table; a table is never smaller than a segment. */
#define FLAT_MIN_SLOT_BITS FLAT_SLOT_SEG_SHIFT

/* Largest slot table (the segments of one set). */
#define FLAT_MAX_SLOT_BITS (FLAT_SLOT_SEG_SHIFT + 11)

/*
 * The slot bits for a table of long_rules rules longer than /24: load at
 * most 1/2 after doubling room for growth, at least FLAT_MIN_SLOT_BITS.
 * -E2BIG past the largest table.
 */
int flat_slot_bits_for(uint64_t long_rules, uint8_t *bits);

/*
 * Attach t to one set's memory.  A zeroed header (new memory) is
 * formatted as an empty table; a header holding a table is checked against
 * the area (-EPROTO if it differs: another format or slot count).  mem
 * (may be NULL: no growth) and parent (may be NULL for tables that are only
 * added to) are kept.
 */
int flat_attach(struct flat *t, int family, const struct flat_area *a, struct flat_ids *ids,
		unsigned int set, const struct flat_mem *mem, flat_parent_fn parent,
		void *parent_ctx);

/* The pool sizes a table's header says it uses (another process's segments). */
void flat_area_need(const struct flat_hdr *h, uint32_t *chunks, uint32_t *ext, uint8_t *slot_bits);

/* Take this set's bit off every id: the set's table is gone. */
void flat_ids_drop_set(struct flat_ids *ids, unsigned int set);

/* Attach to ids memory (n elements of 8 bytes); zeroed memory is fine. */
void flat_ids_attach(struct flat_ids *ids, void *mem, uint32_t n, const struct flat_mem *grow);

/*
 * Reserve a free id for a new prefix of length prefixlen: *id gets it.  The
 * reservation holds until the id's first flat_add() or flat_ids_release().
 * The ids grow when every one is taken; -ENOSPC at their ceiling.
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
 * set bit is cleared if it differs).  -EINVAL for a bad prefix or id;
 * -ENOBUFS when the slot hash is too full for the rule (the table is then
 * unchanged, and must be compiled afresh with more slots); -ENOSPC when a
 * pool cannot grow.
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
 * order, 4 or 16 bytes): 0 or rule_id << 1 | deny.
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

struct flat_stats {
	uint32_t long_rules;	/* rules longer than /24, in the hash */
	uint32_t ext_regions;	/* regions with an ext record */
	uint32_t split_regions; /* regions judged by a tree of nodes */
	uint32_t nodes;		/* nodes in those trees */
	uint32_t live_slots;	/* rules and markers in the hash */
	uint32_t dead_slots;	/* tombstones awaiting reuse */
	uint32_t slots;		/* slot capacity */
	uint32_t mixed_blocks;	/* /16 blocks with a chunk */
	uint32_t blocks;	/* blocks in all */
	uint32_t chunks_used;	/* chunks in use or in quarantine */
	uint32_t chunk_cap;	/* chunks mapped */
	uint32_t ext_used;	/* ext records handed out, free ones not counted */
	uint32_t ext_cap;	/* ext records mapped */
};

/* Counters kept in the table's header. */
void flat_stats(const struct flat *t, struct flat_stats *st);

#endif /* IPBLOCK_FLAT_H */
