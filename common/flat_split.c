// SPDX-License-Identifier: GPL-2.0
/*
 * Crowded regions of the flat tables: a region whose long rules use more
 * lengths than one record lists is judged by a tree of nodes (format in
 * flat_format.h).  Trees are never changed in place: a change in a split
 * region queues it (flat_split_touch()), lookups keep using its old tree,
 * and at the end of the operation flat_split_settle() compiles the queued
 * regions afresh from one pass over the slots, publishes each with one
 * store and frees the old trees after the quarantine.  A new tree's markers
 * carry the other generation's tag than the old tree's, so both can be in
 * the hash until the old one goes.
 */
#include <errno.h>

#include "flat_store.h"

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
void flat_split_later(struct flat *t, struct flat_ext *x, uint32_t r)
{
	if (x->state & EXT_QUEUED)
		return;
	x->state |= EXT_QUEUED;
	split_queue(t, r, FLAT_NIL);
}

void flat_split_touch(struct flat *t, uint32_t r)
{
	struct flat_ext *x = region_ext(t, r);

	if (!x || !lens_split(x->lens) || (x->state & EXT_QUEUED))
		return;
	split_queue(t, r, (uint32_t)(x->lens >> 8));
	x->state |= EXT_QUEUED;
}

/* What one flat_split_settle() builds, so that a failed tree can be taken back. */
struct split_build {
	uint32_t *nodes, nnodes, nodes_cap; /* ext indexes */
	uint32_t *marks, nmarks, marks_cap; /* slot indexes */
};

/*
 * A tree is compiled from copies of its region's slots: a long rule's key
 * (hi, lo) and its length in the tag (word >> 32).
 */
static unsigned int rule_len(const struct flat_slot *s)
{
	return (unsigned int)(s->word >> 32);
}

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

/* Address order (regions are hi's top bits, so region order too), then length. */
static int by_address(const void *a, const void *b)
{
	const struct flat_slot *x = a, *y = b;

	return ruleset_key_compare(x->hi, x->lo, rule_len(x), y->hi, y->lo, rule_len(y));
}

/* Region r's entry of the sorted queue, or NULL. */
static struct flat_split *split_of(const struct flat *t, uint32_t r)
{
	struct flat_split key = { .region = r };

	return bsearch(&key, t->split, t->nsplit, sizeof(key), by_region);
}

static bool queued(const struct flat *t, uint32_t r)
{
	return split_of(t, r) != NULL;
}

/*
 * The lengths a node for rules v[0..n) lists, shortest first, into own
 * (*k of them): the 16 shortest.  Returns the depth of its children, the
 * longest it lists, or 0 when it lists every length (a leaf).
 */
static unsigned int node_lengths(const struct flat_slot *v, size_t n,
				 unsigned int own[FLAT_NODE_LENS], unsigned int *k)
{
	bool seen[129] = { false };

	for (size_t j = 0; j < n; j++)
		if (rule_len(&v[j]) <= 128)
			seen[rule_len(&v[j])] = true;
	*k = 0;
	for (unsigned int len = 1; len <= 128; len++) {
		if (!seen[len])
			continue;
		if (*k == FLAT_NODE_LENS)
			return own[*k - 1];
		own[(*k)++] = len;
	}
	return 0;
}

/*
 * Fill a node record: base, its lengths longest first (8 in lens, 8 in
 * more), child depth c and the generation (0 or CHILD_GEN) of the markers
 * of its children.
 */
static int node_make(struct flat *t, struct split_build *b, const unsigned int *own, unsigned int k,
		     unsigned int c, uint32_t gen, uint32_t base, uint32_t *elem)
{
	struct flat_ext *x;
	__u64 lens = 0, more = 0;
	uint32_t i;
	int ret = flat_ext_alloc(t, &i);

	if (ret)
		return ret;
	ret = push_u32(&b->nodes, &b->nnodes, &b->nodes_cap, i);
	if (ret) {
		flat_ext_free(t, i);
		return ret;
	}
	t->hdr->nodes++;
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
	x->child = (uint8_t)(c ? c | gen : 0);
	*elem = i;
	return 0;
}

/* The verdict a child at (kh, kl) inherits: the longest own rule covering it, else base. */
static uint32_t child_base(const struct flat *t, __u64 kh, __u64 kl, const unsigned int *own,
			   unsigned int k, uint32_t base)
{
	for (unsigned int o = k; o-- > 0;) {
		__u64 h = kh, l = kl;
		uint32_t s;

		flat_mask(&h, &l, own[o]);
		s = slot_find(t, h, l, own[o]);
		if (s != FLAT_NIL)
			return (uint32_t)t->slots[s].word;
	}
	return base;
}

static int build_node(struct flat *t, struct split_build *b, const struct flat_slot *v, size_t n,
		      uint32_t gen, uint32_t base, unsigned int level, uint32_t *elem);

/*
 * The children of a node at depth c over rules v[0..n) (sorted by
 * address): one per /c prefix holding rules longer than c, each found by a
 * marker slot (prefix /c, tag FLAT_TAG_NODE | gen | c).
 */
static int build_children(struct flat *t, struct split_build *b, const struct flat_slot *v,
			  size_t n, unsigned int c, uint32_t gen, const unsigned int *own,
			  unsigned int k, uint32_t base, unsigned int level)
{
	struct flat_slot *deep = malloc(n * sizeof(*deep));
	size_t m = 0;
	int ret = 0;

	if (!deep)
		return -ENOMEM;
	for (size_t j = 0; j < n; j++)
		if (rule_len(&v[j]) > c)
			deep[m++] = v[j];
	/* Sorted by address, the rules under one /c prefix are adjacent. */
	for (size_t j = 0; j < m && !ret;) {
		__u64 kh = deep[j].hi, kl = deep[j].lo;
		uint32_t celem;
		size_t e = j;

		flat_mask(&kh, &kl, c);
		while (e < m) {
			__u64 h = deep[e].hi, l = deep[e].lo;

			flat_mask(&h, &l, c);
			if (h != kh || l != kl)
				break;
			e++;
		}
		ret = build_node(t, b, deep + j, e - j, gen, child_base(t, kh, kl, own, k, base),
				 level + 1, &celem);
		if (!ret)
			ret = flat_slot_insert(t, kh, kl, FLAT_TAG_NODE | gen | c, celem);
		if (!ret) {
			uint32_t s = slot_find(t, kh, kl, FLAT_TAG_NODE | gen | c);

			ret = s == FLAT_NIL ? -EPROTO
					    : push_u32(&b->marks, &b->nmarks, &b->marks_cap, s);
		}
		j = e;
	}
	free(deep);
	return ret;
}

/*
 * The node for rules v[0..n) (sorted by address, all longer than the
 * node's depth and under it), whose addresses no listed rule covers are
 * judged by base.  *elem gets its record.
 */
static int build_node(struct flat *t, struct split_build *b, const struct flat_slot *v, size_t n,
		      uint32_t gen, uint32_t base, unsigned int level, uint32_t *elem)
{
	unsigned int own[FLAT_NODE_LENS], k;
	unsigned int c = node_lengths(v, n, own, &k);
	int ret;

	if (c && level + 1 >= FLAT_MAX_NODES)
		return -E2BIG;
	ret = node_make(t, b, own, k, c, gen, base, elem);
	if (!ret && c)
		ret = build_children(t, b, v, n, c, gen, own, k, base, level);
	return ret;
}

/* Free a tree's node record (i names an ext record that is a node). */
static void free_node(struct flat *t, uint32_t i)
{
	struct flat_ext *x = ext_of(t, i);

	if (x && x->state == EXT_NODE) {
		flat_ext_free(t, ext_index(t, x));
		t->hdr->nodes--;
	}
}

/*
 * Give queued region r what its rules v[0..n) need: a plain list when its
 * lengths fit in the record again, else a new tree (the other generation
 * than the tree old_root, which goes after the quarantine).
 */
static int split_region(struct flat *t, uint32_t r, uint32_t old_root, const struct flat_slot *v,
			size_t n)
{
	struct flat_ext *x = region_ext(t, r), *old = ext_of(t, old_root);
	uint32_t gen = old && (old->child & CHILD_GEN) ? 0 : CHILD_GEN, root;
	struct split_build b = { 0 };
	unsigned int nlens;
	uint32_t nlong;
	__u64 lens;
	int ret;

	if (!x)
		return 0; /* its last long rule went */
	lens = flat_lens_from_counts(t, r, &nlens, &nlong);
	if (nlens <= FLAT_MAX_LENS) {
		if (nlens == 1 && nlong == 1 && t->width == 32 && n == 1)
			lens = flat_lens_inline(nlens ? (unsigned int)(lens & 0xff) : 0,
						(uint32_t)(v[0].hi >> 32), (uint32_t)v[0].word);
		flat_set_lens(t, x, lens);
		return 0;
	}
	/* The pass must have seen every rule the counters count. */
	if (nlong != n)
		return -EPROTO;
	ret = build_node(t, &b, v, n, gen, x->base, 0, &root);
	if (!ret) {
		flat_set_lens(t, x, FLAT_LENS_SPLIT | (__u64)root << 8);
	} else {
		/* Never published: take it back at once. */
		for (uint32_t j = 0; j < b.nmarks; j++)
			flat_slot_kill(t, b.marks[j]);
		for (uint32_t j = 0; j < b.nnodes; j++)
			free_node(t, b.nodes[j]);
	}
	free(b.nodes);
	free(b.marks);
	return ret;
}

/*
 * Sort the queue by region, one entry a region (keeping an old tree to
 * free), and unmark the records: queued from here on means queued by the
 * next operation.  Whether any region left a tree behind.
 */
static bool queue_settle(struct flat *t)
{
	bool any_old = false;
	uint32_t k = 0;

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
	for (uint32_t j = 0; j < k; j++) {
		struct flat_ext *x = region_ext(t, t->split[j].region);

		if (x)
			x->state &= ~EXT_QUEUED;
	}
	return any_old;
}

/*
 * One pass over the slots: the queued regions' long rules into *v (*n of
 * them) and their old trees' markers into *old (*nold).  -ENOMEM.
 */
static int collect_queued(const struct flat *t, struct flat_slot **v, size_t *n, uint32_t **old,
			  uint32_t *nold)
{
	uint32_t old_cap = 0, nslots = nslots_of(t);
	size_t cap = 0;
	int err = 0;

	for (uint32_t i = 0; i < nslots && !err; i++) {
		const struct flat_slot *s = &t->slots[i];
		uint32_t tag = (uint32_t)(s->word >> 32);

		if (!tag || (tag & FLAT_TAG_DEAD) || !queued(t, region_of(s->hi)))
			continue;
		if (tag & FLAT_TAG_NODE) {
			err = push_u32(old, nold, &old_cap, i);
			continue;
		}
		if (*n == cap) {
			size_t c = cap ? 2 * cap : 1024;
			struct flat_slot *grown = realloc(*v, c * sizeof(*grown));

			if (!grown)
				return -ENOMEM;
			*v = grown;
			cap = c;
		}
		(*v)[(*n)++] = *s;
	}
	return err;
}

/*
 * Free the old trees once no reader that found one before it was unhooked
 * can be in it; a region whose new tree failed still uses its old one.
 */
static void free_old_trees(struct flat *t, const uint32_t *old, uint32_t nold, uint32_t since)
{
	flat_wait_aged(t, since);
	for (uint32_t j = 0; j < nold; j++) {
		const struct flat_split *q = split_of(t, region_of(t->slots[old[j]].hi));

		if (q && q->kept)
			continue;
		free_node(t, (uint32_t)t->slots[old[j]].word);
		flat_slot_kill(t, old[j]);
	}
	for (uint32_t j = 0; j < t->nsplit; j++)
		if (t->split[j].old_root != FLAT_NIL && !t->split[j].kept)
			free_node(t, t->split[j].old_root);
}

/* Compile each queued region's tree from its rules, v[0..n) sorted by address. */
static int compile_queued(struct flat *t, const struct flat_slot *v, size_t n)
{
	size_t at = 0;
	int ret = 0;

	for (uint32_t j = 0; j < t->nsplit; j++) {
		uint32_t r = t->split[j].region;
		size_t from;
		int err;

		while (at < n && region_of(v[at].hi) < r)
			at++;
		from = at;
		while (at < n && region_of(v[at].hi) == r)
			at++;
		err = split_region(t, r, t->split[j].old_root, v + from, at - from);
		/* Not built: the region keeps its old tree or list (old verdicts). */
		t->split[j].kept = err != 0;
		if (err && !ret)
			ret = err;
	}
	return ret;
}

int flat_split_settle(struct flat *t, int ret)
{
	struct flat_slot *v = NULL;
	uint32_t *old = NULL, nold = 0;
	size_t n = 0;
	bool any_old;
	int err;

	if (!t->nsplit)
		return ret;
	any_old = queue_settle(t);
	err = collect_queued(t, &v, &n, &old, &nold);
	/*
	 * Short of memory, leave everything as it is: the regions keep their
	 * old trees or lists (right, if stale for the rules this operation
	 * changed), and the next pass finds them again.
	 */
	if (!err) {
		qsort(v, n, sizeof(*v), by_address);
		err = compile_queued(t, v, n);
		/* The old trees are unhooked now: once no reader can be in them, they go. */
		if (nold || any_old)
			free_old_trees(t, old, nold, flat_now_ms());
	}
	free(v);
	free(old);
	free(t->split);
	t->split = NULL;
	t->nsplit = t->split_cap = 0;
	return ret ? ret : err;
}
