/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables as one process maps them, and their memory: each
 * family's blocks and ids, and for each set that has a table, its pools'
 * segments, mmap()ed into one reserved address range per pool so that a
 * pool is one array however many segments it has.  New segments are inner
 * maps created here and put into the pool's outer map: at once for a
 * table packets read, all together (in parallel: each insert waits for an
 * RCU grace period) before a table being built is switched to.  The maps
 * hold the tables' whole state, so a process that maps them carries on
 * where another stopped; this is only the view.
 */
#ifndef IPBLOCK_TABLES_H
#define IPBLOCK_TABLES_H

#include <stdbool.h>
#include <stdint.h>

#include "flat.h"
#include "pins.h"

/* The pools of one set, in their outer maps' order after the blocks. */
enum tables_pool_kind {
	TABLES_CHUNKS,
	TABLES_EXT,
	TABLES_SLOTS,
	TABLES_CNT,
	TABLES_IDS, /* per family, not per set */
	TABLES_KINDS,
};

/* One pool's memory in this process. */
struct tables_pool {
	char *base;	 /* reserved range for every segment the pool may have */
	uint32_t nsegs;	 /* segments mapped */
	uint32_t queued; /* of which the last ones not yet in the outer map */
	int *fds;	 /* the queued segments' fds */
};

struct tables_family;

/* One set's table, when it has one. */
struct tables_set {
	struct flat t;
	struct tables_pool pool[TABLES_IDS];
	struct flat_mem mem; /* grows t's chunks and records */
	struct tables_family *fam;
	int set;
	bool has_table; /* t is attached */
	bool live;	/* the program may read it: new segments go in at once */
	bool stale;	/* an inactive set's table that could not be mapped: free it */
};

/* One family's tables as this process maps them. */
struct tables_family {
	struct tables_set set[2];
	struct flat_ids ids; /* shared by both sets */
	struct tables_pool ids_pool;
	struct flat_mem ids_mem;
	uint64_t *blocks; /* the blocks map: both sets' blocks and headers */
	const struct pins *pins;
	int family;
	int trie_fd[2]; /* set s's table asks the trie of set s for parents */
	bool mapped;
};

/*
 * The handle: zero-initialised is "nothing mapped yet".  It points into
 * itself once a family is mapped, so it is not to be copied.
 */
struct tables {
	struct tables_family fam[2]; /* IPv4, IPv6 */
	/* A change failed half-way: the tables may disagree with the tries. */
	bool damaged;
};

/*
 * Map family's tables of the maps p, once: the blocks, the ids and the
 * table of each set that has one.  -EPROTO when the active set's table is
 * of another format or incomplete; an inactive set's table that cannot be
 * mapped (a writer died building it) is marked stale instead.
 */
int tables_map(struct tables *t, const struct pins *p, int family, struct tables_family **out);

/* family's mapped tables, or NULL (not mapped yet). */
struct tables_family *tables_on(struct tables *t, int family);

/* set's table, or NULL when the set has none. */
struct flat *tables_flat(struct tables_family *tf, int set);

/*
 * Give set a new, empty table with 2^slot_bits slots, after freeing any
 * table it had.  live: packets may read it already (else its segments
 * wait for tables_publish()).  The set must not be the active one unless
 * it has no table.
 */
int tables_create(struct tables_family *tf, int set, uint8_t slot_bits, bool live);

/*
 * Make dst's new table (tables_create()d, not live) hold what src's holds:
 * its pools grown to src's sizes and every byte copied, ids' set bits
 * included.  src and dst must have the same slot bits.
 */
int tables_copy(struct tables_family *tf, int dst, int src);

/* Put every segment of set's table into its outer map; the table is live from now. */
int tables_publish(struct tables_family *tf, int set);

/*
 * Take set's table apart: its segments out of the outer maps (no program
 * may read the set any more), unmapped, its blocks and header zeroed and
 * its bit taken off every id.
 */
int tables_free(struct tables_family *tf, int set);

/*
 * Give back the ids' last segments when no id in them is used or reserved
 * (after a replace or a flush left the high ids free).
 */
int tables_ids_trim(struct tables_family *tf);

/*
 * Make the per-rule counters' segments match the ids' (hits.h): after a
 * writer died between the two, or on maps made without them in step.
 */
int tables_hits_cover(struct tables_family *tf);

/* Unmap everything; t is as new. */
void tables_release(struct tables *t);

/* Kernel memory of ipblock's maps, as the kernel accounts it (memlock, what bpftool shows). */
struct tables_memory {
	uint64_t tables; /* both families' flat tables: blocks, outer maps, every segment */
	uint64_t tries;	 /* the four tries */
	uint64_t hits;	 /* the per-rule counters (per CPU), outer maps and segments */
	uint64_t other;	 /* config and counters */
	uint64_t total;
};

/* Add up every map of p and every segment their outer maps hold. */
int tables_memory(const struct pins *p, struct tables_memory *out);

/* What the flat table of one family and set holds (for status and tests). */
struct tables_info {
	uint32_t long_rules;	/* rules longer than /24, in the hash */
	uint32_t ext_regions;	/* regions holding rules longer than /24 */
	uint32_t split_regions; /* of which crowded ones, judged by a tree of nodes */
	uint32_t nodes;		/* nodes in those trees */
	uint32_t mixed_blocks;	/* /16 blocks with a chunk */
	uint32_t blocks;	/* /16 blocks in all */
	uint32_t slots;		/* slot capacity */
	uint32_t live_slots;	/* rules and markers in the hash */
	uint32_t chunk_cap;	/* chunks mapped */
	uint32_t ext_cap;	/* ext records mapped */
	uint32_t ids_used;	/* rule ids in use in the family (both sets) */
	uint32_t ids_cap;	/* ids mapped */
};

/*
 * Fill *out for family's table of set (0 = A, 1 = B), mapping it if need
 * be.  -ENOENT when the set has no table.
 */
int tables_info(struct tables *t, const struct pins *p, int family, int set,
		struct tables_info *out);

#endif /* IPBLOCK_TABLES_H */
