/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables' memory for tests, on anonymous memory instead of BPF
 * maps: one table's blocks, header, slots and counters, its chunk and ext
 * record pools, and a family's ids.  Each pool is one address range
 * reserved once (PROT_NONE, MAP_NORESERVE) and made read-write step by
 * step as the table asks for more (struct flat_mem.grow), so a pool never
 * moves and a read past what was handed out faults.  A ceiling per pool
 * lets a test run a pool out (-ENOSPC).
 *
 * Shared memory (MAP_SHARED) survives a fork: a child writes, the parent
 * reads.  A pool a child grew is mapped read-write in the child only; the
 * parent follows with flatmem_follow(), as another process maps the
 * segments a table's header names.
 */
#ifndef IPBLOCK_TEST_FLATMEM_H
#define IPBLOCK_TEST_FLATMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flat.h"

/* One pool: elements of elem bytes, [0, cap) read-write. */
struct flatmem_pool {
	char *base;
	size_t elem;	      /* bytes per element */
	uint32_t reserved;    /* elements the reservation spans */
	uint32_t cap;	      /* elements read-write now */
	uint32_t step;	      /* a grow() maps a multiple of this many (a "segment") */
	uint32_t ceiling;     /* grow() maps no more than this: -ENOSPC */
	unsigned int grows;   /* grow() calls that mapped more */
	unsigned int refused; /* grow() calls refused at the ceiling */
};

struct flatmem_opts {
	bool shared;		/* MAP_SHARED: visible across fork() */
	uint32_t chunk_step;	/* default 4 (page-sized growth) */
	uint32_t ext_step;	/* default 512 records (3 pages) */
	uint32_t chunk_ceiling; /* default FLAT_BLOCKS (what tables.c allows) */
	uint32_t ext_ceiling;	/* default 1 << 20 */
	uint32_t chunks, ext;	/* mapped before the table is attached (default 0) */
};

/* One table's memory (one family, one set). */
struct flatmem {
	struct flatmem_pool pool[FLAT_POOL_IDS]; /* FLAT_POOL_CHUNKS, FLAT_POOL_EXT */
	void *fixed;				 /* blocks, header, slots, counters */
	size_t fixed_bytes;
	uint8_t slot_bits;
	bool shared;
	struct flat_mem mem; /* grows the pools: give it to flat_attach() */
};

/* A family's ids, grown the same way. */
struct flatmem_ids {
	struct flatmem_pool pool;
	bool shared;
	struct flat_mem mem;
	struct flat_ids ids; /* attached: rules at the pool's base, n = the pool's cap */
};

/* Reserve a table's memory for 2^slot_bits slots (o may be NULL).  0 or -errno. */
int flatmem_open(struct flatmem *m, uint8_t slot_bits, const struct flatmem_opts *o);

/* Unmap it all. */
void flatmem_close(struct flatmem *m);

/* The area flat_attach() takes: what is mapped now. */
void flatmem_area(const struct flatmem *m, struct flat_area *a);

/* Zero blocks, header, slots and counters: the memory of a new, empty table. */
void flatmem_wipe(struct flatmem *m);

/* Map what the table's header says its pools hold (another process grew them). */
int flatmem_follow(struct flatmem *m);

/*
 * Reserve ids for at most ceiling ids (element 0, the header, included),
 * none mapped yet: the first flat_ids_alloc() grows them.
 */
int flatmem_ids_open(struct flatmem_ids *x, uint32_t ceiling, bool shared);

/* Map ids up to n now (n <= the ceiling); ids.n follows. */
int flatmem_ids_grow(struct flatmem_ids *x, uint32_t n);

void flatmem_ids_close(struct flatmem_ids *x);

#endif /* IPBLOCK_TEST_FLATMEM_H */
