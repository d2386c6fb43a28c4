// SPDX-License-Identifier: GPL-2.0
/*
 * One flat table's memory: attaching and formatting it, rule ids, and the
 * primitives of flat_store.h (quarantine, region entries and chunks,
 * counters, slots, ext records, length lists).
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

bool flat_aged(const struct flat *t, uint32_t since)
{
	return !t->quarantine_ms || flat_now_ms() - since >= t->quarantine_ms;
}

void flat_wait_aged(const struct flat *t, uint32_t since)
{
	uint32_t left = t->quarantine_ms - (flat_now_ms() - since);
	struct timespec ts = { .tv_sec = left / 1000, .tv_nsec = (left % 1000 + 1) * 1000000L };

	if (!flat_aged(t, since))
		nanosleep(&ts, NULL);
}

int flat_slot_bits_for(uint64_t long_rules, uint8_t *bits)
{
	uint8_t b = FLAT_MIN_SLOT_BITS;

	/* Load 1/4 after a build: room to double before the hash must grow. */
	while (((uint64_t)1 << b) < 4 * long_rules) {
		if (b == FLAT_MAX_SLOT_BITS)
			return -E2BIG;
		b++;
	}
	*bits = b;
	return 0;
}

int flat_attach(struct flat *t, int family, const struct flat_area *a, struct flat_ids *ids,
		unsigned int set, const struct flat_mem *mem, flat_parent_fn parent,
		void *parent_ctx)
{
	struct flat_hdr *h = a->hdr;

	if ((family != AF_INET && family != AF_INET6) || set >= FLAT_SETS || !a->blocks || !h ||
	    !ids || !ids->rules || a->slot_bits < FLAT_MIN_SLOT_BITS ||
	    a->slot_bits > FLAT_MAX_SLOT_BITS || !a->slots || !a->cnt)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->width = family == AF_INET ? 32 : 128;
	t->slot_bits = a->slot_bits;
	t->set = (uint8_t)set;
	t->chunk_cap = a->chunk_cap;
	t->ext_cap = a->ext_cap;
	t->blocks = a->blocks;
	t->chunks = a->chunks;
	t->ext = a->ext;
	t->slots = a->slots;
	t->cnt = a->cnt;
	t->hdr = h;
	t->ids = ids;
	t->mem = mem;
	t->parent = parent;
	t->parent_ctx = parent_ctx;
	t->quarantine_ms = FLAT_QUARANTINE_MS;

	if (!h->magic) {
		/* New memory is zeroed, which is an empty table but for the header. */
		h->version = FLAT_VERSION;
		h->width = t->width;
		h->slot_bits = t->slot_bits;
		h->chunk_cap = t->chunk_cap;
		h->ext_cap = t->ext_cap;
		/* Record 0 is never handed out: a marker's entry is never 0. */
		h->ext_bump = 1;
		h->chunk_head = h->chunk_tail = FLAT_NIL;
		h->free_head = h->free_tail = FLAT_NIL;
		put32(&h->magic, FLAT_MAGIC);
		return 0;
	}
	if (h->magic != FLAT_MAGIC || h->version != FLAT_VERSION || h->width != t->width ||
	    h->slot_bits != t->slot_bits || h->chunk_cap > t->chunk_cap || h->ext_cap > t->ext_cap)
		return -EPROTO;
	return 0;
}

void flat_area_need(const struct flat_hdr *h, uint32_t *chunks, uint32_t *ext, uint8_t *slot_bits)
{
	bool ok = h->magic == FLAT_MAGIC && h->version == FLAT_VERSION;

	*chunks = ok ? h->chunk_cap : 0;
	*ext = ok ? h->ext_cap : 0;
	*slot_bits = ok ? h->slot_bits : 0;
}

/* Ask the memory behind t for pool room for want elements; t's capacity follows. */
static int grow(struct flat *t, enum flat_pool pool, uint64_t want)
{
	uint32_t cap = 0;
	int ret;

	if (!t->mem || !t->mem->grow)
		return -ENOSPC;
	ret = t->mem->grow(t->mem->ctx, pool, want, &cap);
	if (ret)
		return ret;
	if (pool == FLAT_POOL_CHUNKS) {
		t->chunk_cap = cap;
		t->hdr->chunk_cap = cap;
	} else {
		t->ext_cap = cap;
		t->hdr->ext_cap = cap;
	}
	return 0;
}

/* --- ids ------------------------------------------------------------------------- */

void flat_ids_attach(struct flat_ids *ids, void *mem, uint32_t n, const struct flat_mem *grow_mem)
{
	ids->rules = mem;
	ids->n = n;
	ids->mem = grow_mem;
}

/* A free id of ids[1..n), handed out round-robin: a freed id rests before it counts again. */
static bool ids_take(struct flat_ids *ids, uint8_t prefixlen, uint32_t *id)
{
	uint32_t n = ids->n, start;

	if (n < 2)
		return false; /* no ids mapped yet: element 0 is the header */
	start = ids->rules[0].reserved;
	for (uint32_t k = 1; k < n; k++) {
		uint32_t i = (uint32_t)((start + k - 1) % (n - 1)) + 1;
		struct flat_rule *r = &ids->rules[i];

		if (r->sets || (r->flags & FLAT_RULE_RESERVED))
			continue;
		r->prefixlen = prefixlen;
		r->deny_sets = 0;
		/* Counted for another rule before: its counters start again from zero. */
		r->flags = FLAT_RULE_RESERVED | FLAT_RULE_COUNTED |
			   (r->flags & (FLAT_RULE_COUNTED | FLAT_RULE_RESET) ? FLAT_RULE_RESET : 0);
		ids->rules[0].reserved = i;
		*id = i;
		return true;
	}
	return false;
}

int flat_ids_alloc(struct flat_ids *ids, uint8_t prefixlen, uint32_t *id)
{
	uint32_t cap = 0;
	int ret;

	if (ids_take(ids, prefixlen, id))
		return 0;
	if (!ids->mem || !ids->mem->grow)
		return -ENOSPC;
	/* Grown by at least an eighth: one scan pays for many allocations. */
	ret = ids->mem->grow(ids->mem->ctx, FLAT_POOL_IDS, (uint64_t)ids->n + ids->n / 8 + 2,
			     &cap);
	/* Near the ceiling, one more id is still one more. */
	if (ret == -ENOSPC)
		ret = ids->mem->grow(ids->mem->ctx, FLAT_POOL_IDS, ids->n ? ids->n + 1 : 2, &cap);
	if (ret)
		return ret;
	/* Start the scan among the new ids. */
	ids->rules[0].reserved = ids->n > 1 ? ids->n - 1 : 0;
	ids->n = cap;
	return ids_take(ids, prefixlen, id) ? 0 : -ENOSPC;
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

void flat_ids_drop_set(struct flat_ids *ids, unsigned int set)
{
	uint8_t bit = (uint8_t)(1u << set);

	for (uint32_t i = 1; i < ids->n; i++) {
		ids->rules[i].sets &= ~bit;
		ids->rules[i].deny_sets &= ~bit;
	}
}

/* --- chunks and region entries --------------------------------------------------- */

/*
 * A free chunk's first entry links the FIFO, its second holds the time it
 * was given back.  Those stores would change what a reader still in the
 * chunk sees, so a chunk joins the FIFO only once it has aged (in limbo
 * until then), and everything on the FIFO is aged.
 */
#define CHUNK_NEXT  0
#define CHUNK_FREED 1

/* Put aged chunk c at the end of the free FIFO. */
static void chunk_link(struct flat *t, uint32_t c, uint32_t since)
{
	struct flat_hdr *h = t->hdr;
	uint32_t *e = chunk_of(t, c);

	e[CHUNK_NEXT] = FLAT_NIL;
	e[CHUNK_FREED] = since;
	if (h->chunk_tail == FLAT_NIL)
		h->chunk_head = c;
	else
		chunk_of(t, h->chunk_tail)[CHUNK_NEXT] = c;
	h->chunk_tail = c;
}

/*
 * The limbo's chunks, aged, onto the FIFO.  Each leaves the limbo before
 * it is linked: a writer killed in between leaks it, never links it twice.
 */
static void limbo_flush(struct flat *t)
{
	struct flat_hdr *h = t->hdr;

	while (h->limbo_n) {
		uint32_t c = h->limbo[h->limbo_n - 1];

		h->limbo_n--;
		chunk_link(t, c, h->limbo_ms);
	}
}

static int chunk_alloc(struct flat *t, uint32_t *out)
{
	struct flat_hdr *h = t->hdr;
	uint32_t c;
	int ret;

	/* The limbo serves once aged; a pool that would have to grow waits for it. */
	if (h->chunk_head == FLAT_NIL && h->limbo_n &&
	    (flat_aged(t, h->limbo_ms) || h->chunk_bump >= t->chunk_cap)) {
		flat_wait_aged(t, h->limbo_ms);
		limbo_flush(t);
	}
	if (h->chunk_head != FLAT_NIL &&
	    (flat_aged(t, chunk_of(t, h->chunk_head)[CHUNK_FREED]) || h->chunk_bump >= t->chunk_cap)) {
		c = h->chunk_head;
		flat_wait_aged(t, chunk_of(t, c)[CHUNK_FREED]);
		h->chunk_head = chunk_of(t, c)[CHUNK_NEXT];
		if (h->chunk_head == FLAT_NIL)
			h->chunk_tail = FLAT_NIL;
	} else {
		if (h->chunk_bump >= t->chunk_cap) {
			ret = grow(t, FLAT_POOL_CHUNKS, (uint64_t)h->chunk_bump + 1);
			if (ret)
				return ret;
		}
		c = h->chunk_bump++;
	}
	h->chunks_used++;
	*out = c;
	return 0;
}

/*
 * Chunks c[0..n) no block points at any more since the time since: into
 * the limbo when it has room, else (a large operation) all onto the FIFO
 * after one wait for the readers that may still be in them.
 */
static void chunks_give_back(struct flat *t, const uint32_t *c, uint32_t n, uint32_t since)
{
	struct flat_hdr *h = t->hdr;

	if (h->limbo_n && flat_aged(t, h->limbo_ms))
		limbo_flush(t);
	if (h->limbo_n + n <= FLAT_LIMBO) {
		for (uint32_t i = 0; i < n; i++) {
			h->limbo[h->limbo_n] = (uint16_t)c[i];
			h->limbo_ms = since;
			/* Counted last: a writer killed before leaks the chunk. */
			h->limbo_n++;
		}
		return;
	}
	flat_wait_aged(t, since);
	limbo_flush(t);
	for (uint32_t i = 0; i < n; i++)
		chunk_link(t, c[i], since);
}

static void mark_dirty(struct flat *t, uint32_t b)
{
	if (!t->dirty && !t->dirty_all) {
		t->dirty = calloc(FLAT_BLOCKS / 64, 8);
		/* Without the bitmap every block is looked at; nothing is lost. */
		t->dirty_all = !t->dirty;
	}
	if (t->dirty)
		t->dirty[b / 64] |= 1ull << (b % 64);
}

int flat_region_put(struct flat *t, uint32_t r, uint32_t e)
{
	uint32_t b = block_of(r), be = t->blocks[b], c;
	uint32_t *ch;
	int ret;

	if (!(be & FLAT_EXT)) {
		if (be == e)
			return 0;
		ret = chunk_alloc(t, &c);
		if (ret)
			return ret;
		ch = chunk_of(t, c);
		for (uint32_t i = 0; i < FLAT_CHUNK_ENTRIES; i++)
			__atomic_store_n(&ch[i], be, __ATOMIC_RELAXED);
		/* The chunk is complete before the block points at it. */
		put32(&t->blocks[b], FLAT_EXT | c);
		be = FLAT_EXT | c;
	}
	ch = chunk_of(t, be & ~FLAT_EXT);
	if (ch[r & (FLAT_CHUNK_ENTRIES - 1)] != e)
		put32(&ch[r & (FLAT_CHUNK_ENTRIES - 1)], e);
	mark_dirty(t, b);
	return 0;
}

/* The chunks settle gives back in one operation. */
struct chunk_list {
	uint32_t *c, n, cap;
};

/*
 * Block b's entry back, when every region of it has the same plain
 * verdict; its chunk onto *out.  Short of memory for the list, the block
 * keeps its chunk (slower, never wrong).
 */
static void settle_block(struct flat *t, uint32_t b, struct chunk_list *out)
{
	uint32_t be = t->blocks[b], *ch, v;

	if (!(be & FLAT_EXT))
		return;
	ch = chunk_of(t, be & ~FLAT_EXT);
	v = ch[0];
	if (v & FLAT_EXT)
		return;
	for (uint32_t i = 1; i < FLAT_CHUNK_ENTRIES; i++)
		if (ch[i] != v)
			return;
	if (out->n == out->cap) {
		uint32_t cap = out->cap ? 2 * out->cap : 64;
		uint32_t *grown = realloc(out->c, cap * sizeof(*grown));

		if (!grown)
			return;
		out->c = grown;
		out->cap = cap;
	}
	put32(&t->blocks[b], v);
	out->c[out->n++] = be & ~FLAT_EXT;
	t->hdr->chunks_used--;
}

void flat_blocks_settle(struct flat *t)
{
	struct chunk_list freed = { 0 };

	for (uint32_t w = 0; w < FLAT_BLOCKS / 64; w++) {
		uint64_t bits = t->dirty_all ? ~0ull : t->dirty ? t->dirty[w] : 0;

		for (; bits; bits &= bits - 1)
			settle_block(t, w * 64 + (uint32_t)__builtin_ctzll(bits), &freed);
	}
	/* Readers that found a chunk before its block went uniform may still be in it. */
	if (freed.n)
		chunks_give_back(t, freed.c, freed.n, flat_now_ms());
	free(freed.c);
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
	return flat_home((uint32_t)(t->cnt[j] >> 32), 0, 0, t->slot_bits);
}

static void cnt_move(void *ctx, uint32_t from, uint32_t to)
{
	struct flat *t = ctx;

	t->cnt[to] = t->cnt[from];
}

/* Remove record i (no tombstones: later records of its run move back). */
static void cnt_remove_at(struct flat *t, uint32_t i)
{
	t->cnt[linprobe_delete(i, nslots_of(t) - 1, t, cnt_home, cnt_move)] = 0;
	t->hdr->cnt_used--;
}

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

bool flat_slots_full(const struct flat *t)
{
	/* Tombstones count: a miss scans past them too. */
	return (uint64_t)t->hdr->live_slots + t->hdr->dead_slots + 1 > nslots_of(t) / 2;
}

/*
 * The first empty slot within FLAT_MAX_PROBE of the home, or a dead one that
 * died long enough ago or held this very key (a reader still looking at it
 * compares equal bytes).
 */
int flat_slot_insert(struct flat *t, __u64 hi, __u64 lo, unsigned int tag, uint32_t entry)
{
	uint32_t mask = nslots_of(t) - 1;

	for (int attempt = 0; attempt < 2; attempt++) {
		uint32_t i = slot_home(t, hi, lo, tag), young = FLAT_NIL, young_ms = 0;

		for (int n = 0; n < FLAT_MAX_PROBE; n++, i = (i + 1) & mask) {
			struct flat_slot *s = &t->slots[i];
			uint32_t got = (uint32_t)(s->word >> 32);
			bool same = s->hi == hi && s->lo == lo && (got & ~FLAT_TAG_DEAD) == tag;

			if (got && !(got & FLAT_TAG_DEAD))
				continue;
			if (got && !same && !flat_aged(t, (uint32_t)s->word)) {
				if (young == FLAT_NIL) {
					young = i;
					young_ms = (uint32_t)s->word;
				}
				continue;
			}
			if (got)
				t->hdr->dead_slots--;
			__atomic_store_n(&s->hi, hi, __ATOMIC_RELAXED);
			__atomic_store_n(&s->lo, lo, __ATOMIC_RELAXED);
			put64(&s->word, (__u64)tag << 32 | entry);
			t->hdr->live_slots++;
			return 0;
		}
		if (young == FLAT_NIL)
			break;
		flat_wait_aged(t, young_ms);
	}
	return -ENOBUFS;
}

void flat_slot_kill(struct flat *t, uint32_t i)
{
	struct flat_slot *s = &t->slots[i];
	uint32_t tag = (uint32_t)(s->word >> 32);

	put64(&s->word, (__u64)(FLAT_TAG_DEAD | tag) << 32 | flat_now_ms());
	t->hdr->live_slots--;
	t->hdr->dead_slots++;
}

/* --- ext records and their length lists ------------------------------------------ */

int flat_ext_alloc(struct flat *t, uint32_t *out)
{
	struct flat_hdr *h = t->hdr;
	uint32_t i;
	int ret;

	if (h->free_head != FLAT_NIL &&
	    (flat_aged(t, t->ext[h->free_head].freed_ms) || h->ext_bump >= t->ext_cap)) {
		i = h->free_head;
		flat_wait_aged(t, t->ext[i].freed_ms);
		h->free_head = t->ext[i].nlong;
		if (h->free_head == FLAT_NIL)
			h->free_tail = FLAT_NIL;
	} else {
		if (h->ext_bump >= t->ext_cap) {
			ret = grow(t, FLAT_POOL_EXT, (uint64_t)h->ext_bump + 1);
			if (ret)
				return ret;
		}
		i = h->ext_bump++;
	}
	t->ext[i] = (struct flat_ext){ .slot_bits = t->slot_bits, .state = EXT_USED };
	h->ext_used++;
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
	h->ext_used--;
}

__u64 flat_lens_insert(__u64 lens, unsigned int len)
{
	uint8_t b[FLAT_MAX_LENS] = { 0 }, out[FLAT_MAX_LENS] = { 0 };
	int k = 0;
	bool put = false;
	__u64 v = 0;

	for (int i = 0; i < FLAT_MAX_LENS; i++)
		b[i] = (uint8_t)(lens >> (8 * i));
	for (int i = 0; i < FLAT_MAX_LENS && b[i]; i++) {
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

__u64 flat_lens_from_counts(const struct flat *t, uint32_t r, unsigned int *nlens, uint32_t *nlong)
{
	__u64 v = 0;
	unsigned int n = 0;
	uint32_t total = 0;

	for (unsigned int len = t->width; len > FLAT_REGION_BITS; len--) {
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
	return v;
}

void flat_set_lens(struct flat *t, struct flat_ext *x, __u64 lens)
{
	bool was_split = lens_split(x->lens), is_split = lens_split(lens);

	if (x->lens == lens)
		return;
	put64(&x->lens, lens);
	if (is_split && !was_split)
		t->hdr->split_regions++;
	else if (was_split && !is_split)
		t->hdr->split_regions--;
}
