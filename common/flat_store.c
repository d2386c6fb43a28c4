// SPDX-License-Identifier: GPL-2.0
/*
 * One flat table's memory: its geometry, attaching and formatting it,
 * clearing and copying it, rule ids, and the primitives of flat_store.h
 * (quarantine, block summaries, counters, slots, ext records, length lists).
 */
#include <errno.h>
#include <stddef.h>
#include <time.h>

#include "flat_store.h"
#include "linprobe.h"

uint32_t flat_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static bool aged(const struct flat *t, uint32_t since)
{
	return !t->quarantine_ms || flat_now_ms() - since >= t->quarantine_ms;
}

/* Sleep until a record freed at since has aged. */
void flat_wait_aged(const struct flat *t, uint32_t since)
{
	uint32_t left = t->quarantine_ms - (flat_now_ms() - since);
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
	/* The header's identity and geometry (up to ext_bump) stay; the rest starts afresh. */
	size_t keep = offsetof(struct flat_hdr, ext_bump);
	uint64_t data = (uint64_t)(HDR_ELEMS + nslots_of(t) + t->ext_cap) * FLAT_DATA_VALUE_SIZE +
			(uint64_t)t->cnt_cap * 8;
	uint8_t bit = (uint8_t)(1u << t->set);

	memset(t->top, 0, sizeof(*t->top) * top_words(t));
	memset((char *)t->hdr + keep, 0, data - keep);
	t->hdr->free_head = t->hdr->free_tail = FLAT_NIL;
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

/* --- ids ------------------------------------------------------------------------- */

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

/* --- block summaries ------------------------------------------------------------- */

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
void flat_sum_settle(struct flat *t)
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

/* --- per-region counters --------------------------------------------------------- */

static int64_t cnt_home(void *ctx, uint32_t j)
{
	const struct flat *t = ctx;

	if (!(uint32_t)t->cnt[j])
		return -1;
	return flat_home((uint32_t)(t->cnt[j] >> 32), 0, 0, log2u(t->cnt_cap));
}

static void cnt_move(void *ctx, uint32_t from, uint32_t to)
{
	struct flat *t = ctx;

	t->cnt[to] = t->cnt[from];
}

/* Remove record i (no tombstones: later records of its run move back). */
static void cnt_remove_at(struct flat *t, uint32_t i)
{
	t->cnt[linprobe_delete(i, t->cnt_cap - 1, t, cnt_home, cnt_move)] = 0;
	t->hdr->cnt_used--;
}

/* Add delta (+1/-1) to a counter; *now gets the new value.  -ENOSPC when full. */
int flat_cnt_add(struct flat *t, uint32_t region, unsigned int len, int delta, uint32_t *now)
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

/* --- slots ----------------------------------------------------------------------- */

/*
 * Put a new (hi, lo, len) -> entry within FLAT_MAX_PROBE of its home: the
 * first empty slot, or a dead one that died long enough ago or held this very
 * prefix (a reader still looking at it compares equal bytes).  -ENOSPC when
 * the window is full of live and recently dead slots that will not age.
 */
int flat_slot_insert(struct flat *t, __u64 hi, __u64 lo, unsigned int len, uint32_t entry)
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
		flat_wait_aged(t, young_ms);
	}
	return -ENOSPC;
}

void flat_slot_kill(struct flat *t, uint32_t i)
{
	struct flat_slot *s = &t->slots[i];
	uint32_t len = (uint32_t)(s->word >> 32);

	put64(&s->word, (__u64)(FLAT_TAG_DEAD | len) << 32 | flat_now_ms());
	t->hdr->live_slots--;
	t->hdr->dead_slots++;
}

/* --- ext records and their length lists ------------------------------------------ */

/* A free record, oldest freed first; waits out the quarantine if it must. */
int flat_ext_alloc(struct flat *t, uint32_t *out)
{
	struct flat_hdr *h = t->hdr;
	uint32_t i;

	if (h->free_head != FLAT_NIL &&
	    (aged(t, t->ext[h->free_head].freed_ms) || h->ext_bump >= t->ext_cap)) {
		i = h->free_head;
		flat_wait_aged(t, t->ext[i].freed_ms);
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

void flat_ext_free(struct flat *t, uint32_t i)
{
	struct flat_hdr *h = t->hdr;
	struct flat_ext *x = &t->ext[i];

	x->state = EXT_FREE;
	x->nlong = FLAT_NIL;
	x->freed_ms = flat_now_ms();
	if (h->free_tail == FLAT_NIL)
		h->free_head = i;
	else
		t->ext[h->free_tail].nlong = i;
	h->free_tail = i;
}

/* lens with len inserted in order (longest first); the list has room. */
__u64 flat_lens_insert(__u64 lens, unsigned int len)
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

__u64 flat_lens_remove(__u64 lens, unsigned int len)
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
__u64 flat_lens_from_counts(const struct flat *t, uint32_t r, unsigned int *nlens, uint32_t *nlong)
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

/* Publish a region's new list, keeping the fallback and split counts right. */
void flat_set_lens(struct flat *t, struct flat_ext *x, __u64 lens)
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
