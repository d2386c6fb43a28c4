// SPDX-License-Identifier: GPL-2.0
/*
 * Rules into a flat table and out of it: add, delete, apply a diff, build
 * from nothing; the user-space reader and the statistics.  Storage
 * primitives are in flat_store.[ch], crowded regions' trees in
 * flat_split.c.
 */
#include <errno.h>

#include "flat_store.h"

/* --- add ------------------------------------------------------------------------- */

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

/*
 * Whether a rule of length len with entry e takes over a verdict v: v is
 * no rule or a rule no longer than len (a longer short rule wins), and not
 * e already.
 */
static bool takes_over(const struct flat *t, uint32_t v, unsigned int len, uint32_t e)
{
	return v != e && entry_len(t, v) <= (int)len;
}

/* The first region of the regions a rule of length len <= /24 at hi covers, and their count. */
static void short_span(__u64 hi, unsigned int len, uint32_t *r0, uint32_t *n)
{
	*r0 = len ? region_of(hi) : 0;
	*r0 &= len ? ~((1u << (FLAT_REGION_BITS - len)) - 1) : 0;
	*n = 1u << (FLAT_REGION_BITS - len);
}

/*
 * Give the regions [r0, r0 + n) of one block whose <= /24 verdict is
 * replaced (replace(v) true) the entry e: the region's entry, or its
 * record's base.  A split region's tree holds pushed-down copies of the
 * base: the tree is recompiled at the end of the operation.
 */
static int regions_put(struct flat *t, uint32_t r0, uint32_t n, uint32_t e,
		       bool (*replace)(const struct flat *t, uint32_t v, const void *arg),
		       const void *arg)
{
	for (uint32_t r = r0; r < r0 + n; r++) {
		uint32_t v = region_get(t, r);
		struct flat_ext *x = v & FLAT_EXT ? ext_of(t, v) : NULL;
		int ret;

		if (v & FLAT_EXT) {
			if (!x || !replace(t, x->base, arg))
				continue;
			flat_split_touch(t, r);
			put32(&x->base, e);
			continue;
		}
		if (!replace(t, v, arg))
			continue;
		/* In a uniform block the first such region makes the block a chunk. */
		ret = flat_region_put(t, r, e);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Every block [b0, b0 + nb) (whole blocks of a rule of length <= /16): a
 * uniform block takes the new verdict with one store; a block with a
 * chunk, region by region.
 */
static int blocks_put(struct flat *t, uint32_t b0, uint32_t nb, uint32_t e,
		      bool (*replace)(const struct flat *t, uint32_t v, const void *arg),
		      const void *arg)
{
	for (uint32_t b = b0; b < b0 + nb; b++) {
		uint32_t be = t->blocks[b];
		int ret;

		if (!(be & FLAT_EXT)) {
			if (replace(t, be, arg))
				put32(&t->blocks[b], e);
			continue;
		}
		ret = regions_put(t, b << (FLAT_REGION_BITS - FLAT_BLOCK_BITS), FLAT_CHUNK_ENTRIES, e,
				  replace, arg);
		if (ret)
			return ret;
	}
	return 0;
}

/* Spread entry e over the regions [r0, r0 + n) where replace() says so. */
static int span_put(struct flat *t, uint32_t r0, uint32_t n, uint32_t e,
		    bool (*replace)(const struct flat *t, uint32_t v, const void *arg),
		    const void *arg)
{
	if (n >= FLAT_CHUNK_ENTRIES)
		return blocks_put(t, block_of(r0), n / FLAT_CHUNK_ENTRIES, e, replace, arg);
	return regions_put(t, r0, n, e, replace, arg);
}

struct short_arg {
	unsigned int len;
	uint32_t e;
};

static bool short_replaces(const struct flat *t, uint32_t v, const void *arg)
{
	const struct short_arg *a = arg;

	return takes_over(t, v, a->len, a->e);
}

/* Push entry e of a rule of length len into every region it covers. */
static int add_short(struct flat *t, __u64 hi, unsigned int len, uint32_t e)
{
	struct short_arg a = { .len = len, .e = e };
	uint32_t r0, n;

	short_span(hi, len, &r0, &n);
	return span_put(t, r0, n, e, short_replaces, &a);
}

/* Same prefix in slot i: one store swaps the verdict (and one its inline copy). */
static void update_long(struct flat *t, uint32_t r, uint32_t i, __u64 hi, unsigned int len,
			uint32_t e, uint32_t *prev)
{
	struct flat_ext *x = region_ext(t, r);

	*prev = (uint32_t)t->slots[i].word;
	put64(&t->slots[i].word, (__u64)len << 32 | e);
	if (x && t->width == 32 && flat_lens_is_inline(x->lens))
		flat_set_lens(t, x, flat_lens_inline(len, (uint32_t)(hi >> 32), e));
}

/* List a new long rule in its region's record x; c: the region's rules of its length now. */
static void list_long(struct flat *t, struct flat_ext *x, uint32_t r, __u64 hi, __u64 lo,
		      unsigned int len, uint32_t c)
{
	/* Before the length is listed: the rule is probed once it is. */
	if (!(x->bloom & bloom_of(hi, lo, len)))
		put32(&x->bloom, x->bloom | bloom_of(hi, lo, len));
	x->nlong++;
	if (c == 1)
		x->nlens++;
	if (lens_split(x->lens))
		return; /* flat_split_touch() queued it: a new tree at the end */
	if (x->nlens > FLAT_MAX_LENS) {
		/* One length too many for the record: a tree, at the end. */
		flat_split_later(t, x, r);
	} else if (c == 1) {
		flat_set_lens(t, x, flat_lens_insert(lens_plain(t, x->lens), len));
	} else {
		/* A second rule of the same length: both are probed now. */
		flat_set_lens(t, x, lens_plain(t, x->lens));
	}
}

/*
 * A rule longer than /24: into the slot hash, counted in its region,
 * listed in the region's record (made for its first long rule).  Whatever
 * can fail goes first, so a failure changes nothing.  *prev gets the
 * entry an existing slot of the same prefix had.
 */
static int add_long(struct flat *t, __u64 hi, __u64 lo, unsigned int len, uint32_t e,
		    uint32_t *prev)
{
	uint32_t r = region_of(hi), i, c, xi = 0;
	struct flat_ext *x;
	int ret;

	i = slot_find(t, hi, lo, len);
	if (i != FLAT_NIL) {
		/* A tree holds copies of the entry in the bases under the rule. */
		flat_split_touch(t, r);
		update_long(t, r, i, hi, len, e, prev);
		return 0;
	}
	if (flat_slots_full(t))
		return -ENOBUFS;
	x = region_ext(t, r);
	if (!x) {
		ret = flat_ext_alloc(t, &xi);
		if (ret)
			return ret;
	}
	ret = flat_slot_insert(t, hi, lo, len, e);
	if (!ret)
		ret = flat_cnt_add(t, r, len, +1, &c);
	if (!ret && !x) {
		struct flat_ext *nx = &t->ext[xi];

		nx->base = region_get(t, r);
		nx->nlong = 1;
		nx->bloom = bloom_of(hi, lo, len);
		nx->nlens = 1;
		nx->lens = t->width == 32 ? flat_lens_inline(len, (uint32_t)(hi >> 32), e) : len;
		/* The record is complete before the region points at it. */
		ret = flat_region_put(t, r, FLAT_EXT | xi);
		if (!ret)
			t->hdr->ext_regions++;
		else
			flat_cnt_add(t, r, len, -1, NULL);
	}
	if (ret) {
		uint32_t s = slot_find(t, hi, lo, len);

		if (s != FLAT_NIL)
			flat_slot_kill(t, s);
		if (!x)
			flat_ext_free(t, xi);
		return ret;
	}
	t->hdr->long_rules++;
	if (x) {
		flat_split_touch(t, r);
		list_long(t, x, r, hi, lo, len, c);
	}
	return 0;
}

static int add_one(struct flat *t, const struct cidr *p, uint32_t id, bool deny, uint32_t old_id)
{
	struct flat_rule was;
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
	was = t->ids->rules[id];
	/* Lengths are compared through the id table: it must know this one first. */
	ids_mark(t, id, c.len, deny, true);
	if (c.len <= FLAT_REGION_BITS)
		ret = add_short(t, hi, c.len, entry_of(id, deny));
	else
		ret = add_long(t, hi, lo, c.len, entry_of(id, deny), &prev);
	if (ret) {
		/* Refused, the table is as it was: so is the id, reservation and action. */
		t->ids->rules[id] = was;
		return ret;
	}
	/* The id the prefix had here, as told or as found in its slot. */
	if (!old_id)
		old_id = flat_entry_id(prev);
	if (old_id && old_id != id)
		ids_mark(t, old_id, c.len, false, false);
	return 0;
}

/* --- delete ---------------------------------------------------------------------- */

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

static bool id_replaces(const struct flat *t, uint32_t v, const void *arg)
{
	(void)t;
	return !(v & FLAT_EXT) && flat_entry_id(v) == *(const uint32_t *)arg;
}

/* The regions a short rule judged go to its parent. */
static int delete_short(struct flat *t, const struct cidr *p, __u64 hi, uint32_t id)
{
	uint32_t r0, n, pe;
	int ret = parent_entry(t, p, &pe);

	if (ret)
		return ret;
	short_span(hi, p->len, &r0, &n);
	return span_put(t, r0, n, pe, id_replaces, &id);
}

static int delete_long(struct flat *t, __u64 hi, __u64 lo, unsigned int len, uint32_t id)
{
	uint32_t r = region_of(hi), i = slot_find(t, hi, lo, len), c;
	struct flat_ext *x = region_ext(t, r);

	if (i == FLAT_NIL || !cnt_get(t, r, len) || flat_entry_id((uint32_t)t->slots[i].word) != id)
		return -ENOENT;
	flat_split_touch(t, r);
	flat_cnt_add(t, r, len, -1, &c);
	t->hdr->long_rules--;
	if (!x) {
		flat_slot_kill(t, i);
		return 0;
	}
	x->nlong--;
	if (!c)
		x->nlens--;
	if (!x->nlong) {
		/* The region's last long rule: its entry answers alone again. */
		flat_region_put(t, r, x->base);
		flat_slot_kill(t, i);
		if (lens_split(x->lens))
			t->hdr->split_regions--;
		flat_ext_free(t, ext_index(t, x));
		t->hdr->ext_regions--;
		return 0;
	}
	/* Unlist the length before its last slot dies. */
	if (!c && !lens_split(x->lens) && x->nlens < FLAT_MAX_LENS)
		flat_set_lens(t, x, flat_lens_remove(lens_plain(t, x->lens), len));
	else if (!c && !lens_split(x->lens))
		/* Down to 8 lengths from more: the list is made from the counts. */
		flat_split_later(t, x, r);
	flat_slot_kill(t, i);
	return 0;
}

static int delete_one(struct flat *t, const struct cidr *p, uint32_t id)
{
	struct cidr c;
	__u64 hi, lo;
	int ret;

	if (!check_prefix(t, p) || !id || id >= t->ids->n)
		return -EINVAL;
	/*
	 * The id must be a rule of this length in this set (and, for a long
	 * rule, the one in the prefix's slot): another rule's id would be taken
	 * out of the set with its entries still in the table.
	 */
	if (!(t->ids->rules[id].sets & (1u << t->set)) || t->ids->rules[id].prefixlen != p->len)
		return -ENOENT;
	c = *p;
	cidr_clear_host_bits(&c);
	key_of(t, c.addr, &hi, &lo);
	if (c.len <= FLAT_REGION_BITS)
		ret = delete_short(t, &c, hi, id);
	else
		ret = delete_long(t, hi, lo, c.len, id);
	if (!ret)
		ids_mark(t, id, c.len, false, false);
	return ret;
}

/* End of every operation that changes a table: trees, then blocks. */
static int settle(struct flat *t, int ret)
{
	ret = flat_split_settle(t, ret);
	flat_blocks_settle(t);
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

/* --- lookup ---------------------------------------------------------------------- */

/* flat_probe() of bpf/flat_lookup.h: the entry under (hi, lo, tag), or 0. */
static uint32_t probe(const struct flat *t, unsigned int bits, __u64 hi, __u64 lo, uint32_t tag)
{
	uint32_t mask = (1u << bits) - 1, i = flat_home(hi, lo, tag, bits);

	if (bits != t->slot_bits)
		return 0;
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
	uint32_t bloom, r, e;
	unsigned int bits;

	/*
	 * The same loads in the same order as bpf/flat_lookup.h, acquire where the
	 * BPF reader relies on x86 ordering, so a process may look up while
	 * another one writes.
	 */
	key_of(t, addr, &hi, &lo);
	r = region_of(hi);
	e = __atomic_load_n(&t->blocks[block_of(r)], __ATOMIC_ACQUIRE);
	if (!(e & FLAT_EXT))
		return e;
	if ((e & ~FLAT_EXT) >= t->chunk_cap)
		return 0;
	e = __atomic_load_n(&chunk_of(t, e & ~FLAT_EXT)[r & (FLAT_CHUNK_ENTRIES - 1)],
			    __ATOMIC_ACQUIRE);
	if (!(e & FLAT_EXT))
		return e;
	x = ext_of(t, e);
	if (!x)
		return 0;
	lens = __atomic_load_n(&x->lens, __ATOMIC_ACQUIRE);
	if (t->width == 32 && flat_lens_is_inline(lens))
		return flat_inline_entry(lens, (uint32_t)(hi >> 32),
					 __atomic_load_n(&x->base, __ATOMIC_RELAXED));
	bits = x->slot_bits;
	bloom = __atomic_load_n(&x->bloom, __ATOMIC_RELAXED);
	if (t->width == 128 && lens_split(lens)) {
		bloom = ~0u;
		x = ext_of(t, (uint32_t)(lens >> 8));
		for (int d = 1; x && d < FLAT_MAX_NODES && x->child; d++) {
			uint32_t c = x->child, tag = FLAT_TAG_NODE | c;
			__u64 mh = hi, ml = lo;

			flat_mask(&mh, &ml, c & CHILD_DEPTH);
			e = probe(t, bits, mh, ml, tag);
			if (!e)
				break;
			x = ext_of(t, e);
		}
		if (!x)
			return 0;
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

/* --- batches --------------------------------------------------------------------- */

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

/* --- stats ----------------------------------------------------------------------- */

void flat_stats(const struct flat *t, struct flat_stats *st)
{
	const struct flat_hdr *h = t->hdr;
	uint32_t mixed = 0;

	for (uint32_t b = 0; b < FLAT_BLOCKS; b++)
		mixed += !!(t->blocks[b] & FLAT_EXT);

	*st = (struct flat_stats){
		.long_rules = h->long_rules,
		.ext_regions = h->ext_regions,
		.split_regions = h->split_regions,
		.nodes = h->nodes,
		.live_slots = h->live_slots,
		.dead_slots = h->dead_slots,
		.slots = nslots_of(t),
		.mixed_blocks = mixed,
		.blocks = FLAT_BLOCKS,
		.chunks_used = h->chunks_used,
		.chunk_cap = t->chunk_cap,
		.ext_used = h->ext_used,
		.ext_cap = t->ext_cap,
	};
}
