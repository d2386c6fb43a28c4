// SPDX-License-Identifier: GPL-2.0
/*
 * Rules into a flat table and out of it: add, delete, apply a diff, build
 * from nothing, repair regions that fell back; the user-space reader and
 * the statistics.  Storage primitives are in flat_store.[ch], crowded
 * regions' trees in flat_split.c.
 */
#include <errno.h>

#include "flat_store.h"

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
			flat_split_later(t, x, r);
		return;
	}
	lens = flat_lens_from_counts(t, r, &nlens, &nlong);
	flat_set_lens(t, x, lens);
}

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
			flat_unsplit(t, r);
			base_put(t, r, b, e);
		}
	}
}

/* Same prefix in slot i: one store swaps the verdict (and one its inline copy). */
static void update_long(struct flat *t, uint32_t r, uint32_t i, __u64 hi, unsigned int len,
			uint32_t e, uint32_t *prev)
{
	uint32_t top = t->top[r];
	struct flat_ext *x = top != FLAT_FALLBACK && (top & FLAT_EXT) ? ext_of(t, top) : NULL;

	*prev = (uint32_t)t->slots[i].word;
	put64(&t->slots[i].word, (__u64)len << 32 | e);
	if (x && t->width == 32 && flat_lens_is_inline(x->lens))
		flat_set_lens(t, x, flat_lens_inline(len, (uint32_t)(hi >> 32), e));
}

/*
 * Count a long rule of region r in: *is_new unless it is an update of a
 * rule that had found no slot, *c the region's rules of its length now;
 * the missing count follows whether it found a slot this time.
 */
static int count_long(struct flat *t, uint32_t r, unsigned int len, bool placed, bool update,
		      bool *is_new, uint32_t *c)
{
	int ret;

	*c = 0;
	*is_new = !(update && cnt_get(t, r, CNT_MISSING) && cnt_get(t, r, len));
	if (*is_new) {
		ret = flat_cnt_add(t, r, len, +1, c);
		if (ret)
			return ret;
		t->hdr->long_rules++;
	}
	if (!placed) {
		if (*is_new || !cnt_get(t, r, CNT_MISSING)) {
			ret = flat_cnt_add(t, r, CNT_MISSING, +1, NULL);
			if (ret)
				return ret;
			t->hdr->missing++;
		}
	} else if (!*is_new) {
		flat_cnt_add(t, r, CNT_MISSING, -1, NULL);
		t->hdr->missing--;
	}
	return 0;
}

/* List a long rule in its region's record x; c: the region's rules of its length now. */
static void list_long(struct flat *t, struct flat_ext *x, uint32_t r, __u64 hi, __u64 lo,
		      unsigned int len, bool placed, bool is_new, uint32_t c)
{
	/* Before the length is listed: the rule is probed once it is. */
	if (!(x->bloom & bloom_of(hi, lo, len)))
		put32(&x->bloom, x->bloom | bloom_of(hi, lo, len));
	if (is_new) {
		x->nlong++;
		if (c == 1)
			x->nlens++;
	}
	if (x->lens == FLAT_LENS_FALLBACK || x->nlens > FLAT_MAX_LENS) {
		flat_set_lens(t, x, FLAT_LENS_FALLBACK);
		region_recover(t, x, r);
	} else if (!placed) {
		flat_set_lens(t, x, FLAT_LENS_FALLBACK);
	} else if (c == 1) {
		flat_set_lens(t, x, flat_lens_insert(lens_plain(t, x->lens), len));
	} else {
		/* A second rule of the same length: both are probed now. */
		flat_set_lens(t, x, lens_plain(t, x->lens));
	}
}

/* The region's first long rule: fill a record, then point top at it. */
static void first_long(struct flat *t, uint32_t r, __u64 hi, __u64 lo, unsigned int len, uint32_t e,
		       bool placed)
{
	uint32_t base = t->top[r], i;
	struct flat_ext *x;

	if (flat_ext_alloc(t, &i)) {
		top_put(t, r, FLAT_FALLBACK);
		t->hdr->fallback_regions++;
		return;
	}
	x = &t->ext[i];
	x->base = base;
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
	top_put(t, r, FLAT_EXT | ext_elem(t, i));
	t->hdr->ext_regions++;
}

/*
 * A rule longer than N: into the slot hash, counted in its region, listed
 * in the region's record (made for its first long rule).  *prev gets the
 * entry an existing slot of the same prefix had.
 */
static int add_long(struct flat *t, __u64 hi, __u64 lo, unsigned int len, uint32_t e, bool update,
		    uint32_t *prev)
{
	uint32_t r = region_of(t, hi), i, c, top;
	bool placed, is_new;
	int ret;

	flat_unsplit(t, r);
	i = slot_find(t, hi, lo, len);
	if (i != FLAT_NIL) {
		update_long(t, r, i, hi, len, e, prev);
		return 0;
	}
	placed = !flat_slot_insert(t, hi, lo, len, e);
	ret = count_long(t, r, len, placed, update, &is_new, &c);
	if (ret)
		return ret;
	top = t->top[r];
	if (top == FLAT_FALLBACK)
		return 0;
	if (!(top & FLAT_EXT)) {
		first_long(t, r, hi, lo, len, e, placed);
		return 0;
	}
	if (!ext_of(t, top))
		return -EPROTO;
	list_long(t, ext_of(t, top), r, hi, lo, len, placed, is_new, c);
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

static int delete_short(struct flat *t, const struct cidr *p, __u64 hi, uint32_t id)
{
	uint32_t r0 = p->len ? region_of(t, hi) : 0, n = 1u << (t->top_bits - p->len), pe;
	int ret = parent_entry(t, p, &pe);

	if (ret)
		return ret;
	for (uint32_t r = r0; r < r0 + n; r++) {
		__u32 *b = base_of(t, r);

		if (b && flat_entry_id(*b) == id) {
			flat_unsplit(t, r);
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
	flat_unsplit(t, r);
	if (i == FLAT_NIL) {
		/* Not in the hash: it must be one of the region's missing rules. */
		if (flat_cnt_add(t, r, CNT_MISSING, -1, NULL))
			return -ENOENT;
		t->hdr->missing--;
	}
	flat_cnt_add(t, r, len, -1, &c);
	t->hdr->long_rules--;

	top = t->top[r];
	if (top != FLAT_FALLBACK && (top & FLAT_EXT))
		x = ext_of(t, top);
	if (!x) {
		if (i != FLAT_NIL)
			flat_slot_kill(t, i);
		return 0;
	}
	x->nlong--;
	if (!c)
		x->nlens--;
	if (!x->nlong) {
		/* The region's last long rule: top answers alone again. */
		top_put(t, r, x->base);
		if (i != FLAT_NIL)
			flat_slot_kill(t, i);
		if (x->lens == FLAT_LENS_FALLBACK)
			t->hdr->fallback_regions--;
		flat_ext_free(t, ext_index(t, x));
		t->hdr->ext_regions--;
		return 0;
	}
	/* Unlist the length before its last slot dies. */
	if (!c && x->lens != FLAT_LENS_FALLBACK)
		flat_set_lens(t, x, flat_lens_remove(lens_plain(t, x->lens), len));
	if (i != FLAT_NIL)
		flat_slot_kill(t, i);
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

/* End of every operation that changes a table: trees, then block summaries. */
static int settle(struct flat *t, int ret)
{
	ret = flat_split_settle(t, ret);
	flat_sum_settle(t);
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

/* --- repair and stats ------------------------------------------------------------ */

/* Rebuild a region that lost its ext record for want of one. */
static int repair_region(struct flat *t, uint32_t r, bool *fixed)
{
	unsigned int nlens;
	uint32_t nlong, base, i;
	struct cidr q = { .family = t->width == 32 ? AF_INET : AF_INET6 };
	__u64 hi = (__u64)r << (64 - t->top_bits), lens;
	int ret;

	*fixed = false;
	lens = flat_lens_from_counts(t, r, &nlens, &nlong);
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
	if (flat_ext_alloc(t, &i))
		return 0;
	t->ext[i].base = base;
	t->ext[i].nlong = nlong;
	/* Which bits its rules set is not known here: every probe is made. */
	t->ext[i].bloom = ~0u;
	t->ext[i].nlens = (uint8_t)nlens;
	t->ext[i].lens = lens;
	top_put(t, r, FLAT_EXT | ext_elem(t, i));
	t->hdr->ext_regions++;
	if (lens != FLAT_LENS_FALLBACK) {
		t->hdr->fallback_regions--;
		*fixed = true;
	} else if (!cnt_get(t, r, CNT_MISSING)) {
		flat_split_later(t, &t->ext[i], r);
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
	if (flat_slot_insert(t, hi, lo, x->prefix.len,
			     entry_of(x->id, x->action == IPBLOCK_ACTION_DENY)))
		return;
	flat_cnt_add(t, r, CNT_MISSING, -1, NULL);
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
