// SPDX-License-Identifier: GPL-2.0
/* The flat tables on plain memory: store, change, compile, read; see flat.h. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/*
 * Per-region counters live in a user-only open-addressing table of u64
 * records: key (region << 8 | length) in the high half, count in the low
 * half; a zero count is an empty record.  Length 0 counts the region's
 * rules that found no slot.
 */
#define CNT_MISSING 0

/* User-only bookkeeping in the data map, so another process can pick up. */
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

/* Publishing stores: readers see the old word or the new, never a mix. */
static inline void put32(__u32 *p, __u32 v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void put64(__u64 *p, __u64 v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static uint32_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static bool aged(const struct flat *t, uint32_t since)
{
	return !t->quarantine_ms || now_ms() - since >= t->quarantine_ms;
}

/* Sleep until a record freed at since has aged. */
static void wait_aged(const struct flat *t, uint32_t since)
{
	uint32_t left = t->quarantine_ms - (now_ms() - since);
	struct timespec ts = { .tv_sec = left / 1000, .tv_nsec = (left % 1000 + 1) * 1000000L };

	if (!aged(t, since))
		nanosleep(&ts, NULL);
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 64;

	while (p < n && p < (1u << 31))
		p <<= 1;
	return p;
}

static unsigned int log2u(uint32_t p)
{
	return 31 - __builtin_clz(p);
}

static uint32_t nslots_of(const struct flat *t)
{
	return 1u << t->slot_bits;
}

/* Entries of top and sum together, as they lie in the top map. */
static size_t top_words(const struct flat *t)
{
	return ((size_t)1 << t->top_bits) + ((size_t)1 << (t->top_bits - FLAT_SUM_SHIFT));
}

static uint64_t page_round(uint64_t bytes)
{
	return (bytes + 4095) & ~4095ull;
}

int flat_sizes_geom(int family, uint32_t slots, uint32_t ext_cap, uint32_t cnt_cap, uint32_t ids,
		    struct flat_sizes *out)
{
	unsigned int top_bits = family == AF_INET ? FLAT_V4_TOP_BITS : FLAT_V6_TOP_BITS;

	if ((family != AF_INET && family != AF_INET6) || !slots || slots > (1u << 30) || !ext_cap ||
	    ext_cap > (1u << 30) || !cnt_cap || cnt_cap > (1u << 30) || ids < 2 ||
	    ids > FLAT_MAX_ID + 1u)
		return -EINVAL;
	*out = (struct flat_sizes){
		.slots = pow2_at_least(slots),
		.ext_cap = ext_cap < (1u << top_bits) ? ext_cap : 1u << top_bits,
		.cnt_cap = pow2_at_least(cnt_cap),
		.top_elems = (1u << (top_bits - 1)) + (1u << (top_bits - FLAT_SUM_SHIFT - 1)),
		.ids_elems = ids,
	};
	out->data_elems =
		out->slots + out->ext_cap + HDR_ELEMS +
		(uint32_t)((out->cnt_cap * 8ull + FLAT_DATA_VALUE_SIZE - 1) / FLAT_DATA_VALUE_SIZE);
	out->top_bytes = page_round((uint64_t)out->top_elems * FLAT_TOP_VALUE_SIZE);
	out->data_bytes = page_round((uint64_t)out->data_elems * FLAT_DATA_VALUE_SIZE);
	out->ids_bytes = page_round((uint64_t)out->ids_elems * FLAT_IDS_VALUE_SIZE);
	return 0;
}

int flat_sizes(int family, uint32_t max_rules, struct flat_sizes *out)
{
	if (!max_rules || max_rules > (1u << 29))
		return -EINVAL;
	/*
	 * Slots at load <= 1/2: a miss scans ~2.5 slots and a rule finds no
	 * slot within FLAT_MAX_PROBE about once in a million.  Every region
	 * with an ext record holds a long rule, and so does every node of a
	 * crowded region's tree (a node lists the lengths of its own rules):
	 * an eighth more records (3 MiB per million rules) is room for the
	 * trees of any real list and for old trees in quarantine.  Every
	 * counter record stands for at least one long rule.  Ids: old and new
	 * set of a replace are alive at once.
	 */
	return flat_sizes_geom(family, 2 * max_rules, max_rules + max_rules / 8 + 64, 2 * max_rules,
			       2 * max_rules + 1, out);
}

void flat_ids_attach(struct flat_ids *ids, void *mem, uint32_t n)
{
	ids->rules = mem;
	ids->n = n;
}

int flat_attach(struct flat *t, int family, const struct flat_sizes *sz, void *top, void *data,
		struct flat_ids *ids, unsigned int set, flat_parent_fn parent, void *parent_ctx)
{
	struct flat_slot *elems = data;
	struct flat_sizes g;
	struct flat_hdr *h;
	int ret;

	ret = flat_sizes_geom(family, sz->slots, sz->ext_cap, sz->cnt_cap, sz->ids_elems, &g);
	if (ret)
		return ret;
	if (g.slots != sz->slots || g.cnt_cap != sz->cnt_cap || g.ext_cap != sz->ext_cap)
		return -EINVAL;
	if (set > 7 || !top || !data || !ids || !ids->rules)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->width = family == AF_INET ? 32 : 128;
	t->top_bits = family == AF_INET ? FLAT_V4_TOP_BITS : FLAT_V6_TOP_BITS;
	t->slot_bits = log2u(g.slots);
	t->set = set;
	t->ext_cap = g.ext_cap;
	t->cnt_cap = g.cnt_cap;
	t->top = top;
	t->sum = t->top + (1u << t->top_bits);
	t->hdr = (struct flat_hdr *)elems;
	t->slots = elems + HDR_ELEMS;
	t->ext = (struct flat_ext *)(t->slots + g.slots);
	t->cnt = (uint64_t *)(t->slots + g.slots + g.ext_cap);
	t->ids = ids;
	t->parent = parent;
	t->parent_ctx = parent_ctx;
	t->quarantine_ms = FLAT_QUARANTINE_MS;

	h = t->hdr;
	if (!h->magic) {
		/* A new map is zeroed, which is an empty table but for the header. */
		h->version = FLAT_VERSION;
		h->width = t->width;
		h->top_bits = t->top_bits;
		h->slot_bits = t->slot_bits;
		h->ext_cap = g.ext_cap;
		h->cnt_cap = g.cnt_cap;
		h->free_head = h->free_tail = FLAT_NIL;
		put32(&h->magic, FLAT_MAGIC);
		return 0;
	}
	if (h->magic != FLAT_MAGIC || h->version != FLAT_VERSION || h->width != t->width ||
	    h->top_bits != t->top_bits || h->slot_bits != t->slot_bits || h->ext_cap != g.ext_cap ||
	    h->cnt_cap != g.cnt_cap)
		return -EPROTO;
	return 0;
}

void flat_clear(struct flat *t)
{
	uint64_t data = (uint64_t)(HDR_ELEMS + nslots_of(t) + t->ext_cap) * FLAT_DATA_VALUE_SIZE +
			(uint64_t)t->cnt_cap * 8;
	struct flat_hdr h = *t->hdr;
	uint8_t bit = (uint8_t)(1u << t->set);

	memset(t->top, 0, sizeof(*t->top) * top_words(t));
	memset(t->hdr, 0, data);
	*t->hdr = (struct flat_hdr){
		.magic = h.magic,
		.version = h.version,
		.width = h.width,
		.top_bits = h.top_bits,
		.slot_bits = h.slot_bits,
		.ext_cap = h.ext_cap,
		.cnt_cap = h.cnt_cap,
		.free_head = FLAT_NIL,
		.free_tail = FLAT_NIL,
	};
	for (uint32_t i = 1; i < t->ids->n; i++) {
		t->ids->rules[i].sets &= ~bit;
		t->ids->rules[i].deny_sets &= ~bit;
	}
}

int flat_copy(struct flat *dst, const struct flat *src)
{
	uint64_t data =
		(uint64_t)(HDR_ELEMS + nslots_of(src) + src->ext_cap) * FLAT_DATA_VALUE_SIZE +
		(uint64_t)src->cnt_cap * 8;
	uint8_t from = (uint8_t)(1u << src->set), to = (uint8_t)(1u << dst->set);

	if (dst->width != src->width || dst->top_bits != src->top_bits ||
	    dst->slot_bits != src->slot_bits || dst->ext_cap != src->ext_cap ||
	    dst->cnt_cap != src->cnt_cap || dst->ids != src->ids || dst->set == src->set)
		return -EINVAL;
	memcpy(dst->top, src->top, sizeof(*dst->top) * top_words(dst));
	memcpy(dst->hdr, src->hdr, data);
	for (uint32_t i = 1; i < dst->ids->n; i++) {
		struct flat_rule *r = &dst->ids->rules[i];

		r->sets = (uint8_t)((r->sets & ~to) | (r->sets & from ? to : 0));
		r->deny_sets = (uint8_t)((r->deny_sets & ~to) | (r->deny_sets & from ? to : 0));
	}
	return 0;
}

/* --- ids --------------------------------------------------------------------- */

int flat_ids_alloc(struct flat_ids *ids, uint8_t prefixlen, uint32_t *id)
{
	uint32_t n = ids->n, start = ids->rules[0].reserved;

	if (n < 2)
		return -ENOSPC;
	/* Hand ids out round-robin: a freed id rests before it counts again. */
	for (uint32_t k = 1; k < n; k++) {
		uint32_t i = (uint32_t)((start + k - 1) % (n - 1)) + 1;
		struct flat_rule *r = &ids->rules[i];

		if (r->sets || (r->flags & FLAT_RULE_RESERVED))
			continue;
		r->prefixlen = prefixlen;
		r->deny_sets = 0;
		r->flags = FLAT_RULE_RESERVED;
		ids->rules[0].reserved = i;
		*id = i;
		return 0;
	}
	return -ENOSPC;
}

void flat_ids_release(struct flat_ids *ids, uint32_t id)
{
	if (id && id < ids->n)
		ids->rules[id].flags &= ~FLAT_RULE_RESERVED;
}

void flat_ids_reclaim(struct flat_ids *ids)
{
	for (uint32_t i = 1; i < ids->n; i++)
		if (!ids->rules[i].sets)
			ids->rules[i].flags &= ~FLAT_RULE_RESERVED;
}

/* Length of the rule an entry names; -1 for "no rule" so any rule beats it. */
static int entry_len(const struct flat *t, uint32_t e)
{
	uint32_t id = flat_entry_id(e);

	if (!id || id >= t->ids->n)
		return -1;
	return t->ids->rules[id].prefixlen;
}

static uint32_t entry_of(uint32_t id, bool deny)
{
	return id << 1 | (deny ? 1 : 0);
}

/* --- addresses and regions --------------------------------------------------- */

static void key_of(const struct flat *t, const uint8_t *addr, __u64 *hi, __u64 *lo)
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

static uint32_t region_of(const struct flat *t, __u64 hi)
{
	return (uint32_t)(hi >> (64 - t->top_bits));
}

static struct flat_ext *ext_of(const struct flat *t, uint32_t e)
{
	uint32_t i = (e & ~FLAT_EXT) - HDR_ELEMS - nslots_of(t);

	return i < t->ext_cap ? &t->ext[i] : NULL;
}

/* Where region r's <= N verdict lives (top or its ext record), NULL on fallback. */
static __u32 *base_of(const struct flat *t, uint32_t r)
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

/* --- block summaries ---------------------------------------------------------- */

/*
 * Store e in top[r].  The block's summary becomes FLAT_SUM_MIXED first,
 * unless it already names e, and the block is recomputed by sum_settle()
 * at the end of the operation.
 */
static void top_put(struct flat *t, uint32_t r, uint32_t e)
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
static void base_put(struct flat *t, uint32_t r, __u32 *b, uint32_t e)
{
	if (b == &t->top[r])
		top_put(t, r, e);
	else
		put32(b, e);
}

/* Block b's summary from its top entries. */
static void sum_block(struct flat *t, uint32_t b)
{
	const uint32_t *e = &t->top[b << FLAT_SUM_SHIFT];
	uint32_t v = e[0];

	if (v & FLAT_EXT)
		v = FLAT_SUM_MIXED;
	for (uint32_t i = 1; i < (1u << FLAT_SUM_SHIFT) && v != FLAT_SUM_MIXED; i++)
		if (e[i] != v)
			v = FLAT_SUM_MIXED;
	if (t->sum[b] != v)
		put32(&t->sum[b], v);
}

/* End of an operation: the blocks it touched get their summaries back. */
static void sum_settle(struct flat *t)
{
	uint32_t nblocks = 1u << (t->top_bits - FLAT_SUM_SHIFT);

	for (uint32_t w = 0; w < (nblocks + 63) / 64; w++) {
		uint64_t bits = t->dirty_all ? ~0ull : t->dirty ? t->dirty[w] : 0;

		for (; bits; bits &= bits - 1) {
			uint32_t b = w * 64 + (uint32_t)__builtin_ctzll(bits);

			if (b < nblocks)
				sum_block(t, b);
		}
	}
	free(t->dirty);
	t->dirty = NULL;
	t->dirty_all = false;
}

/* --- per-region counters ------------------------------------------------------ */

static uint32_t cnt_key(uint32_t region, unsigned int len)
{
	return region << 8 | len;
}

/* Index of key's record, or of the empty record where it would go. */
static uint32_t cnt_probe(const struct flat *t, uint32_t key, bool *found)
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

static uint32_t cnt_get(const struct flat *t, uint32_t region, unsigned int len)
{
	bool found;
	uint32_t i = cnt_probe(t, cnt_key(region, len), &found);

	return found ? (uint32_t)t->cnt[i] : 0;
}

/* Remove record i, pulling later records of its run back (no tombstones). */
static void cnt_remove_at(struct flat *t, uint32_t i)
{
	uint32_t mask = t->cnt_cap - 1, j = i;

	for (;;) {
		uint32_t home;
		bool stays;

		j = (j + 1) & mask;
		if (!(uint32_t)t->cnt[j])
			break;
		home = flat_home((uint32_t)(t->cnt[j] >> 32), 0, 0, log2u(t->cnt_cap));
		stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			t->cnt[i] = t->cnt[j];
			i = j;
		}
	}
	t->cnt[i] = 0;
	t->hdr->cnt_used--;
}

/* Add delta (+1/-1) to a counter; *now gets the new value.  -ENOSPC when full. */
static int cnt_add(struct flat *t, uint32_t region, unsigned int len, int delta, uint32_t *now)
{
	uint32_t key = cnt_key(region, len);
	bool found;
	uint32_t i = cnt_probe(t, key, &found);
	uint32_t v = found ? (uint32_t)t->cnt[i] : 0;

	if (delta < 0 && !v)
		return -ENOENT;
	if (!found && i == FLAT_NIL)
		return -ENOSPC;
	v += delta;
	if (now)
		*now = v;
	if (!v) {
		cnt_remove_at(t, i);
		return 0;
	}
	if (!found)
		t->hdr->cnt_used++;
	t->cnt[i] = (uint64_t)key << 32 | v;
	return 0;
}

/* --- slots -------------------------------------------------------------------- */

/* The bloom bit of long rule (hi, lo, len). */
static uint32_t bloom_of(__u64 hi, __u64 lo, unsigned int len)
{
	return flat_bloom_bit(flat_hash(hi, lo, len));
}

static uint32_t slot_home(const struct flat *t, __u64 hi, __u64 lo, unsigned int len)
{
	return flat_home(hi, lo, len, t->slot_bits);
}

/* The live slot of (hi, lo, len), or FLAT_NIL. */
static uint32_t slot_find(const struct flat *t, __u64 hi, __u64 lo, unsigned int len)
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

/*
 * Put a new (hi, lo, len) -> entry within FLAT_MAX_PROBE of its home: the
 * first empty slot, or a dead one that died long enough ago or held this very
 * prefix (a reader still looking at it compares equal bytes).  -ENOSPC when
 * the window is full of live and recently dead slots that will not age.
 */
static int slot_insert(struct flat *t, __u64 hi, __u64 lo, unsigned int len, uint32_t entry)
{
	uint32_t mask = nslots_of(t) - 1;

	for (int attempt = 0; attempt < 2; attempt++) {
		uint32_t i = slot_home(t, hi, lo, len), young = FLAT_NIL, young_ms = 0;

		for (int n = 0; n < FLAT_MAX_PROBE; n++, i = (i + 1) & mask) {
			struct flat_slot *s = &t->slots[i];
			uint32_t tag = (uint32_t)(s->word >> 32);
			bool same = s->hi == hi && s->lo == lo && (tag & ~FLAT_TAG_DEAD) == len;

			if (tag && !(tag & FLAT_TAG_DEAD))
				continue;
			if (tag && !same && !aged(t, (uint32_t)s->word)) {
				if (young == FLAT_NIL) {
					young = i;
					young_ms = (uint32_t)s->word;
				}
				continue;
			}
			if (tag)
				t->hdr->dead_slots--;
			__atomic_store_n(&s->hi, hi, __ATOMIC_RELAXED);
			__atomic_store_n(&s->lo, lo, __ATOMIC_RELAXED);
			put64(&s->word, (__u64)len << 32 | entry);
			t->hdr->live_slots++;
			return 0;
		}
		if (young == FLAT_NIL)
			break;
		wait_aged(t, young_ms);
	}
	return -ENOSPC;
}

static void slot_kill(struct flat *t, uint32_t i)
{
	struct flat_slot *s = &t->slots[i];
	uint32_t len = (uint32_t)(s->word >> 32);

	put64(&s->word, (__u64)(FLAT_TAG_DEAD | len) << 32 | now_ms());
	t->hdr->live_slots--;
	t->hdr->dead_slots++;
}

/* --- ext records -------------------------------------------------------------- */

/* A free record, oldest freed first; waits out the quarantine if it must. */
static int ext_alloc(struct flat *t, uint32_t *out)
{
	struct flat_hdr *h = t->hdr;
	uint32_t i;

	if (h->free_head != FLAT_NIL &&
	    (aged(t, t->ext[h->free_head].freed_ms) || h->ext_bump >= t->ext_cap)) {
		i = h->free_head;
		wait_aged(t, t->ext[i].freed_ms);
		h->free_head = t->ext[i].nlong;
		if (h->free_head == FLAT_NIL)
			h->free_tail = FLAT_NIL;
	} else if (h->ext_bump < t->ext_cap) {
		i = h->ext_bump++;
	} else {
		return -ENOSPC;
	}
	t->ext[i] = (struct flat_ext){ .slot_bits = t->slot_bits, .state = EXT_USED };
	*out = i;
	return 0;
}

static void ext_free(struct flat *t, uint32_t i)
{
	struct flat_hdr *h = t->hdr;
	struct flat_ext *x = &t->ext[i];

	x->state = EXT_FREE;
	x->nlong = FLAT_NIL;
	x->freed_ms = now_ms();
	if (h->free_tail == FLAT_NIL)
		h->free_head = i;
	else
		t->ext[h->free_tail].nlong = i;
	h->free_tail = i;
}

static uint32_t ext_index(const struct flat *t, const struct flat_ext *x)
{
	return (uint32_t)(x - t->ext);
}

/* lens with len inserted in order (longest first); the list has room. */
static __u64 lens_insert(__u64 lens, unsigned int len)
{
	uint8_t b[FLAT_MAX_LENS] = { 0 }, out[FLAT_MAX_LENS] = { 0 };
	int n = 0, k = 0;
	bool put = false;
	__u64 v = 0;

	for (int i = 0; i < FLAT_MAX_LENS; i++)
		b[i] = (uint8_t)(lens >> (8 * i));
	for (int i = 0; i < FLAT_MAX_LENS && b[i]; i++, n++) {
		if (!put && len > b[i]) {
			out[k++] = (uint8_t)len;
			put = true;
		}
		if (k < FLAT_MAX_LENS)
			out[k++] = b[i];
	}
	if (!put && k < FLAT_MAX_LENS)
		out[k++] = (uint8_t)len;
	for (int i = 0; i < FLAT_MAX_LENS; i++)
		v |= (__u64)out[i] << (8 * i);
	return v;
}

static __u64 lens_remove(__u64 lens, unsigned int len)
{
	__u64 v = 0;
	int k = 0;

	for (int i = 0; i < FLAT_MAX_LENS; i++) {
		unsigned int b = (uint8_t)(lens >> (8 * i));

		if (b && b != len)
			v |= (__u64)b << (8 * k++);
	}
	return v;
}

/*
 * The list a region should show, from its counters: FLAT_LENS_FALLBACK when
 * a rule is missing from the hash or there are too many lengths.
 */
static __u64 lens_from_counts(const struct flat *t, uint32_t r, unsigned int *nlens,
			      uint32_t *nlong)
{
	__u64 v = 0;
	unsigned int n = 0;
	uint32_t total = 0;

	for (unsigned int len = t->width; len > t->top_bits; len--) {
		uint32_t c = cnt_get(t, r, len);

		if (!c)
			continue;
		total += c;
		if (n < FLAT_MAX_LENS)
			v |= (__u64)len << (8 * n);
		n++;
	}
	*nlens = n;
	*nlong = total;
	if (n > FLAT_MAX_LENS || cnt_get(t, r, CNT_MISSING))
		return FLAT_LENS_FALLBACK;
	return v;
}

/* Publish a region's new list, keeping the fallback count right. */
/* A region's lens as a plain list: an inline rule's is its one length. */
static __u64 lens_plain(const struct flat *t, __u64 lens)
{
	return t->width == 32 && flat_lens_is_inline(lens) ? lens & 0xff : lens;
}

static bool lens_split(__u64 lens)
{
	return (lens & 0xff) == FLAT_LENS_SPLIT;
}

/* Publish a region's new list, keeping the fallback and split counts right. */
static void set_lens(struct flat *t, struct flat_ext *x, __u64 lens)
{
	bool was = x->lens == FLAT_LENS_FALLBACK, is = lens == FLAT_LENS_FALLBACK;
	bool was_split = lens_split(x->lens), is_split = lens_split(lens);

	if (x->lens == lens)
		return;
	put64(&x->lens, lens);
	if (is && !was)
		t->hdr->fallback_regions++;
	else if (was && !is)
		t->hdr->fallback_regions--;
	if (is_split && !was_split)
		t->hdr->split_regions++;
	else if (was_split && !is_split)
		t->hdr->split_regions--;
}

/* Queue region r for a tree (and old_root, a tree it no longer uses, for freeing). */
static void split_queue(struct flat *t, uint32_t r, uint32_t old_root)
{
	if (t->nsplit == t->split_cap) {
		uint32_t cap = t->split_cap ? 2 * t->split_cap : 16;
		struct flat_split *grown = realloc(t->split, cap * sizeof(*grown));

		/*
		 * Out of memory: the region stays on the trie, which judges it
		 * right, and an old tree's records stay taken until a rebuild.
		 */
		if (!grown)
			return;
		t->split = grown;
		t->split_cap = cap;
	}
	t->split[t->nsplit++] = (struct flat_split){ .region = r, .old_root = old_root };
}

/* Queue crowded region r (record x) for a tree, once per operation. */
static void region_queue(struct flat *t, struct flat_ext *x, uint32_t r)
{
	if (x->state & EXT_QUEUED)
		return;
	x->state |= EXT_QUEUED;
	split_queue(t, r, FLAT_NIL);
}

/*
 * A change is about to touch region r: if it is split, hand it to the trie
 * (its nodes hold pushed-down verdicts that the change may falsify) and
 * queue it for a fresh tree at the end of the operation.
 */
static void region_unsplit(struct flat *t, uint32_t r)
{
	uint32_t e = t->top[r];
	struct flat_ext *x;

	if (e == FLAT_FALLBACK || !(e & FLAT_EXT))
		return;
	x = ext_of(t, e);
	if (!x || !lens_split(x->lens))
		return;
	split_queue(t, r, (uint32_t)(x->lens >> 8));
	x->state |= EXT_QUEUED;
	set_lens(t, x, FLAT_LENS_FALLBACK);
	t->unsplit_ms = now_ms();
}

/* A fallen-back region whose rules fit again gets its list back. */
static void region_recover(struct flat *t, struct flat_ext *x, uint32_t r)
{
	unsigned int nlens;
	uint32_t nlong;
	__u64 lens;

	if (x->lens != FLAT_LENS_FALLBACK)
		return;
	/* Too many lengths but every rule in the hash: it gets a tree. */
	if (x->nlens > FLAT_MAX_LENS) {
		if (!cnt_get(t, r, CNT_MISSING))
			region_queue(t, x, r);
		return;
	}
	lens = lens_from_counts(t, r, &nlens, &nlong);
	set_lens(t, x, lens);
}

/* --- add ---------------------------------------------------------------------- */

static bool check_prefix(const struct flat *t, const struct cidr *p)
{
	return (t->width == 32 ? p->family == AF_INET : p->family == AF_INET6) &&
	       p->len <= t->width;
}

static void ids_mark(struct flat *t, uint32_t id, unsigned int len, bool deny, bool in)
{
	struct flat_rule *r = &t->ids->rules[id];
	uint8_t bit = (uint8_t)(1u << t->set);

	if (in) {
		r->prefixlen = (uint8_t)len;
		r->sets |= bit;
		r->flags &= ~FLAT_RULE_RESERVED;
		if (deny)
			r->deny_sets |= bit;
		else
			r->deny_sets &= ~bit;
	} else {
		r->sets &= ~bit;
		r->deny_sets &= ~bit;
	}
}

/* Push entry e of a rule of length len into every region it covers. */
static void add_short(struct flat *t, __u64 hi, unsigned int len, uint32_t e)
{
	uint32_t r0 = len ? region_of(t, hi) : 0, n = 1u << (t->top_bits - len);
	uint32_t last = 0;
	int last_len = -1;

	for (uint32_t r = r0; r < r0 + n; r++) {
		__u32 *b = base_of(t, r);
		int l;

		if (!b)
			continue;
		/* Runs of regions share a verdict: skip the id table on repeats. */
		if (*b == last) {
			l = last_len;
		} else {
			l = entry_len(t, *b);
			last = *b;
			last_len = l;
		}
		if (l <= (int)len && *b != e) {
			region_unsplit(t, r);
			base_put(t, r, b, e);
		}
	}
}

static int add_long(struct flat *t, __u64 hi, __u64 lo, unsigned int len, uint32_t e, bool update,
		    uint32_t *prev)
{
	uint32_t r = region_of(t, hi), i, c = 0, top;
	struct flat_ext *x;
	bool placed, is_new;
	int ret;

	region_unsplit(t, r);
	i = slot_find(t, hi, lo, len);
	if (i != FLAT_NIL) {
		/* Same prefix: one store swaps the verdict (and one its inline copy). */
		*prev = (uint32_t)t->slots[i].word;
		put64(&t->slots[i].word, (__u64)len << 32 | e);
		top = t->top[r];
		x = top != FLAT_FALLBACK && (top & FLAT_EXT) ? ext_of(t, top) : NULL;
		if (x && t->width == 32 && flat_lens_is_inline(x->lens))
			set_lens(t, x, flat_lens_inline(len, (uint32_t)(hi >> 32), e));
		return 0;
	}
	placed = !slot_insert(t, hi, lo, len, e);
	/* An update of a rule that had found no slot is not a new rule. */
	is_new = !(update && cnt_get(t, r, CNT_MISSING) && cnt_get(t, r, len));
	if (is_new) {
		ret = cnt_add(t, r, len, +1, &c);
		if (ret)
			return ret;
		t->hdr->long_rules++;
	}
	if (!placed) {
		if (is_new || !cnt_get(t, r, CNT_MISSING)) {
			ret = cnt_add(t, r, CNT_MISSING, +1, NULL);
			if (ret)
				return ret;
			t->hdr->missing++;
		}
	} else if (!is_new) {
		cnt_add(t, r, CNT_MISSING, -1, NULL);
		t->hdr->missing--;
	}

	top = t->top[r];
	if (top == FLAT_FALLBACK)
		return 0;
	if (top & FLAT_EXT) {
		x = ext_of(t, top);
		if (!x)
			return -EPROTO;
		/* Before the length is listed: the rule is probed once it is. */
		if (!(x->bloom & bloom_of(hi, lo, len)))
			put32(&x->bloom, x->bloom | bloom_of(hi, lo, len));
		if (is_new) {
			x->nlong++;
			if (c == 1)
				x->nlens++;
		}
		if (x->lens == FLAT_LENS_FALLBACK || x->nlens > FLAT_MAX_LENS) {
			set_lens(t, x, FLAT_LENS_FALLBACK);
			region_recover(t, x, r);
		} else if (!placed) {
			set_lens(t, x, FLAT_LENS_FALLBACK);
		} else if (c == 1) {
			set_lens(t, x, lens_insert(lens_plain(t, x->lens), len));
		} else {
			/* A second rule of the same length: both are probed now. */
			set_lens(t, x, lens_plain(t, x->lens));
		}
		return 0;
	}
	/* The region's first long rule: fill a record, then point top at it. */
	if (ext_alloc(t, &i)) {
		top_put(t, r, FLAT_FALLBACK);
		t->hdr->fallback_regions++;
		return 0;
	}
	x = &t->ext[i];
	x->base = top;
	x->nlong = 1;
	x->bloom = bloom_of(hi, lo, len);
	x->nlens = 1;
	if (!placed)
		x->lens = FLAT_LENS_FALLBACK;
	else if (t->width == 32)
		x->lens = flat_lens_inline(len, (uint32_t)(hi >> 32), e);
	else
		x->lens = len;
	if (!placed)
		t->hdr->fallback_regions++;
	top_put(t, r, FLAT_EXT | (HDR_ELEMS + nslots_of(t) + i));
	t->hdr->ext_regions++;
	return 0;
}

static int add_one(struct flat *t, const struct cidr *p, uint32_t id, bool deny, uint32_t old_id)
{
	uint32_t prev = 0;
	struct cidr c;
	__u64 hi, lo;
	int ret;

	if (!check_prefix(t, p) || !id || id > FLAT_MAX_ID || id >= t->ids->n ||
	    old_id >= t->ids->n)
		return -EINVAL;
	c = *p;
	cidr_clear_host_bits(&c);
	key_of(t, c.addr, &hi, &lo);
	/* Lengths are compared through the id table: it must know this one first. */
	ids_mark(t, id, c.len, deny, true);
	if (c.len <= t->top_bits) {
		add_short(t, hi, c.len, entry_of(id, deny));
		ret = 0;
	} else {
		ret = add_long(t, hi, lo, c.len, entry_of(id, deny), old_id != 0, &prev);
	}
	/* The id the prefix had here, as told or as found in its slot. */
	if (!old_id)
		old_id = flat_entry_id(prev);
	if (!ret && old_id && old_id != id)
		ids_mark(t, old_id, c.len, false, false);
	return ret;
}

/* --- delete ------------------------------------------------------------------- */

static int parent_entry(struct flat *t, const struct cidr *p, uint32_t *e)
{
	struct cidr q = *p;
	struct rule m;
	int ret;

	*e = 0;
	if (!p->len)
		return 0;
	if (!t->parent)
		return -EINVAL;
	q.len = p->len - 1;
	cidr_clear_host_bits(&q);
	ret = t->parent(t->parent_ctx, &q, &m);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	if (!m.id || m.id >= t->ids->n || m.prefix.len > q.len)
		return -EPROTO;
	/* The parent may not have reached this table yet: teach its length. */
	t->ids->rules[m.id].prefixlen = m.prefix.len;
	*e = entry_of(m.id, m.action == IPBLOCK_ACTION_DENY);
	return 0;
}

static int delete_short(struct flat *t, const struct cidr *p, __u64 hi, uint32_t id)
{
	uint32_t r0 = p->len ? region_of(t, hi) : 0, n = 1u << (t->top_bits - p->len), pe;
	int ret = parent_entry(t, p, &pe);

	if (ret)
		return ret;
	for (uint32_t r = r0; r < r0 + n; r++) {
		__u32 *b = base_of(t, r);

		if (b && flat_entry_id(*b) == id) {
			region_unsplit(t, r);
			base_put(t, r, b, pe);
		}
	}
	return 0;
}

static int delete_long(struct flat *t, __u64 hi, __u64 lo, unsigned int len)
{
	uint32_t r = region_of(t, hi), i = slot_find(t, hi, lo, len), c, top;
	struct flat_ext *x = NULL;

	if (!cnt_get(t, r, len))
		return -ENOENT;
	region_unsplit(t, r);
	if (i == FLAT_NIL) {
		/* Not in the hash: it must be one of the region's missing rules. */
		if (cnt_add(t, r, CNT_MISSING, -1, NULL))
			return -ENOENT;
		t->hdr->missing--;
	}
	cnt_add(t, r, len, -1, &c);
	t->hdr->long_rules--;

	top = t->top[r];
	if (top != FLAT_FALLBACK && (top & FLAT_EXT))
		x = ext_of(t, top);
	if (!x) {
		if (i != FLAT_NIL)
			slot_kill(t, i);
		return 0;
	}
	x->nlong--;
	if (!c)
		x->nlens--;
	if (!x->nlong) {
		/* The region's last long rule: top answers alone again. */
		top_put(t, r, x->base);
		if (i != FLAT_NIL)
			slot_kill(t, i);
		if (x->lens == FLAT_LENS_FALLBACK)
			t->hdr->fallback_regions--;
		ext_free(t, ext_index(t, x));
		t->hdr->ext_regions--;
		return 0;
	}
	/* Unlist the length before its last slot dies. */
	if (!c && x->lens != FLAT_LENS_FALLBACK)
		set_lens(t, x, lens_remove(lens_plain(t, x->lens), len));
	if (i != FLAT_NIL)
		slot_kill(t, i);
	region_recover(t, x, r);
	return 0;
}

static int delete_one(struct flat *t, const struct cidr *p, uint32_t id)
{
	struct cidr c;
	__u64 hi, lo;
	int ret;

	if (!check_prefix(t, p) || !id || id >= t->ids->n)
		return -EINVAL;
	if (!(t->ids->rules[id].sets & (1u << t->set)))
		return -ENOENT;
	c = *p;
	cidr_clear_host_bits(&c);
	key_of(t, c.addr, &hi, &lo);
	if (c.len <= t->top_bits)
		ret = delete_short(t, &c, hi, id);
	else
		ret = delete_long(t, hi, lo, c.len);
	if (!ret)
		ids_mark(t, id, c.len, false, false);
	return ret;
}

/* --- split regions ------------------------------------------------------------ */

/* A long rule of a region being compiled into a tree. */
struct split_rule {
	__u64 hi, lo;
	uint32_t region;
	uint8_t len;
};

/* What one settle() builds, so that a failed tree can be taken back. */
struct split_build {
	uint32_t *nodes, nnodes, nodes_cap; /* ext indexes */
	uint32_t *marks, nmarks, marks_cap; /* slot indexes */
};

static int push_u32(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t x)
{
	if (*n == *cap) {
		uint32_t c = *cap ? 2 * *cap : 64;
		uint32_t *grown = realloc(*v, c * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		*v = grown;
		*cap = c;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static int by_region(const void *a, const void *b)
{
	const struct flat_split *x = a, *y = b;

	return x->region < y->region ? -1 : x->region > y->region;
}

static int by_address(const void *a, const void *b)
{
	const struct split_rule *x = a, *y = b;

	if (x->region != y->region)
		return x->region < y->region ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (int)x->len - (int)y->len;
}

static bool queued(const struct flat *t, uint32_t r)
{
	struct flat_split key = { .region = r };

	return bsearch(&key, t->split, t->nsplit, sizeof(key), by_region) != NULL;
}

/* The element index a top entry or marker uses for ext record i. */
static uint32_t ext_elem(const struct flat *t, uint32_t i)
{
	return HDR_ELEMS + nslots_of(t) + i;
}

/*
 * The node for rules v[0..n) (sorted by address, all longer than the
 * node's depth and under it), whose addresses no listed rule covers are
 * judged by base.  *elem gets its element index.
 */
static int build_node(struct flat *t, struct split_build *b, const struct split_rule *v, size_t n,
		      uint32_t base, unsigned int level, uint32_t *elem)
{
	bool seen[129] = { false };
	unsigned int own[FLAT_NODE_LENS], k = 0, c = 0;
	struct split_rule *deep = NULL;
	struct flat_ext *x;
	size_t m = 0;
	__u64 lens = 0, more = 0;
	uint32_t i;
	int ret;

	for (size_t j = 0; j < n; j++)
		seen[v[j].len] = true;
	/* The 16 shortest lengths are the node's own; the rest go below. */
	for (unsigned int len = 1; len <= 128; len++) {
		if (!seen[len])
			continue;
		if (k == FLAT_NODE_LENS) {
			c = own[k - 1];
			break;
		}
		own[k++] = len;
	}
	if (c && level + 1 >= FLAT_MAX_NODES)
		return -E2BIG;
	ret = ext_alloc(t, &i);
	if (ret)
		return ret;
	ret = push_u32(&b->nodes, &b->nnodes, &b->nodes_cap, i);
	if (ret) {
		ext_free(t, i);
		return ret;
	}
	t->hdr->nodes++;
	/* Longest first: the 8 longest in lens, the others in more. */
	for (unsigned int j = 0; j < k; j++) {
		if (j < 8)
			lens |= (__u64)own[k - 1 - j] << (8 * j);
		else
			more |= (__u64)own[k - 1 - j] << (8 * (j - 8));
	}
	x = &t->ext[i];
	x->state = EXT_NODE;
	x->base = base;
	x->lens = lens;
	x->more = more;
	x->child = (uint8_t)c;
	*elem = ext_elem(t, i);
	if (!c)
		return 0;

	deep = malloc(n * sizeof(*deep));
	if (!deep)
		return -ENOMEM;
	for (size_t j = 0; j < n; j++)
		if (v[j].len > c)
			deep[m++] = v[j];
	/* Sorted by address, the rules under one /c prefix are adjacent. */
	for (size_t j = 0; j < m && !ret;) {
		__u64 kh = deep[j].hi, kl = deep[j].lo;
		uint32_t cbase = base, celem;
		size_t e = j;

		flat_mask(&kh, &kl, c);
		while (e < m) {
			__u64 h = deep[e].hi, l = deep[e].lo;

			flat_mask(&h, &l, c);
			if (h != kh || l != kl)
				break;
			e++;
		}
		/* The child's base: the longest own rule covering it. */
		for (unsigned int o = k; o-- > 0;) {
			__u64 h = kh, l = kl;
			uint32_t s;

			flat_mask(&h, &l, own[o]);
			s = slot_find(t, h, l, own[o]);
			if (s != FLAT_NIL) {
				cbase = (uint32_t)t->slots[s].word;
				break;
			}
		}
		ret = build_node(t, b, deep + j, e - j, cbase, level + 1, &celem);
		if (!ret)
			ret = slot_insert(t, kh, kl, FLAT_TAG_NODE | c, celem);
		if (!ret) {
			uint32_t s = slot_find(t, kh, kl, FLAT_TAG_NODE | c);

			ret = s == FLAT_NIL ? -EPROTO
					    : push_u32(&b->marks, &b->nmarks, &b->marks_cap, s);
		}
		j = e;
	}
	free(deep);
	return ret;
}

/* Free a tree's node records, or kill its markers; the nodes a marker names go too. */
static void free_node(struct flat *t, uint32_t elem)
{
	struct flat_ext *x = ext_of(t, elem);

	if (x && x->state == EXT_NODE) {
		ext_free(t, ext_index(t, x));
		t->hdr->nodes--;
	}
}

/* Compile the tree of queued region r from its rules v[0..n). */
static void split_region(struct flat *t, uint32_t r, const struct split_rule *v, size_t n)
{
	uint32_t e = t->top[r], root;
	struct split_build b = { 0 };
	unsigned int nlens;
	uint32_t nlong;
	struct flat_ext *x;
	__u64 lens;
	int ret;

	if (e == FLAT_FALLBACK || !(e & FLAT_EXT))
		return;
	x = ext_of(t, e);
	if (!x || x->lens != FLAT_LENS_FALLBACK)
		return;
	lens = lens_from_counts(t, r, &nlens, &nlong);
	if (lens != FLAT_LENS_FALLBACK) {
		set_lens(t, x, lens);
		return;
	}
	/* Every rule must be in the hash, and the pass must have seen them all. */
	if (cnt_get(t, r, CNT_MISSING) || nlong != n)
		return;
	ret = build_node(t, &b, v, n, x->base, 0, &root);
	if (!ret) {
		set_lens(t, x, FLAT_LENS_SPLIT | (__u64)root << 8);
	} else {
		/* Never published: take it back at once. */
		for (uint32_t j = 0; j < b.nmarks; j++)
			slot_kill(t, b.marks[j]);
		for (uint32_t j = 0; j < b.nnodes; j++)
			free_node(t, ext_elem(t, b.nodes[j]));
	}
	free(b.nodes);
	free(b.marks);
}

/*
 * Compile the queued regions' trees.  One pass over the slots finds their
 * rules and their old trees' markers; the old trees go once no reader can
 * still be in them, then the new ones are built and published.  Returns
 * ret (the operation's result) unless that was 0 and this failed for want
 * of memory.
 */
static int settle_splits(struct flat *t, int ret)
{
	struct split_rule *v = NULL;
	uint32_t *old = NULL, nold = 0, old_cap = 0, nslots = nslots_of(t), k = 0;
	size_t n = 0, cap = 0;
	bool any_old = false;
	int err = 0;

	if (!t->nsplit)
		return ret;
	qsort(t->split, t->nsplit, sizeof(*t->split), by_region);
	for (uint32_t j = 0; j < t->nsplit; j++) {
		if (k && t->split[k - 1].region == t->split[j].region) {
			if (t->split[j].old_root != FLAT_NIL)
				t->split[k - 1].old_root = t->split[j].old_root;
		} else {
			t->split[k++] = t->split[j];
		}
		any_old |= t->split[j].old_root != FLAT_NIL;
	}
	t->nsplit = k;
	/* Queued from here on means queued by the next operation. */
	for (uint32_t j = 0; j < k; j++) {
		uint32_t e = t->top[t->split[j].region];
		struct flat_ext *x = e != FLAT_FALLBACK && (e & FLAT_EXT) ? ext_of(t, e) : NULL;

		if (x)
			x->state &= ~EXT_QUEUED;
	}

	for (uint32_t i = 0; i < nslots && !err; i++) {
		const struct flat_slot *s = &t->slots[i];
		uint32_t tag = (uint32_t)(s->word >> 32), r;

		if (!tag || (tag & FLAT_TAG_DEAD))
			continue;
		r = region_of(t, s->hi);
		if (!queued(t, r))
			continue;
		if (tag & FLAT_TAG_NODE) {
			err = push_u32(&old, &nold, &old_cap, i);
			continue;
		}
		if (n == cap) {
			size_t c = cap ? 2 * cap : 1024;
			struct split_rule *grown = realloc(v, c * sizeof(*grown));

			if (!grown) {
				err = -ENOMEM;
				break;
			}
			v = grown;
			cap = c;
		}
		v[n++] = (struct split_rule){
			.hi = s->hi, .lo = s->lo, .region = r, .len = (uint8_t)tag
		};
	}

	/*
	 * Short of memory, leave everything as it is: the regions stay on the
	 * trie, and the next pass over them finds the old markers again.
	 */
	if (!err && (nold || any_old)) {
		/* Readers that found an old tree before it was unhooked are done. */
		wait_aged(t, t->unsplit_ms);
		for (uint32_t j = 0; j < nold; j++) {
			free_node(t, (uint32_t)t->slots[old[j]].word);
			slot_kill(t, old[j]);
		}
		for (uint32_t j = 0; j < t->nsplit; j++)
			if (t->split[j].old_root != FLAT_NIL)
				free_node(t, t->split[j].old_root);
	}

	if (!err) {
		size_t at = 0;

		qsort(v, n, sizeof(*v), by_address);
		for (uint32_t j = 0; j < t->nsplit; j++) {
			uint32_t r = t->split[j].region;
			size_t from;

			while (at < n && v[at].region < r)
				at++;
			from = at;
			while (at < n && v[at].region == r)
				at++;
			split_region(t, r, v + from, at - from);
		}
	}
	/* On failure the queued regions stay on the trie: right, only slower. */
	free(v);
	free(old);
	free(t->split);
	t->split = NULL;
	t->nsplit = t->split_cap = 0;
	return ret ? ret : err;
}

/* End of every operation that changes a table: trees, then block summaries. */
static int settle(struct flat *t, int ret)
{
	ret = settle_splits(t, ret);
	sum_settle(t);
	return ret;
}

int flat_add(struct flat *t, const struct rule *r, uint32_t old_id)
{
	return settle(t, add_one(t, &r->prefix, r->id, r->action == IPBLOCK_ACTION_DENY, old_id));
}

int flat_delete(struct flat *t, const struct rule *r)
{
	return settle(t, delete_one(t, &r->prefix, r->id));
}

/* --- lookup ------------------------------------------------------------------- */

/* flat_probe() of bpf/flat_lookup.h: the entry under (hi, lo, tag), or 0. */
static uint32_t probe(const struct flat *t, unsigned int bits, __u64 hi, __u64 lo, uint32_t tag)
{
	uint32_t mask = (1u << bits) - 1, i = flat_home(hi, lo, tag, bits);

	for (int n = 0; n < FLAT_MAX_PROBE; n++, i = (i + 1) & mask) {
		const struct flat_slot *s = &t->slots[i];
		__u64 w = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE);
		uint32_t got = (uint32_t)(w >> 32);

		if (!got)
			break;
		if (got == tag && __atomic_load_n(&s->hi, __ATOMIC_RELAXED) == hi &&
		    __atomic_load_n(&s->lo, __ATOMIC_RELAXED) == lo)
			return (uint32_t)w;
	}
	return 0;
}

uint32_t flat_judge(const struct flat *t, const uint8_t *addr)
{
	const struct flat_ext *x;
	__u64 hi, lo, lens, more = 0;
	uint32_t bloom = ~0u;
	unsigned int bits;
	uint32_t e;

	/*
	 * The same loads in the same order as bpf/flat_lookup.h, acquire where the
	 * BPF reader relies on x86 ordering, so a process may look up while
	 * another one writes.
	 */
	key_of(t, addr, &hi, &lo);
	e = __atomic_load_n(&t->sum[region_of(t, hi) >> FLAT_SUM_SHIFT], __ATOMIC_ACQUIRE);
	if (!(e & FLAT_EXT))
		return e;
	e = __atomic_load_n(&t->top[region_of(t, hi)], __ATOMIC_ACQUIRE);
	if (e == FLAT_FALLBACK || !(e & FLAT_EXT))
		return e;
	x = ext_of(t, e);
	if (!x)
		return FLAT_FALLBACK;
	lens = __atomic_load_n(&x->lens, __ATOMIC_ACQUIRE);
	if ((lens & 0xff) == FLAT_LENS_FALLBACK)
		return FLAT_FALLBACK;
	if (t->width == 32 && flat_lens_is_inline(lens))
		return flat_inline_entry(lens, (uint32_t)(hi >> 32),
					 __atomic_load_n(&x->base, __ATOMIC_RELAXED));
	bits = x->slot_bits;
	bloom = __atomic_load_n(&x->bloom, __ATOMIC_RELAXED);
	if (lens_split(lens)) {
		bloom = ~0u;
		x = ext_of(t, (uint32_t)(lens >> 8));
		for (int d = 1; x && d < FLAT_MAX_NODES && x->child; d++) {
			uint32_t c = x->child, tag = FLAT_TAG_NODE | c;
			__u64 mh = hi, ml = lo;

			flat_mask(&mh, &ml, c);
			e = probe(t, bits, mh, ml, tag);
			if (!e)
				break;
			x = ext_of(t, e);
		}
		if (!x)
			return FLAT_FALLBACK;
		lens = x->lens;
		more = x->more;
	}
	for (int k = 0; k < FLAT_NODE_LENS; k++) {
		uint32_t len = (uint32_t)lens & 0xff;
		__u64 mh = hi, ml = lo;

		if (!len)
			break;
		lens = lens >> 8 | more << 56;
		more >>= 8;
		flat_mask(&mh, &ml, len);
		if (!(bloom & bloom_of(mh, ml, len)))
			continue;
		e = probe(t, bits, mh, ml, len);
		if (e)
			return e;
	}
	return __atomic_load_n(&x->base, __ATOMIC_RELAXED);
}

/* --- batches ------------------------------------------------------------------ */

int flat_apply(struct flat *t, const struct ruleset_change *c, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		if (c[i].new)
			continue;
		ret = delete_one(t, &c[i].old->prefix, c[i].old->id);
		if (ret == -ENOENT)
			ret = 0;
	}
	for (size_t i = 0; i < n && !ret; i++) {
		const struct rule *r = c[i].new;

		if (r)
			ret = add_one(t, &r->prefix, r->id, r->action == IPBLOCK_ACTION_DENY,
				      c[i].old ? c[i].old->id : 0);
	}
	/* Crowded regions get their trees once, after every change. */
	return settle(t, ret);
}

/* A rule's length as an index of 0..128 (add_one() refuses a bad one). */
static unsigned int len_index(const struct rule *r)
{
	return r->prefix.len <= 128 ? r->prefix.len : 128;
}

int flat_build(struct flat *t, const struct rule *r, size_t n)
{
	size_t start[130] = { 0 };
	uint32_t *order;
	int ret = 0;

	if (!n)
		return 0;
	if (n > UINT32_MAX)
		return -E2BIG;
	order = malloc(n * sizeof(*order));
	if (!order)
		return -ENOMEM;
	/* A counting sort by length: the shortest rules go in first. */
	for (size_t i = 0; i < n; i++)
		start[len_index(&r[i]) + 1]++;
	for (int len = 1; len < 130; len++)
		start[len] += start[len - 1];
	for (size_t i = 0; i < n; i++)
		order[start[len_index(&r[i])]++] = (uint32_t)i;
	for (size_t i = 0; i < n && !ret; i++) {
		const struct rule *x = &r[order[i]];

		ret = add_one(t, &x->prefix, x->id, x->action == IPBLOCK_ACTION_DENY, 0);
	}
	free(order);
	return settle(t, ret);
}

/* --- repair and stats ---------------------------------------------------------- */

/* Rebuild a region that lost its ext record for want of one. */
static int repair_region(struct flat *t, uint32_t r, bool *fixed)
{
	unsigned int nlens;
	uint32_t nlong, base, i;
	struct cidr q = { .family = t->width == 32 ? AF_INET : AF_INET6 };
	__u64 hi = (__u64)r << (64 - t->top_bits), lens;
	int ret;

	*fixed = false;
	lens = lens_from_counts(t, r, &nlens, &nlong);
	/* The region's first address at length N + 1 asks for rules <= N. */
	if (t->width == 32) {
		uint32_t a = htobe32((uint32_t)(hi >> 32));

		memcpy(q.addr, &a, 4);
	} else {
		uint64_t a = htobe64(hi);

		memcpy(q.addr, &a, 8);
	}
	q.len = t->top_bits + 1;
	ret = parent_entry(t, &q, &base);
	if (ret)
		return ret;
	if (!nlong) {
		top_put(t, r, base);
		t->hdr->fallback_regions--;
		*fixed = true;
		return 0;
	}
	if (ext_alloc(t, &i))
		return 0;
	t->ext[i].base = base;
	t->ext[i].nlong = nlong;
	/* Which bits its rules set is not known here: every probe is made. */
	t->ext[i].bloom = ~0u;
	t->ext[i].nlens = (uint8_t)nlens;
	t->ext[i].lens = lens;
	top_put(t, r, FLAT_EXT | (HDR_ELEMS + nslots_of(t) + i));
	t->hdr->ext_regions++;
	if (lens != FLAT_LENS_FALLBACK) {
		t->hdr->fallback_regions--;
		*fixed = true;
	} else if (!cnt_get(t, r, CNT_MISSING)) {
		region_queue(t, &t->ext[i], r);
		*fixed = true;
	}
	return 0;
}

/* Place a rule that found no slot when it was added, if it fits now. */
static void replace_missing(struct flat *t, const struct rule *x)
{
	__u64 hi, lo;
	uint32_t r;

	if (!check_prefix(t, &x->prefix) || x->prefix.len <= t->top_bits)
		return;
	key_of(t, x->prefix.addr, &hi, &lo);
	flat_mask(&hi, &lo, x->prefix.len);
	r = region_of(t, hi);
	if (!cnt_get(t, r, CNT_MISSING) || slot_find(t, hi, lo, x->prefix.len) != FLAT_NIL)
		return;
	if (slot_insert(t, hi, lo, x->prefix.len,
			entry_of(x->id, x->action == IPBLOCK_ACTION_DENY)))
		return;
	cnt_add(t, r, CNT_MISSING, -1, NULL);
	t->hdr->missing--;
}

int flat_repair(struct flat *t, const struct rule *set, size_t n, uint32_t *fixed)
{
	uint32_t nfixed = 0, regions = 1u << t->top_bits;
	int ret = 0;

	for (size_t i = 0; set && t->hdr->missing && i < n; i++)
		replace_missing(t, &set[i]);
	for (uint32_t r = 0; r < regions && t->hdr->fallback_regions; r++) {
		uint32_t e = t->top[r];
		bool ok = false;

		if (e == FLAT_FALLBACK) {
			ret = repair_region(t, r, &ok);
			if (ret)
				break;
		} else if (e & FLAT_EXT) {
			struct flat_ext *x = ext_of(t, e);

			if (x && x->lens == FLAT_LENS_FALLBACK) {
				region_recover(t, x, r);
				ok = x->lens != FLAT_LENS_FALLBACK;
			}
		}
		nfixed += ok;
	}
	if (fixed)
		*fixed = nfixed;
	return settle(t, ret);
}

void flat_stats(const struct flat *t, struct flat_stats *st)
{
	const struct flat_hdr *h = t->hdr;
	uint32_t nblocks = 1u << (t->top_bits - FLAT_SUM_SHIFT), mixed = 0;

	for (uint32_t b = 0; b < nblocks; b++)
		mixed += t->sum[b] == FLAT_SUM_MIXED;

	*st = (struct flat_stats){
		.long_rules = h->long_rules,
		.missing = h->missing,
		.ext_regions = h->ext_regions,
		.fallback_regions = h->fallback_regions,
		.split_regions = h->split_regions,
		.nodes = h->nodes,
		.dead_slots = h->dead_slots,
		.slots = nslots_of(t),
		.mixed_blocks = mixed,
		.blocks = nblocks,
	};
}
