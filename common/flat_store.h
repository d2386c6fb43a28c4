/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inside the flat tables, for flat*.c only: one table's memory and the
 * primitives the change code (flat.c) and the crowded-region trees
 * (flat_split.c) build on.  flat_store.c holds the larger ones.
 *
 * The data map starts with a user-only header, so that any process that
 * maps the tables can carry on where another stopped; then the slot hash,
 * the ext records, and the per-region counters: an open-addressing table
 * of u64 records, key (region << 8 | length) in the high half, count in
 * the low half, a zero count an empty record.  Length 0 counts the
 * region's rules that found no slot.
 */
#ifndef IPBLOCK_FLAT_STORE_H
#define IPBLOCK_FLAT_STORE_H

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "flat.h"

#define FLAT_MAGIC   0x31544c46u /* "FLT1" */
#define FLAT_VERSION 6
#define FLAT_NIL     0xffffffffu

/* Header elements (24 bytes each): first, so any geometry finds it. */
#define HDR_ELEMS FLAT_SLOT_BASE

#define EXT_USED 1
#define EXT_FREE 2
#define EXT_NODE 3
/* state bit of a region record already queued for a tree. */
#define EXT_QUEUED 0x80

/* The per-region counter of the rules that found no slot. */
#define CNT_MISSING 0

/*
 * User-only bookkeeping in the data map, so another process can pick up.
 * Identity and geometry first: flat_clear() keeps what comes before
 * ext_bump.
 */
struct flat_hdr {
	uint32_t magic;
	uint8_t version, width, top_bits, slot_bits;
	uint32_t ext_cap, cnt_cap;
	uint32_t ext_bump;	       /* records [0, bump) were handed out before */
	uint32_t free_head, free_tail; /* FIFO of freed records, oldest first */
	uint32_t long_rules, missing;  /* as struct flat_stats */
	uint32_t ext_regions, fallback_regions;
	uint32_t dead_slots, live_slots, cnt_used;
	uint32_t split_regions, nodes;
};

/* A region queued for compiling its tree, and the tree it had (or FLAT_NIL). */
struct flat_split {
	uint32_t region;
	uint32_t old_root;
};

_Static_assert(sizeof(struct flat_hdr) <= HDR_ELEMS * FLAT_DATA_VALUE_SIZE, "header too big");

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

static inline uint32_t region_of(const struct flat *t, __u64 hi)
{
	return (uint32_t)(hi >> (64 - t->top_bits));
}

static inline struct flat_ext *ext_of(const struct flat *t, uint32_t e)
{
	uint32_t i = (e & ~FLAT_EXT) - HDR_ELEMS - nslots_of(t);

	return i < t->ext_cap ? &t->ext[i] : NULL;
}

static inline uint32_t ext_index(const struct flat *t, const struct flat_ext *x)
{
	return (uint32_t)(x - t->ext);
}

/* The element index a top entry or marker uses for ext record i. */
static inline uint32_t ext_elem(const struct flat *t, uint32_t i)
{
	return HDR_ELEMS + nslots_of(t) + i;
}

/* Where region r's <= N verdict lives (top or its ext record), NULL on fallback. */
static inline __u32 *base_of(const struct flat *t, uint32_t r)
{
	uint32_t e = t->top[r];
	struct flat_ext *x;

	if (e == FLAT_FALLBACK)
		return NULL;
	if (!(e & FLAT_EXT))
		return &t->top[r];
	x = ext_of(t, e);
	return x ? &x->base : NULL;
}

/*
 * Store e in top[r].  The block's summary becomes FLAT_SUM_MIXED first,
 * unless it already names e, and the block is recomputed by flat_sum_settle()
 * at the end of the operation.
 */
static inline void top_put(struct flat *t, uint32_t r, uint32_t e)
{
	uint32_t b = r >> FLAT_SUM_SHIFT;

	if (t->top[r] == e)
		return;
	if (t->sum[b] != FLAT_SUM_MIXED)
		put32(&t->sum[b], FLAT_SUM_MIXED);
	put32(&t->top[r], e);
	if (!t->dirty && !t->dirty_all) {
		t->dirty = calloc(((size_t)1 << (t->top_bits - FLAT_SUM_SHIFT)) / 64 + 1, 8);
		/* Without the bitmap every block is looked at; nothing is lost. */
		t->dirty_all = !t->dirty;
	}
	if (t->dirty)
		t->dirty[b / 64] |= 1ull << (b % 64);
}

/* A new verdict for region r through base_of()'s pointer b. */
static inline void base_put(struct flat *t, uint32_t r, __u32 *b, uint32_t e)
{
	if (b == &t->top[r])
		top_put(t, r, e);
	else
		put32(b, e);
}

static inline uint32_t cnt_key(uint32_t region, unsigned int len)
{
	return region << 8 | len;
}

/* Index of key's record, or of the empty record where it would go. */
static inline uint32_t cnt_probe(const struct flat *t, uint32_t key, bool *found)
{
	uint32_t mask = t->cnt_cap - 1, i = flat_home(key, 0, 0, log2u(t->cnt_cap));

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

/* The live slot of (hi, lo, len), or FLAT_NIL. */
static inline uint32_t slot_find(const struct flat *t, __u64 hi, __u64 lo, unsigned int len)
{
	uint32_t mask = nslots_of(t) - 1, i = slot_home(t, hi, lo, len);

	for (int n = 0; n < FLAT_MAX_PROBE; n++, i = (i + 1) & mask) {
		const struct flat_slot *s = &t->slots[i];
		uint32_t tag = (uint32_t)(s->word >> 32);

		if (!tag)
			break;
		if (tag == len && s->hi == hi && s->lo == lo)
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

/* Sleep until a record freed at since has aged. */
void flat_wait_aged(const struct flat *t, uint32_t since);

/* End of an operation: the blocks it touched get their summaries back. */
void flat_sum_settle(struct flat *t);

/* Add delta (+1/-1) to a counter; *now gets the new value.  -ENOSPC when full. */
int flat_cnt_add(struct flat *t, uint32_t region, unsigned int len, int delta, uint32_t *now);

/*
 * Put a new (hi, lo, len) -> entry within FLAT_MAX_PROBE of its home.
 * -ENOSPC when the window is full of live and recently dead slots.
 */
int flat_slot_insert(struct flat *t, __u64 hi, __u64 lo, unsigned int len, uint32_t entry);

/* Kill slot i: it rests (tag dead, time of death) until the quarantine is over. */
void flat_slot_kill(struct flat *t, uint32_t i);

/* A free ext record, oldest freed first; waits out the quarantine if it must. */
int flat_ext_alloc(struct flat *t, uint32_t *out);

/* Free ext record i (to the end of the free FIFO). */
void flat_ext_free(struct flat *t, uint32_t i);

/* lens with len inserted in order (longest first); the list has room. */
__u64 flat_lens_insert(__u64 lens, unsigned int len);

/* lens without len. */
__u64 flat_lens_remove(__u64 lens, unsigned int len);

/*
 * The list a region should show, from its counters: FLAT_LENS_FALLBACK when
 * a rule is missing from the hash or there are too many lengths.
 */
__u64 flat_lens_from_counts(const struct flat *t, uint32_t r, unsigned int *nlens, uint32_t *nlong);

/* Publish a region's new list, keeping the fallback and split counts right. */
void flat_set_lens(struct flat *t, struct flat_ext *x, __u64 lens);

/* --- flat_split.c ---------------------------------------------------------------- */

/* Queue crowded region r (record x) for a tree, once per operation. */
void flat_split_later(struct flat *t, struct flat_ext *x, uint32_t r);

/*
 * A change is about to touch region r: if it is split, hand it to the trie
 * until the end of the operation, which compiles it a fresh tree.
 */
void flat_unsplit(struct flat *t, uint32_t r);

/*
 * Compile the queued regions' trees.  Returns ret (the operation's result)
 * unless that was 0 and this failed for want of memory.
 */
int flat_split_settle(struct flat *t, int ret);

#endif /* IPBLOCK_FLAT_STORE_H */
