/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables as one process maps them: each family's maps mmap()ed
 * and a struct flat attached to each set's memory, on first use, until
 * tables_release().  The maps hold the tables' whole state, so a process
 * that maps them carries on where another stopped; this is only the view.
 */
#ifndef IPBLOCK_TABLES_H
#define IPBLOCK_TABLES_H

#include <stdbool.h>
#include <stdint.h>

#include "flat.h"
#include "pins.h"

/* One family's tables as this process maps them. */
struct tables_family {
	struct flat t[2];    /* set A, set B */
	struct flat_ids ids; /* shared by both sets */
	struct flat_sizes sz;
	void *mem[IPBLOCK_FLAT_MAPS];
	uint64_t bytes[IPBLOCK_FLAT_MAPS];
	int trie_fd[2]; /* t[s]'s parent: the trie of set s */
	bool mapped;	/* PINS_LOOKUP_FLAT, and mapped */
	bool trie_only; /* PINS_LOOKUP_TRIE: nothing to keep in step */
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
 * Map family's tables of the maps p, once.  *out is NULL when the maps
 * were made for the tries alone (whose top entries are then made to say
 * so).  -EPROTO when the tables do not fit the tries' capacity or hold a
 * table of another format.
 */
int tables_map(struct tables *t, const struct pins *p, int family, struct tables_family **out);

/* family's mapped tables, or NULL (the tries alone, or not mapped yet). */
struct tables_family *tables_on(struct tables *t, int family);

/* Unmap everything; t is as new. */
void tables_release(struct tables *t);

/* What the flat tables of one family and set hold (for status and tests). */
struct tables_info {
	uint32_t long_rules;	   /* rules longer than /24, found in the hash */
	uint32_t fallback_regions; /* /24 regions judged by the trie instead */
	uint32_t ext_regions;	   /* regions holding rules longer than /24 */
	uint32_t split_regions;	   /* of which crowded ones, judged by a tree of nodes */
	uint32_t nodes;		   /* nodes in those trees */
	uint32_t mixed_blocks;	   /* /16 blocks not answered by their summary alone */
	uint32_t blocks;	   /* /16 blocks in all */
	uint32_t ids_used;	   /* rule ids in use in the family (both sets) */
};

/*
 * Fill *out for family's tables of set (0 = A, 1 = B), mapping them if
 * need be.  -EOPNOTSUPP for maps made for the tries alone.
 */
int tables_info(struct tables *t, const struct pins *p, int family, int set,
		struct tables_info *out);

/* mmap() a BPF_F_MMAPABLE array map read-write; NULL with errno on failure. */
void *tables_mmap(int map_fd, uint64_t bytes);

/* Undo tables_mmap(); NULL is a no-op. */
void tables_munmap(void *mem, uint64_t bytes);

#endif /* IPBLOCK_TABLES_H */
