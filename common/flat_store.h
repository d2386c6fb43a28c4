/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inside the flat tables, for flat*.c only: one table's memory and the
 * primitives the change code (flat.c) and the crowded-region trees
 * (flat_split.c) build on.  flat_store.c holds the larger ones.
 *
 * Each set's header lies after the blocks, so that any process that maps
 * the tables can carry on where another stopped.  The per-region counters
 * are an open-addressing table of u64 records, as many as slots: key
 * (region << 8 | length) in the high half, count in the low half, a zero
 * count an empty record.
 */
#ifndef IPBLOCK_FLAT_STORE_H
#define IPBLOCK_FLAT_STORE_H

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "flat.h"

#define FLAT_MAGIC   0x32544c46u /* "FLT2" */
#define FLAT_VERSION 8
#define FLAT_NIL     0xffffffffu

#define EXT_USED 1
#define EXT_FREE 2
#define EXT_NODE 3
/* state bit of a region record already queued for a tree. */
#define EXT_QUEUED 0x80

/* A node's child byte: its children's depth, and the generation of their markers. */
#define CHILD_DEPTH 0x7f
#define CHILD_GEN   0x80

/*
 * Chunks given back and not yet aged, at most this many: their entries must
 * stay what they were for readers that found the chunk before its block
 * went uniform, so they wait here, off the free FIFO whose links live in
 * the chunks themselves.
 */
#define FLAT_LIMBO 64

/* User-only bookkeeping after the blocks, so another process can pick up. */
struct flat_hdr {
	uint32_t magic;
	uint8_t version, width, slot_bits, pad;
	uint32_t chunk_cap, ext_cap;	 /* pool sizes mapped: the segments there are */
	uint32_t chunk_bump, ext_bump;	 /* [0, bump) were handed out before */
	uint32_t chunk_head, chunk_tail; /* FIFO of freed chunks, oldest first */
	uint32_t free_head, free_tail;	 /* FIFO of freed records, oldest first */
	uint32_t chunks_used, ext_used;	 /* handed out and not freed */
	uint32_t long_rules, ext_regions, split_regions, nodes;
	uint32_t dead_slots, live_slots, cnt_used;
	uint32_t limbo_ms, limbo_n; /* when the newest chunk in limbo was given back */
	uint16_t limbo[FLAT_LIMBO]; /* chunks given back, entries untouched */
};

/*
 * A region queued for compiling its tree, and the tree it had (or
 * FLAT_NIL), which stays its own (kept) when the new one cannot be built.
 */
struct flat_split {
	uint32_t region;
	uint32_t old_root;
	bool kept;
};

_Static_assert(sizeof(struct flat_hdr) <= FLAT_HDR_ELEMS * FLAT_BLOCKS_VALUE, "header too big");
_Static_assert(FLAT_BLOCKS <= 65536, "a chunk number fits the limbo's 16 bits");

/* --- small and hot: inline ------------------------------------------------------- */

/* Publishing stores: readers see the old word or the new, never a mix. */
static inline void put32(__u32 *p, __u32 v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void put64(__u64 *p, __u64 v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline unsigned int log2u(uint32_t p)
{
	return 31 - __builtin_clz(p);
}

static inline uint32_t nslots_of(const struct flat *t)
{
	return 1u << t->slot_bits;
}

/* Length of the rule an entry names; -1 for "no rule" so any rule beats it. */
static inline int entry_len(const struct flat *t, uint32_t e)
{
	uint32_t id = flat_entry_id(e);

	if (!id || id >= t->ids->n)
		return -1;
	return t->ids->rules[id].prefixlen;
}

static inline uint32_t entry_of(uint32_t id, bool deny)
{
	return id << 1 | (deny ? 1 : 0);
}

static inline void key_of(const struct flat *t, const uint8_t *addr, __u64 *hi, __u64 *lo)
{
	if (t->width == 32) {
		uint32_t a;

		memcpy(&a, addr, 4);
		*hi = (__u64)be32toh(a) << 32;
		*lo = 0;
	} else {
		uint64_t h, l;

		memcpy(&h, addr, 8);
		memcpy(&l, addr + 8, 8);
		*hi = be64toh(h);
		*lo = be64toh(l);
	}
}

static inline uint32_t region_of(__u64 hi)
{
	return (uint32_t)(hi >> (64 - FLAT_REGION_BITS));
}

static inline uint32_t block_of(uint32_t r)
{
	return r >> (FLAT_REGION_BITS - FLAT_BLOCK_BITS);
}

/* The ext record an entry names, or NULL. */
static inline struct flat_ext *ext_of(const struct flat *t, uint32_t e)
{
	uint32_t i = e & ~FLAT_EXT;

	return i && i < t->ext_cap ? &t->ext[i] : NULL;
}

static inline uint32_t ext_index(const struct flat *t, const struct flat_ext *x)
{
	return (uint32_t)(x - t->ext);
}

/* The entries of chunk c. */
static inline uint32_t *chunk_of(const struct flat *t, uint32_t c)
{
	return &t->chunks[(size_t)c * FLAT_CHUNK_ENTRIES];
}

/* Region r's entry: its block's when the block is uniform, else its chunk's. */
static inline uint32_t region_get(const struct flat *t, uint32_t r)
{
	uint32_t b = t->blocks[block_of(r)];

	if (!(b & FLAT_EXT))
		return b;
	return chunk_of(t, b & ~FLAT_EXT)[r & (FLAT_CHUNK_ENTRIES - 1)];
}

/* Region r's record, or NULL when its entry is a plain verdict. */
static inline struct flat_ext *region_ext(const struct flat *t, uint32_t r)
{
	uint32_t e = region_get(t, r);

	return e & FLAT_EXT ? ext_of(t, e) : NULL;
}

static inline uint32_t cnt_key(uint32_t region, unsigned int len)
{
	return region << 8 | len;
}

/* Index of key's record, or of the empty record where it would go. */
static inline uint32_t cnt_probe(const struct flat *t, uint32_t key, bool *found)
{
	uint32_t mask = nslots_of(t) - 1, i = flat_home(key, 0, 0, t->slot_bits);

	for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
		uint64_t rec = t->cnt[i];

		if (!(uint32_t)rec)
			break;
		if ((uint32_t)(rec >> 32) == key) {
			*found = true;
			return i;
		}
	}
	*found = false;
	return t->cnt[i] ? FLAT_NIL : i;
}

static inline uint32_t cnt_get(const struct flat *t, uint32_t region, unsigned int len)
{
	bool found;
	uint32_t i = cnt_probe(t, cnt_key(region, len), &found);

	return found ? (uint32_t)t->cnt[i] : 0;
}

/* The bloom bit of long rule (hi, lo, len). */
static inline uint32_t bloom_of(__u64 hi, __u64 lo, unsigned int len)
{
	return flat_bloom_bit(flat_hash(hi, lo, len));
}

static inline uint32_t slot_home(const struct flat *t, __u64 hi, __u64 lo, unsigned int len)
{
	return flat_home(hi, lo, len, t->slot_bits);
}

/* The live slot of (hi, lo, tag), or FLAT_NIL. */
static inline uint32_t slot_find(const struct flat *t, __u64 hi, __u64 lo, unsigned int tag)
{
	uint32_t mask = nslots_of(t) - 1, i = slot_home(t, hi, lo, tag);

	for (int n = 0; n < FLAT_MAX_PROBE; n++, i = (i + 1) & mask) {
		const struct flat_slot *s = &t->slots[i];
		uint32_t got = (uint32_t)(s->word >> 32);

		if (!got)
			break;
		if (got == tag && s->hi == hi && s->lo == lo)
			return i;
	}
	return FLAT_NIL;
}

/* A region's lens as a plain list: an inline rule's is its one length. */
static inline __u64 lens_plain(const struct flat *t, __u64 lens)
{
	return t->width == 32 && flat_lens_is_inline(lens) ? lens & 0xff : lens;
}

static inline bool lens_split(__u64 lens)
{
	return (lens & 0xff) == FLAT_LENS_SPLIT;
}

/* --- flat_store.c ---------------------------------------------------------------- */

/* Milliseconds of CLOCK_MONOTONIC, for the quarantine. */
uint32_t flat_now_ms(void);

/* Whether something freed at since has aged past the quarantine. */
bool flat_aged(const struct flat *t, uint32_t since);

/* Sleep until something freed at since has aged. */
void flat_wait_aged(const struct flat *t, uint32_t since);

/*
 * Store e as region r's entry.  A uniform block whose entry is not e gets
 * a chunk first (filled with the block's entry, then published), so that
 * readers meet the old or the new entry; flat_blocks_settle() gives
 * uniform blocks their entry back at the end of the operation and their
 * chunks to the limbo, and the free FIFO once aged.  -ENOSPC when no chunk
 * can be had.
 */
int flat_region_put(struct flat *t, uint32_t r, uint32_t e);

/* End of an operation: blocks whose regions all agree give their chunks back. */
void flat_blocks_settle(struct flat *t);

/* Add delta (+1/-1) to a counter; *now gets the new value.  -ENOSPC when full. */
int flat_cnt_add(struct flat *t, uint32_t region, unsigned int len, int delta, uint32_t *now);

/* Whether one more live slot would take the hash past load 1/2. */
bool flat_slots_full(const struct flat *t);

/*
 * Put a new (hi, lo, tag) -> entry within FLAT_MAX_PROBE of its home.
 * -ENOBUFS when the window is full of live and recently dead slots.
 */
int flat_slot_insert(struct flat *t, __u64 hi, __u64 lo, unsigned int tag, uint32_t entry);

/* Kill slot i: it rests (tag dead, time of death) until the quarantine is over. */
void flat_slot_kill(struct flat *t, uint32_t i);

/* A free ext record, oldest freed first; grows the pool or waits out the quarantine. */
int flat_ext_alloc(struct flat *t, uint32_t *out);

/* Free ext record i (to the end of the free FIFO). */
void flat_ext_free(struct flat *t, uint32_t i);

/* lens with len inserted in order (longest first); the list has room. */
__u64 flat_lens_insert(__u64 lens, unsigned int len);

/* lens without len. */
__u64 flat_lens_remove(__u64 lens, unsigned int len);

/* The lengths region r's counters list, longest first (the first 8), and how many. */
__u64 flat_lens_from_counts(const struct flat *t, uint32_t r, unsigned int *nlens, uint32_t *nlong);

/* Publish a region's new list, keeping the split count right. */
void flat_set_lens(struct flat *t, struct flat_ext *x, __u64 lens);

/* --- flat_split.c ---------------------------------------------------------------- */

/* Queue crowded region r (record x) for a tree, once per operation. */
void flat_split_later(struct flat *t, struct flat_ext *x, uint32_t r);

/*
 * A change is about to touch region r: if it is split, queue it for a new
 * tree at the end of the operation.  Lookups use the old tree until then.
 */
void flat_split_touch(struct flat *t, uint32_t r);

/*
 * Compile the queued regions' trees.  Returns ret (the operation's result)
 * unless that was 0 and this failed.
 */
int flat_split_settle(struct flat *t, int ret);

#endif /* IPBLOCK_FLAT_STORE_H */
