// SPDX-License-Identifier: GPL-2.0
/*
 * The flat tables (v2: blocks per /16, a pool of 256-entry chunks, ext
 * records, one slot hash) on plain memory (tests/helpers/flatmem.c)
 * against the rule cache's reference LPM: random nested rule sets,
 * incremental adds, deletes and updates, crowded IPv6 regions and their
 * trees, pools that grow and run out, a slot hash that fills, quarantine,
 * readers racing the writer and a writer killed half-way.
 *
 * After every operation the table is held against the test's own model
 * of it (check_range()): which blocks have a chunk, what every region
 * entry, ext record, length list, bloom word, counter and slot must be,
 * and that every chunk and record is in use or free, never both or
 * neither.  The kernel's reader over the same tables is tests/test_lookup.c's.
 *
 * FLAT_SEED=n repeats a run; FLAT_ONLY=pattern runs the matching tests
 * only; FLAT_SCALE=n divides the sizes by n (4 under the sanitizers).
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "cidr.h"
#include "flat.h"
/* White box: the header, the free lists and the records' states. */
#include "flat_store.h"
#include "flatmem.h"
#include "reference.h"
#include "rng.h"
#include "rulecache.h"
#include "ruleset.h"
#include "sanitizer.h"

/* Sizes divide by this: 4 under the sanitizers, FLAT_SCALE=n otherwise. */
static unsigned int scale = 1;

static size_t scaled(size_t n)
{
	return n / scale ? n / scale : 1;
}

/* --- random numbers, addresses ----------------------------------------------- */

static void seed(void)
{
	rng_seed("FLAT_SEED");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned int width_of(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* A random address inside p (host bits random). */
static void addr_in(const struct cidr *p, uint8_t *out)
{
	unsigned int w = width_of(p->family);

	memset(out, 0, 16);
	for (unsigned int i = 0; i < w / 8; i++) {
		unsigned int keep = p->len > i * 8 ? p->len - i * 8 : 0;
		uint8_t m = keep >= 8 ? 0xff : (uint8_t)(0xff00 >> keep);

		out[i] = (p->addr[i] & m) | ((uint8_t)rnd() & ~m);
	}
}

/* First (last = false) or last address of p. */
static void addr_edge(const struct cidr *p, bool last, uint8_t *out)
{
	unsigned int w = width_of(p->family);

	memcpy(out, p->addr, 16);
	if (!last)
		return;
	for (unsigned int b = p->len; b < w; b++)
		out[b / 8] |= (uint8_t)(0x80 >> (b % 8));
}

/* addr += delta (+1/-1) in w bits; false on wrap-around. */
static bool addr_step(uint8_t *addr, unsigned int w, int delta)
{
	for (int i = (int)w / 8 - 1; i >= 0; i--) {
		if (delta > 0 && addr[i]++ != 0xff)
			return true;
		if (delta < 0 && addr[i]-- != 0x00)
			return true;
	}
	return false;
}

static struct cidr parse(const char *txt)
{
	struct cidr c;

	assert_int_equal(cidr_parse(txt, &c, NULL, NULL, 0), 0);
	return c;
}

static const char *fmt(const struct cidr *c, char *buf)
{
	return cidr_format(c, buf, CIDR_STRLEN);
}

/* --- rule sets and the reference ------------------------------------------------- */

/* Length mix with every length possible and the common ones frequent. */
static unsigned int pick_len(int family)
{
	uint32_t r = below(1000);

	if (family == AF_INET) {
		if (r < 2)
			return 0;
		if (r < 40)
			return 1 + below(15);
		if (r < 250)
			return 16 + below(8);
		if (r < 400)
			return 24;
		if (r < 650)
			return 25 + below(7);
		return 32;
	}
	if (r < 2)
		return 0;
	if (r < 30)
		return 1 + below(19);
	if (r < 150)
		return 20 + below(13);
	if (r < 450)
		return 33 + below(16);
	if (r < 750)
		return 49 + below(16);
	if (r < 880)
		return 65 + below(63);
	return 128;
}

/* The rule of exactly p (out may be NULL); -ENOENT. */
static int ref_find(const struct rulecache *rc, const struct cidr *p, struct rule *out)
{
	struct rulecache_entry e;
	int ret = rulecache_find(rc, p, &e);

	if (!ret && out)
		*out = e.rule;
	return ret;
}

static uint32_t rule_entry(const struct rule *e)
{
	return e->id << 1 | (e->action == IPBLOCK_ACTION_DENY);
}

/* The entry the reference judges addr by: 0 or id << 1 | deny. */
static uint32_t reference_entry(const struct rulecache *rc, int family, const uint8_t *addr)
{
	struct rulecache_entry e;

	if (reference_lookup(rc, family, addr, &e))
		return 0;
	return rule_entry(&e.rule);
}

/* The parent callback over the reference: longest rule <= p->len covering p. */
static int cache_parent(void *ctx, const struct cidr *p, struct rule *out)
{
	struct rulecache_entry e;
	int ret = reference_match(ctx, p, &e);

	if (!ret)
		*out = e.rule;
	return ret;
}

/* The rule set under test: the reference cache and the same rules as a list. */
struct rules {
	int family;
	struct rulecache *rc;
	struct rule *v;
	size_t n, cap;
};

static void rules_init(struct rules *r, int family)
{
	memset(r, 0, sizeof(*r));
	r->family = family;
	r->rc = rulecache_new();
	assert_non_null(r->rc);
}

static void rules_free(struct rules *r)
{
	rulecache_free(r->rc);
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

static void rules_push(struct rules *r, const struct rule *e)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 1024;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		assert_non_null(r->v);
	}
	r->v[r->n++] = *e;
}

/* e into the reference and the list (a new prefix). */
static void rules_add(struct rules *r, const struct rule *e)
{
	bool created;

	assert_int_equal(rulecache_insert(r->rc, &(struct rulecache_entry){ .rule = *e }, &created),
			 0);
	assert_true(created);
	rules_push(r, e);
}

/* Rule i out of the reference and the list. */
static void rules_remove_at(struct rules *r, size_t i)
{
	assert_int_equal(rulecache_remove(r->rc, &r->v[i].prefix), 0);
	r->v[i] = r->v[--r->n];
}

/* Rule i becomes e (same prefix). */
static void rules_replace_at(struct rules *r, size_t i, const struct rule *e)
{
	assert_int_equal(rulecache_insert(r->rc, &(struct rulecache_entry){ .rule = *e }, NULL), 0);
	r->v[i] = *e;
}

/* Index of the rule of exactly p, or -1. */
static ssize_t rules_index(const struct rules *r, const struct cidr *p)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].prefix.len == p->len && !memcmp(r->v[i].prefix.addr, p->addr, 16))
			return (ssize_t)i;
	return -1;
}

/*
 * A prefix not yet in r: half the time inside (or around) an existing
 * rule so that rules nest; IPv6 mostly in 2000::/3 like real lists.
 */
static void gen_prefix(const struct rules *r, struct cidr *p)
{
	do {
		memset(p, 0, sizeof(*p));
		p->family = (uint8_t)r->family;
		if (r->n && below(2)) {
			addr_in(&r->v[below((uint32_t)r->n)].prefix, p->addr);
		} else {
			for (int i = 0; i < 16; i++)
				p->addr[i] = (uint8_t)rnd();
			if (r->family == AF_INET6 && below(8))
				p->addr[0] = 0x20 | (p->addr[0] & 0x1f);
		}
		if (r->family == AF_INET)
			memset(p->addr + 4, 0, 12);
		p->len = (uint8_t)pick_len(r->family);
		cidr_clear_host_bits(p);
	} while (!ref_find(r->rc, p, NULL));
}

/* A fresh random rule with an id from ids, in r; *out gets it. */
static void gen_rule(struct rules *r, struct flat_ids *ids, struct rule *out)
{
	struct rule e = { 0 };

	gen_prefix(r, &e.prefix);
	e.action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
	assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
	rules_add(r, &e);
	*out = e;
}

/* A rule of text txt with a fresh id, in r (not yet in any table). */
static struct rule text_rule(struct rules *r, struct flat_ids *ids, const char *txt, int action)
{
	struct rule e = { .prefix = parse(txt), .action = (uint8_t)action };

	assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
	rules_add(r, &e);
	return e;
}

/* A rule of text txt with a fresh id, not in any rule set yet. */
static struct rule pending_rule(struct flat_ids *ids, const char *txt, int action)
{
	struct rule e = { .prefix = parse(txt), .action = (uint8_t)action };

	assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
	return e;
}

/* --- tables on test memory -------------------------------------------------------- */

struct table {
	struct flatmem m;
	struct flat t;
};

/*
 * A new table of 2^slot_bits slots on fresh memory (o: its pools; NULL:
 * growing from nothing), deletes asking ref for parents.  No quarantine
 * unless a test sets one: nothing reads concurrently.
 */
static void table_open(struct table *tb, int family, struct flat_ids *ids, unsigned int set,
		       struct rulecache *ref, uint8_t slot_bits, const struct flatmem_opts *o)
{
	struct flat_area a;

	assert_int_equal(flatmem_open(&tb->m, slot_bits, o), 0);
	flatmem_area(&tb->m, &a);
	assert_int_equal(flat_attach(&tb->t, family, &a, ids, set, &tb->m.mem, cache_parent, ref),
			 0);
	tb->t.quarantine_ms = 0;
}

static void table_close(struct table *tb)
{
	flatmem_close(&tb->m);
}

/* A family's ids that grow on demand up to ceiling. */
static struct flat_ids *ids_open(struct flatmem_ids *x, uint32_t ceiling)
{
	assert_int_equal(flatmem_ids_open(x, ceiling, false), 0);
	return &x->ids;
}

/*
 * Bring t from the rules of have to those of want, ids included: their
 * diff through flat_apply().  *changes (may be NULL) gets its length.
 */
static int table_sync(struct flat *t, const struct rulecache *have, const struct rulecache *want,
		      size_t *changes)
{
	struct ruleset a = { 0 }, b = { 0 };
	struct ruleset_changes d = { 0 };
	int ret;

	assert_int_equal(rulecache_rules(have, &a), 0);
	assert_int_equal(rulecache_rules(want, &b), 0);
	ret = ruleset_changes(a.r, a.n, b.r, b.n, &d);
	if (!ret)
		ret = flat_apply(t, d.c, d.n);
	if (changes)
		*changes = d.n;
	ruleset_changes_free(&d);
	ruleset_free(&a);
	ruleset_free(&b);
	return ret;
}

/* --- verdicts ------------------------------------------------------------------------ */

static void fail_verdict(int family, const uint8_t *addr, uint32_t got, uint32_t want,
			 const char *what)
{
	struct cidr c = { .family = (uint8_t)family, .len = (uint8_t)width_of(family) };
	char buf[CIDR_STRLEN];

	memcpy(c.addr, addr, 16);
	fail_msg("%s: %s: flat says id %u %s, reference says id %u %s", what, fmt(&c, buf),
		 got >> 1, got & 1 ? "deny" : "allow", want >> 1, want & 1 ? "deny" : "allow");
}

static void check_addr(const struct flat *t, const struct rulecache *rc, int family,
		       const uint8_t *addr)
{
	uint32_t want = reference_entry(rc, family, addr), got = flat_judge(t, addr);

	if (got != want)
		fail_verdict(family, addr, got, want, "verdict");
}

/* First and last address of p and their neighbours. */
static void check_edges(const struct flat *t, const struct rulecache *rc, const struct cidr *p)
{
	unsigned int w = width_of(p->family);
	uint8_t a[16];

	for (int last = 0; last < 2; last++) {
		addr_edge(p, last, a);
		check_addr(t, rc, p->family, a);
		if (addr_step(a, w, last ? 1 : -1))
			check_addr(t, rc, p->family, a);
	}
}

static void check_random(const struct flat *t, const struct rules *r, size_t n)
{
	struct cidr any = { .family = (uint8_t)r->family };
	uint8_t a[16];

	for (size_t i = 0; i < n; i++) {
		/* Half inside rules (hits, nested ones), half anywhere. */
		addr_in(r->n && below(2) ? &r->v[below((uint32_t)r->n)].prefix : &any, a);
		check_addr(t, r->rc, r->family, a);
	}
}

static void check_all(const struct flat *t, const struct rules *r, size_t nrandom)
{
	for (size_t i = 0; i < r->n; i++)
		check_edges(t, r->rc, &r->v[i].prefix);
	check_random(t, r, nrandom);
}

/* --- the model: what the rules say every block and region must hold ---------------------- */

/* A prefix as the table keys it: host order, IPv4 in the top 32 bits of hi. */
static void prefix_key(const struct cidr *p, __u64 *hi, __u64 *lo)
{
	uint64_t h, l;
	uint32_t a;

	if (p->family == AF_INET) {
		memcpy(&a, p->addr, 4);
		*hi = (__u64)ntohl(a) << 32;
		*lo = 0;
		return;
	}
	memcpy(&h, p->addr, 8);
	memcpy(&l, p->addr + 8, 8);
	*hi = be64toh(h);
	*lo = be64toh(l);
}

/* The prefix of a slot key. */
static struct cidr key_prefix(int family, __u64 hi, __u64 lo, unsigned int len)
{
	struct cidr c = { .family = (uint8_t)family, .len = (uint8_t)len };
	uint64_t h = htobe64(hi), l = htobe64(lo);

	memcpy(c.addr, &h, 8);
	if (family == AF_INET)
		memset(c.addr + 4, 0, 4);
	else
		memcpy(c.addr + 8, &l, 8);
	return c;
}

static uint32_t rule_region(const struct rule *e)
{
	__u64 hi, lo;

	prefix_key(&e->prefix, &hi, &lo);
	return (uint32_t)(hi >> (64 - FLAT_REGION_BITS));
}

static uint32_t rule_block(const struct rule *e)
{
	return rule_region(e) >> (FLAT_REGION_BITS - FLAT_BLOCK_BITS);
}

/* The blocks a rule of length <= /16 covers: [*first, *first + *n). */
static void rule_blocks(const struct rule *e, uint32_t *first, uint32_t *n)
{
	unsigned int len = e->prefix.len;

	*n = 1u << (FLAT_BLOCK_BITS - len);
	*first = len ? rule_block(e) & ~(*n - 1) : 0;
}

/*
 * The model of blocks [b0, b0 + nb): blk, the entry of the longest rule of
 * length <= /16 covering each block; deep, the rules longer than /16
 * inside the range, by block, length, region.
 */
struct model {
	uint32_t b0, nb;
	uint32_t *blk;
	const struct rule **deep;
	size_t ndeep, nlong;
};

static int by_len(const void *a, const void *b)
{
	const struct rule *x = *(const struct rule *const *)a, *y = *(const struct rule *const *)b;

	return (x->prefix.len > y->prefix.len) - (x->prefix.len < y->prefix.len);
}

static int by_block_len_region(const void *a, const void *b)
{
	const struct rule *x = *(const struct rule *const *)a, *y = *(const struct rule *const *)b;
	uint32_t bx = rule_block(x), by = rule_block(y), rx = rule_region(x), ry = rule_region(y);

	if (bx != by)
		return bx < by ? -1 : 1;
	if (x->prefix.len != y->prefix.len)
		return x->prefix.len < y->prefix.len ? -1 : 1;
	return (rx > ry) - (rx < ry);
}

static void model_build(struct model *m, const struct rules *r, uint32_t b0, uint32_t nb)
{
	const struct rule **shorts = malloc((r->n + 1) * sizeof(*shorts));
	size_t ns = 0;

	memset(m, 0, sizeof(*m));
	m->b0 = b0;
	m->nb = nb;
	m->blk = calloc(nb, sizeof(*m->blk));
	m->deep = malloc((r->n + 1) * sizeof(*m->deep));
	assert_true(shorts && m->blk && m->deep);
	for (size_t i = 0; i < r->n; i++) {
		const struct rule *e = &r->v[i];
		uint32_t first, n;

		if (e->prefix.len <= FLAT_BLOCK_BITS) {
			rule_blocks(e, &first, &n);
			if (first < b0 + nb && first + n > b0)
				shorts[ns++] = e;
		} else if (rule_block(e) >= b0 && rule_block(e) < b0 + nb) {
			m->deep[m->ndeep++] = e;
			m->nlong += e->prefix.len > FLAT_REGION_BITS;
		}
	}
	/* Shortest first: a longer rule paints over the ones it is inside. */
	qsort(shorts, ns, sizeof(*shorts), by_len);
	for (size_t i = 0; i < ns; i++) {
		uint32_t first, n;

		rule_blocks(shorts[i], &first, &n);
		for (uint32_t b = first > b0 ? first : b0; b < first + n && b < b0 + nb; b++)
			m->blk[b - b0] = rule_entry(shorts[i]);
	}
	qsort(m->deep, m->ndeep, sizeof(*m->deep), by_block_len_region);
	free(shorts);
}

static void model_free(struct model *m)
{
	free(m->blk);
	free(m->deep);
}

/* --- invariants: the table against the model ------------------------------------------------ */

enum { FREE = 1, USED = 2, NODE = 3 };

/* What one check saw of the pools: each chunk's and record's state, trees. */
struct census {
	uint8_t *chunk; /* [chunk_bump] */
	uint8_t *ext;	/* [ext_bump] */
	uint32_t chunks, regions, split, inline_regions, cnt_pairs;
	struct tree {
		uint32_t region, root, gen, markers;
	} * trees;
	size_t ntrees, trees_cap;
};

/*
 * The free chunks and records, walked from their FIFOs (and the chunks'
 * limbo): each once, in range, a free record marked so.
 */
static void census_init(struct census *c, const struct flat *t)
{
	const struct flat_hdr *h = t->hdr;
	uint32_t n = 0;

	memset(c, 0, sizeof(*c));
	assert_true(h->chunk_bump <= t->chunk_cap);
	assert_true(h->ext_bump <= t->ext_cap || (h->ext_bump == 1 && !t->ext_cap));
	c->chunk = calloc(h->chunk_bump + 1, 1);
	c->ext = calloc(h->ext_bump + 1, 1);
	assert_true(c->chunk && c->ext);
	for (uint32_t k = h->chunk_head; k != FLAT_NIL; k = chunk_of(t, k)[0]) {
		if (k >= h->chunk_bump || c->chunk[k] || ++n > h->chunk_bump)
			fail_msg("chunk free list broken at %u (bump %u)", k, h->chunk_bump);
		c->chunk[k] = FREE;
		if (chunk_of(t, k)[0] == FLAT_NIL && k != h->chunk_tail)
			fail_msg("chunk free list ends at %u, its tail says %u", k, h->chunk_tail);
	}
	if (h->limbo_n > FLAT_LIMBO)
		fail_msg("%u chunks in limbo", h->limbo_n);
	for (uint32_t i = 0; i < h->limbo_n; i++) {
		if (h->limbo[i] >= h->chunk_bump || c->chunk[h->limbo[i]])
			fail_msg("chunk %u in limbo is out of range or free twice", h->limbo[i]);
		c->chunk[h->limbo[i]] = FREE;
	}
	n = 0;
	for (uint32_t k = h->free_head; k != FLAT_NIL; k = t->ext[k].nlong) {
		if (!k || k >= h->ext_bump || c->ext[k] || ++n > h->ext_bump)
			fail_msg("record free list broken at %u (bump %u)", k, h->ext_bump);
		if (t->ext[k].state != EXT_FREE)
			fail_msg("free record %u has state %u", k, t->ext[k].state);
		c->ext[k] = FREE;
		if (t->ext[k].nlong == FLAT_NIL && k != h->free_tail)
			fail_msg("record free list ends at %u, its tail says %u", k, h->free_tail);
	}
}

static void census_free(struct census *c)
{
	free(c->chunk);
	free(c->ext);
	free(c->trees);
}

/* Record i is taken by what (USED: a region, NODE: a tree node): in range, once, not free. */
static void census_take_ext(struct census *c, const struct flat *t, uint32_t i, int what,
			    const char *by)
{
	if (!i || i >= t->hdr->ext_bump)
		fail_msg("%s names record %u (bump %u)", by, i, t->hdr->ext_bump);
	if (c->ext[i] == FREE)
		fail_msg("%s names record %u, which is free", by, i);
	if (c->ext[i])
		fail_msg("%s names record %u, which is taken already", by, i);
	c->ext[i] = (uint8_t)what;
}

/* What the rules say one region must hold. */
struct region_want {
	uint32_t base;	  /* entry of the longest rule <= /24 covering it */
	uint32_t nlong;	  /* rules longer than /24 inside */
	uint64_t lens[2]; /* bit len - 1: lengths in use */
	uint32_t bloom;
	const struct rule *only; /* a long rule of it (the only one when nlong is 1) */
};

static unsigned int lens_count(const uint64_t lens[2])
{
	return (unsigned int)(__builtin_popcountll(lens[0]) + __builtin_popcountll(lens[1]));
}

static bool lens_has(const uint64_t lens[2], unsigned int len)
{
	return (lens[(len - 1) / 64] >> ((len - 1) % 64)) & 1;
}

/* The lengths in use, longest first, as a record lists them (the first 8). */
static __u64 lens_list(const uint64_t lens[2])
{
	__u64 v = 0;
	int k = 0;

	for (unsigned int len = 128; len > FLAT_REGION_BITS && k < FLAT_MAX_LENS; len--)
		if (lens_has(lens, len))
			v |= (__u64)len << (8 * k++);
	return v;
}

/* Region r (of table t) with entry e against what its rules say. */
static void check_region(const struct flat *t, struct census *c, uint32_t r, uint32_t e,
			 const struct region_want *w, bool exact_bloom)
{
	const struct flat_ext *x;
	unsigned int nl = lens_count(w->lens);
	uint32_t xi = e & ~FLAT_EXT;
	char by[64];

	if (!w->nlong) {
		if (e != w->base)
			fail_msg("region %#x: entry %#x, its rules say %#x", r, e, w->base);
		return;
	}
	if (!(e & FLAT_EXT))
		fail_msg("region %#x holds %u rules longer than /24 but its entry is %#x", r,
			 w->nlong, e);
	snprintf(by, sizeof(by), "region %#x", r);
	census_take_ext(c, t, xi, USED, by);
	c->regions++;
	x = &t->ext[xi];
	if (x->state != EXT_USED || x->slot_bits != t->slot_bits || x->child)
		fail_msg("region %#x: record %u has state %#x, slot bits %u, child %u", r, xi,
			 x->state, x->slot_bits, x->child);
	if (x->base != w->base || x->nlong != w->nlong || x->nlens != nl)
		fail_msg("region %#x: record %u says base %#x, %u rules, %u lengths; its rules "
			 "say %#x, %u, %u",
			 r, xi, x->base, x->nlong, x->nlens, w->base, w->nlong, nl);
	if (nl > FLAT_MAX_LENS) {
		const struct flat_ext *root;
		uint32_t ri = (uint32_t)(x->lens >> 8);

		if (!lens_split(x->lens))
			fail_msg("region %#x: %u lengths but no tree (lens %#llx)", r, nl,
				 (unsigned long long)x->lens);
		snprintf(by, sizeof(by), "region %#x's tree", r);
		census_take_ext(c, t, ri, NODE, by);
		root = &t->ext[ri];
		if (root->state != EXT_NODE || root->base != x->base)
			fail_msg("region %#x: root %u has state %u, base %#x (region's %#x)", r, ri,
				 root->state, root->base, x->base);
		if (c->ntrees == c->trees_cap) {
			c->trees_cap = c->trees_cap ? 2 * c->trees_cap : 16;
			c->trees = realloc(c->trees, c->trees_cap * sizeof(*c->trees));
			assert_non_null(c->trees);
		}
		c->trees[c->ntrees++] = (struct tree){
			.region = r, .root = ri, .gen = root->child & CHILD_GEN, .markers = 0
		};
		c->split++;
		return;
	}
	if (lens_split(x->lens))
		fail_msg("region %#x: %u lengths, still a tree", r, nl);
	if ((x->bloom & w->bloom) != w->bloom)
		fail_msg("region %#x: bloom %#x lacks bits %#x of its rules", r, x->bloom,
			 w->bloom & ~x->bloom);
	if (exact_bloom && x->bloom != w->bloom)
		fail_msg("region %#x: bloom %#x, its rules set %#x", r, x->bloom, w->bloom);
	if (t->width == 32 && flat_lens_is_inline(x->lens)) {
		__u64 hi, lo;

		prefix_key(&w->only->prefix, &hi, &lo);
		/* The record's copy of the region's one long rule. */
		if (w->nlong != 1 || (x->lens & 0xff) != w->only->prefix.len ||
		    ((x->lens >> 16) & 0xff) != ((hi >> 32) & 0xff) ||
		    (uint32_t)(x->lens >> 32) != rule_entry(w->only))
			fail_msg("region %#x: inline lens %#llx, %u long rules, rule entry %#x", r,
				 (unsigned long long)x->lens, w->nlong, rule_entry(w->only));
		c->inline_regions++;
		return;
	}
	if (x->lens != lens_list(w->lens))
		fail_msg("region %#x: lists lengths %#llx, its rules use %#llx", r,
			 (unsigned long long)x->lens, (unsigned long long)lens_list(w->lens));
}

/* Block b against the model: uniform with the right entry, or a chunk of the right regions. */
static void check_block(const struct flat *t, struct census *c, uint32_t b, uint32_t blk,
			const struct rule *const *g, size_t ng, bool exact_bloom)
{
	static struct region_want w[FLAT_CHUNK_ENTRIES];
	uint32_t e = t->blocks[b], ci = e & ~FLAT_EXT;
	const uint32_t *ch;
	bool uniform = true;

	if (!ng) {
		if (e & FLAT_EXT)
			fail_msg("block %#x keeps chunk %u, though all its regions say %#x", b, ci,
				 blk);
		if (e != blk)
			fail_msg("block %#x: entry %#x, its rules say %#x", b, e, blk);
		return;
	}
	if (!(e & FLAT_EXT))
		fail_msg("block %#x: uniform %#x, yet %zu rules longer than /16 lie in it", b, e,
			 ng);
	if (ci >= t->hdr->chunk_bump || c->chunk[ci])
		fail_msg("block %#x: chunk %u is %s (bump %u)", b, ci,
			 ci >= t->hdr->chunk_bump ? "out of range"
			 : c->chunk[ci] == FREE	  ? "free"
						  : "another block's",
			 t->hdr->chunk_bump);
	c->chunk[ci] = USED;
	c->chunks++;
	for (uint32_t i = 0; i < FLAT_CHUNK_ENTRIES; i++)
		w[i] = (struct region_want){ .base = blk };
	for (size_t k = 0; k < ng; k++) {
		const struct rule *e2 = g[k];
		uint32_t r = rule_region(e2) & (FLAT_CHUNK_ENTRIES - 1);
		unsigned int len = e2->prefix.len;
		__u64 hi, lo;

		if (len <= FLAT_REGION_BITS) {
			/* By length: the longest short rule over a region paints it last. */
			for (uint32_t i = 0; i < (1u << (FLAT_REGION_BITS - len)); i++)
				w[r + i].base = rule_entry(e2);
			continue;
		}
		prefix_key(&e2->prefix, &hi, &lo);
		w[r].nlong++;
		w[r].lens[(len - 1) / 64] |= 1ull << ((len - 1) % 64);
		w[r].bloom |= flat_bloom_bit(flat_hash(hi, lo, len));
		w[r].only = e2;
	}
	ch = chunk_of(t, ci);
	for (uint32_t i = 1; i < FLAT_CHUNK_ENTRIES; i++)
		uniform &= ch[i] == ch[0];
	if (uniform && !(ch[0] & FLAT_EXT))
		fail_msg("block %#x: chunk %u is uniform (%#x), not given back", b, ci, ch[0]);
	for (uint32_t i = 0; i < FLAT_CHUNK_ENTRIES; i++)
		check_region(t, c, b << 8 | i, ch[i], &w[i], exact_bloom);
}

/*
 * The counters of the long rules in one block: one record per (region,
 * length) that has rules, with their number.  g is sorted by length, then
 * region, so equal pairs are adjacent.
 */
static void check_counters(const struct flat *t, struct census *c, const struct rule *const *g,
			   size_t ng)
{
	for (size_t k = 0; k < ng;) {
		uint32_t r = rule_region(g[k]), n = 0;
		unsigned int len = g[k]->prefix.len;
		size_t j = k;

		while (j < ng && rule_region(g[j]) == r && g[j]->prefix.len == len)
			j++, n++;
		if (len > FLAT_REGION_BITS) {
			if (cnt_get(t, r, len) != n)
				fail_msg("region %#x: counter of /%u says %u, %u rules", r, len,
					 cnt_get(t, r, len), n);
			c->cnt_pairs++;
		}
		k = j;
	}
}

/* The entry of live slot key (hi, lo, tag) by a scan from its home, and where: FLAT_NIL. */
static uint32_t slot_at(const struct flat *t, __u64 hi, __u64 lo, uint32_t tag)
{
	uint32_t mask = (1u << t->slot_bits) - 1, i = flat_home(hi, lo, tag, t->slot_bits);

	for (int n = 0; n < FLAT_MAX_PROBE; n++, i = (i + 1) & mask) {
		const struct flat_slot *s = &t->slots[i];

		if (!(s->word >> 32))
			return FLAT_NIL;
		if ((s->word >> 32) == tag && s->hi == hi && s->lo == lo)
			return i;
	}
	return FLAT_NIL;
}

static int by_region_key(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = ((const struct tree *)b)->region;

	return (x > y) - (x < y);
}

/*
 * Every slot: a live rule is a rule of r with its entry, where a reader
 * finds it; a marker belongs to a split region's tree, of the generation
 * of that tree, and names a node; the header counts them right.
 */
static void check_slots(const struct flat *t, const struct rules *r, struct census *c, size_t nlong)
{
	uint32_t nslots = 1u << t->slot_bits, live = 0, dead = 0, markers = 0, rules = 0;
	int family = t->width == 32 ? AF_INET : AF_INET6;
	char buf[CIDR_STRLEN];

	for (uint32_t i = 0; i < nslots; i++) {
		const struct flat_slot *s = &t->slots[i];
		uint32_t tag = (uint32_t)(s->word >> 32), e = (uint32_t)s->word;
		struct tree *tr;
		struct rule rule = { 0 };
		struct cidr p;

		if (!tag)
			continue;
		if (tag & FLAT_TAG_DEAD) {
			dead++;
			continue;
		}
		live++;
		if (slot_at(t, s->hi, s->lo, tag) != i)
			fail_msg("slot %u (tag %#x): a reader does not find it there", i, tag);
		if (tag & FLAT_TAG_NODE) {
			uint32_t region = (uint32_t)(s->hi >> (64 - FLAT_REGION_BITS));
			char by[64];

			markers++;
			tr = bsearch(&region, c->trees, c->ntrees, sizeof(*c->trees),
				     by_region_key);
			if (!tr)
				fail_msg("slot %u: a marker in region %#x, which has no tree", i,
					 region);
			if ((tag & CHILD_GEN) != tr->gen ||
			    (tag & CHILD_DEPTH) <= FLAT_REGION_BITS || (tag & CHILD_DEPTH) >= 128)
				fail_msg("slot %u: marker tag %#x in region %#x, whose tree is of "
					 "generation %#x",
					 i, tag, region, tr->gen);
			snprintf(by, sizeof(by), "marker slot %u", i);
			census_take_ext(c, t, e, NODE, by);
			if (t->ext[e].state != EXT_NODE)
				fail_msg("marker slot %u names record %u of state %u", i, e,
					 t->ext[e].state);
			tr->markers++;
			continue;
		}
		rules++;
		p = key_prefix(family, s->hi, s->lo, tag);
		if (tag > t->width || ref_find(r->rc, &p, &rule))
			fail_msg("slot %u: %s is no rule", i, fmt(&p, buf));
		if (rule_entry(&rule) != e)
			fail_msg("slot %u: %s has entry %#x, its rule %#x", i, fmt(&p, buf), e,
				 rule_entry(&rule));
	}
	if (rules != nlong || t->hdr->live_slots != live || t->hdr->dead_slots != dead)
		fail_msg("%u rule slots for %zu long rules; %u live, %u dead slots, the header "
			 "says %u and %u",
			 rules, nlong, live, dead, t->hdr->live_slots, t->hdr->dead_slots);
	(void)markers;
}

/* Every rule's id: in this set, its length and action; no other id in it. */
static void check_ids(const struct flat *t, const struct rules *r)
{
	uint8_t bit = (uint8_t)(1u << t->set);
	size_t in = 0;

	for (size_t i = 0; i < r->n; i++) {
		const struct flat_rule *f = &t->ids->rules[r->v[i].id];
		bool deny = r->v[i].action == IPBLOCK_ACTION_DENY;

		if (!(f->sets & bit) || f->prefixlen != r->v[i].prefix.len ||
		    !!(f->deny_sets & bit) != deny || (f->flags & FLAT_RULE_RESERVED))
			fail_msg("id %u: sets %#x, /%u, deny %#x, flags %#x; its rule /%u %s",
				 r->v[i].id, f->sets, f->prefixlen, f->deny_sets, f->flags,
				 r->v[i].prefix.len, deny ? "deny" : "allow");
	}
	for (uint32_t i = 1; i < t->ids->n; i++)
		in += !!(t->ids->rules[i].sets & bit);
	if (in != r->n)
		fail_msg("%zu ids in set %u for %zu rules", in, t->set, r->n);
}

enum {
	CHECK_FULL = 1,	 /* the whole table: slots, pools, counters, ids, header */
	CHECK_BLOOM = 2, /* bloom words exactly their rules' bits (nothing deleted) */
};

/*
 * Blocks [b0, b0 + nb) of t against the model of r: a block without rules
 * longer than /16 has their entry; another has a chunk (in use, not all one
 * plain verdict) whose regions hold their <= /24 verdict or a record with
 * it, their long rules' count, lengths, bloom bits or tree.  CHECK_FULL
 * adds everything else.  Returns the regions keeping their rule inline.
 */
static uint32_t check_range(const struct flat *t, const struct rules *r, uint32_t b0, uint32_t nb,
			    int how)
{
	struct model m;
	struct census c;
	size_t k = 0;
	uint32_t inl;

	model_build(&m, r, b0, nb);
	census_init(&c, t);
	for (uint32_t b = b0; b < b0 + nb; b++) {
		size_t j = k;

		while (j < m.ndeep && rule_block(m.deep[j]) == b)
			j++;
		check_block(t, &c, b, m.blk[b - b0], m.deep + k, j - k, how & CHECK_BLOOM);
		check_counters(t, &c, m.deep + k, j - k);
		k = j;
	}
	if (how & CHECK_FULL) {
		const struct flat_hdr *h = t->hdr;
		struct flat_stats st;
		uint32_t nodes = 0;

		assert_true(b0 == 0 && nb == FLAT_BLOCKS);
		check_slots(t, r, &c, m.nlong);
		for (size_t i = 0; i < c.ntrees; i++)
			nodes += c.trees[i].markers + 1;
		/* Nothing leaks: every chunk and record handed out is in use or free. */
		for (uint32_t i = 0; i < h->chunk_bump; i++)
			if (!c.chunk[i])
				fail_msg("chunk %u is neither in use nor free", i);
		for (uint32_t i = 1; i < h->ext_bump; i++)
			if (!c.ext[i])
				fail_msg("record %u is neither in use nor free", i);
		flat_stats(t, &st);
		if (st.long_rules != m.nlong || st.ext_regions != c.regions ||
		    st.split_regions != c.split || st.nodes != nodes ||
		    st.mixed_blocks != c.chunks || st.chunks_used != c.chunks ||
		    st.ext_used != c.regions + nodes || h->cnt_used != c.cnt_pairs)
			fail_msg("header: %u long rules, %u regions, %u split, %u nodes, %u mixed "
				 "blocks, %u chunks, %u records, %u counters; found %zu, %u, %u, "
				 "%u, %u, %u, %u, %u",
				 st.long_rules, st.ext_regions, st.split_regions, st.nodes,
				 st.mixed_blocks, st.chunks_used, st.ext_used, h->cnt_used, m.nlong,
				 c.regions, c.split, nodes, c.chunks, c.chunks, c.regions + nodes,
				 c.cnt_pairs);
		if (st.chunk_cap != t->chunk_cap || h->chunk_cap != t->chunk_cap ||
		    st.ext_cap != t->ext_cap || h->ext_cap != t->ext_cap ||
		    st.slots != 1u << t->slot_bits || st.blocks != FLAT_BLOCKS)
			fail_msg(
				"capacities: stats %u chunks, %u records; header %u, %u; table %u, "
				"%u",
				st.chunk_cap, st.ext_cap, h->chunk_cap, h->ext_cap, t->chunk_cap,
				t->ext_cap);
		check_ids(t, r);
	}
	inl = c.inline_regions;
	census_free(&c);
	model_free(&m);
	return inl;
}

/* The whole table; returns the regions keeping their rule inline. */
static uint32_t check_table(const struct flat *t, const struct rules *r)
{
	return check_range(t, r, 0, FLAT_BLOCKS, CHECK_FULL);
}

/* The blocks a change of prefix p touched. */
static void check_touched(const struct flat *t, const struct rules *r, const struct cidr *p)
{
	struct rule e = { .prefix = *p };
	uint32_t first = rule_block(&e), n = 1;

	if (p->len <= FLAT_BLOCK_BITS)
		rule_blocks(&e, &first, &n);
	check_range(t, r, first, n, 0);
}

/* --- tests follow -------------------------------------------------------------------------- */

/* --- tests: whole rule sets -------------------------------------------------------- */

/* Nested allow/deny by hand: each level must win inside and lose outside. */
static void test_nested_rules_longest_wins(void **state)
{
	static const char *const v4[] = { "0.0.0.0/0",	 "10.0.0.0/8",	  "10.1.0.0/16",
					  "10.1.2.0/24", "10.1.2.128/25", "10.1.2.200/32",
					  "10.1.3.7/32" };
	static const char *const v6[] = { "::/0",
					  "2001:db8::/32",
					  "2001:db8:1::/48",
					  "2001:db8:1:2::/64",
					  "2001:db8:1:2::7/128",
					  "2001:db8:1:2::/127",
					  "2001:db8:1:2::/65" };
	(void)state;

	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;
		const char *const *txt = f ? v6 : v4;
		struct flatmem_ids x;
		struct flat_ids *ids = ids_open(&x, 64);
		struct table tb;
		struct rules r;

		rules_init(&r, family);
		table_open(&tb, family, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
		for (int i = 0; i < 7; i++) {
			struct rule e =
				text_rule(&r, ids, txt[i],
					  i % 2 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW);

			assert_int_equal(flat_add(&tb.t, &e, 0), 0);
			check_all(&tb.t, &r, 2000);
			check_table(&tb.t, &r);
		}
		/* Take them away again, outermost first: the inner ones stay. */
		while (r.n) {
			struct rule e = r.v[0];

			rules_remove_at(&r, 0);
			assert_int_equal(flat_delete(&tb.t, &e), 0);
			check_all(&tb.t, &r, 2000);
			check_table(&tb.t, &r);
		}
		table_close(&tb);
		flatmem_ids_close(&x);
		rules_free(&r);
	}
}

/* Add (action given) or delete (action 0) one IPv4 rule by its text; returns its entry. */
static uint32_t step_text(struct table *tb, struct flat_ids *ids, struct rules *r, const char *txt,
			  int action)
{
	struct cidr p = parse(txt);
	struct rule e;
	ssize_t i = rules_index(r, &p);

	if (!action) {
		assert_true(i >= 0);
		e = r->v[i];
		rules_remove_at(r, (size_t)i);
		assert_int_equal(flat_delete(&tb->t, &e), 0);
		check_table(&tb->t, r);
		return 0;
	}
	e = text_rule(r, ids, txt, action);
	assert_int_equal(flat_add(&tb->t, &e, 0), 0);
	check_table(&tb->t, r);
	return rule_entry(&e);
}

static uint32_t block_entry(const struct table *tb, unsigned int a, unsigned int b)
{
	return tb->t.blocks[a << 8 | b];
}

static uint32_t mixed_blocks(const struct flat *t)
{
	struct flat_stats st;

	flat_stats(t, &st);
	assert_int_equal(st.chunks_used, st.mixed_blocks);
	return st.mixed_blocks;
}

/*
 * Blocks by hand: a /16 block answers from its own entry while all its
 * regions agree and need no record, has a chunk while they do not, and
 * gives the chunk back (into quarantine, then to the next block that needs
 * one) as soon as they agree again.
 */
static void test_blocks_have_chunks_only_while_mixed(void **state)
{
	const int D = IPBLOCK_ACTION_DENY, A = IPBLOCK_ACTION_ALLOW;
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 64);
	struct table tb;
	struct rules r;
	uint32_t e8, e16, e20, c;
	(void)state;

	rules_init(&r, AF_INET);
	table_open(&tb, AF_INET, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	assert_int_equal(mixed_blocks(&tb.t), 0);

	/* A /24 mixes its block, and only it. */
	step_text(&tb, ids, &r, "10.1.2.0/24", D);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	assert_true(block_entry(&tb, 10, 1) & FLAT_EXT);
	c = block_entry(&tb, 10, 1) & ~FLAT_EXT;
	/* A /8 over it: 255 blocks take its entry, 10.1/16 stays mixed. */
	e8 = step_text(&tb, ids, &r, "10.0.0.0/8", D);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	assert_int_equal(block_entry(&tb, 10, 200), e8);
	assert_int_equal(chunk_of(&tb.t, c)[3], e8);
	/* A /16 allow inside: its block is mixed still (the /24 is longer). */
	e16 = step_text(&tb, ids, &r, "10.1.0.0/16", A);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	assert_int_equal(chunk_of(&tb.t, c)[3], e16);
	/* The /24 goes: the block is uniform again and its chunk in quarantine. */
	step_text(&tb, ids, &r, "10.1.2.0/24", 0);
	assert_int_equal(mixed_blocks(&tb.t), 0);
	assert_int_equal(block_entry(&tb, 10, 1), e16);
	assert_int_equal(tb.t.hdr->limbo_n, 1);
	assert_int_equal(tb.t.hdr->limbo[0], c);
	/* A /32 needs a record: mixed while it is there; the freed chunk serves. */
	step_text(&tb, ids, &r, "10.7.8.9/32", A);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	assert_int_equal(block_entry(&tb, 10, 7), FLAT_EXT | c);
	assert_int_equal(tb.t.hdr->chunk_bump, 1);
	assert_true(chunk_of(&tb.t, c)[8] & FLAT_EXT);
	step_text(&tb, ids, &r, "10.7.8.9/32", 0);
	assert_int_equal(mixed_blocks(&tb.t), 0);
	assert_int_equal(block_entry(&tb, 10, 7), e8);
	/* Rules that cut blocks in two: a /12 is 16 whole blocks, a /17 half of one. */
	step_text(&tb, ids, &r, "172.16.0.0/12", D);
	assert_int_equal(mixed_blocks(&tb.t), 0);
	step_text(&tb, ids, &r, "172.20.128.0/17", A);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	step_text(&tb, ids, &r, "172.20.0.0/17", A);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	e20 = step_text(&tb, ids, &r, "172.20.0.0/16", D);
	step_text(&tb, ids, &r, "172.20.128.0/17", 0);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	step_text(&tb, ids, &r, "172.20.0.0/17", 0);
	assert_int_equal(mixed_blocks(&tb.t), 0);
	assert_int_equal(block_entry(&tb, 172, 20), e20);
	/* Two /17s of one action are still two rules: the block stays mixed. */
	step_text(&tb, ids, &r, "172.21.0.0/17", D);
	step_text(&tb, ids, &r, "172.21.128.0/17", D);
	assert_int_equal(mixed_blocks(&tb.t), 1);
	check_all(&tb.t, &r, 20000);

	/* Everything deleted: every block is "no rule" again, no chunk kept. */
	while (r.n) {
		struct rule e = r.v[r.n - 1];

		rules_remove_at(&r, r.n - 1);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
		check_table(&tb.t, &r);
	}
	for (uint32_t b = 0; b < FLAT_BLOCKS; b++)
		assert_int_equal(tb.t.blocks[b], 0);
	assert_int_equal(mixed_blocks(&tb.t), 0);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

static uint8_t slot_bits_for(size_t rules)
{
	uint8_t bits;

	assert_int_equal(flat_slot_bits_for(rules, &bits), 0);
	return bits;
}

/* Pools grew through the provider, and table, header and stats agree on their size. */
static void check_pools_follow(const struct table *tb)
{
	const struct flatmem_pool *ch = &tb->m.pool[FLAT_POOL_CHUNKS],
				  *ex = &tb->m.pool[FLAT_POOL_EXT];
	struct flat_stats st;

	flat_stats(&tb->t, &st);
	assert_int_equal(tb->t.chunk_cap, ch->cap);
	assert_int_equal(tb->t.ext_cap, ex->cap);
	assert_int_equal(st.chunk_cap, ch->cap);
	assert_int_equal(st.ext_cap, ex->cap);
	assert_true(st.chunks_used <= st.chunk_cap && tb->t.hdr->chunk_bump <= ch->cap);
	assert_true(st.ext_used < st.ext_cap || !st.ext_used);
	assert_true(tb->t.hdr->ext_bump <= ex->cap || tb->t.hdr->ext_bump == 1);
	/* Grown in steps: never more than one step past what was handed out. */
	assert_true(ch->cap < tb->t.hdr->chunk_bump + ch->step + 1);
	assert_true(ex->cap < tb->t.hdr->ext_bump + ex->step + 1);
}

static void random_set_matches_reference(int family, size_t nrules)
{
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 20);
	struct flat_stats st;
	struct table tb;
	struct rules r;
	struct rule e;
	uint32_t inl;

	rules_init(&r, family);
	table_open(&tb, family, ids, 0, r.rc, slot_bits_for(nrules), NULL);
	/* The extremes are always there: everything, and single hosts. */
	text_rule(&r, ids, family == AF_INET ? "0.0.0.0/0" : "::/0", IPBLOCK_ACTION_ALLOW);
	while (r.n < nrules)
		gen_rule(&r, ids, &e);

	assert_int_equal(flat_build(&tb.t, r.v, r.n), 0);
	check_all(&tb.t, &r, scaled(200000));
	inl = check_range(&tb.t, &r, 0, FLAT_BLOCKS, CHECK_FULL | CHECK_BLOOM);
	/* A random set has regions with one long rule: those keep it inline. */
	if (family == AF_INET)
		assert_true(inl > 0);
	check_pools_follow(&tb);
	assert_true(tb.m.pool[FLAT_POOL_CHUNKS].grows > 1 && tb.m.pool[FLAT_POOL_EXT].grows > 1);
	flat_stats(&tb.t, &st);
	printf("# %s: %zu rules, %u long, %u ext regions (%u inline, %u split), %u mixed blocks; "
	       "%u chunks, %u records, 2^%u slots\n",
	       family == AF_INET ? "v4" : "v6", r.n, st.long_rules, st.ext_regions, inl,
	       st.split_regions, st.mixed_blocks, st.chunk_cap, st.ext_cap, tb.t.slot_bits);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

static void test_v4_random_rules_match_reference(void **state)
{
	(void)state;
	random_set_matches_reference(AF_INET, scaled(20000));
}

static void test_v6_random_rules_match_reference(void **state)
{
	(void)state;
	random_set_matches_reference(AF_INET6, scaled(20000));
}

/* --- tests: incremental changes ------------------------------------------------------ */

/*
 * One random step: add, delete, or update (an action flip, sometimes with
 * a new id for the same prefix).  The changed prefix goes into touched.
 */
static void random_step(struct rules *r, struct flat_ids *ids, struct flat *t, struct cidr *touched)
{
	uint32_t op = below(10);
	struct rule e;

	if (op < 4 || r->n < 10) {
		gen_rule(r, ids, &e);
		assert_int_equal(flat_add(t, &e, 0), 0);
	} else if (op < 7) {
		size_t i = below((uint32_t)r->n);

		e = r->v[i];
		rules_remove_at(r, i);
		assert_int_equal(flat_delete(t, &e), 0);
	} else {
		size_t i = below((uint32_t)r->n);
		uint32_t old_id = r->v[i].id;

		e = r->v[i];
		e.action = e.action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW
							   : IPBLOCK_ACTION_DENY;
		if (op == 9)
			assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
		rules_replace_at(r, i, &e);
		assert_int_equal(flat_add(t, &e, old_id), 0);
		/* The old id is out of the set, the new one in with the new action. */
		if (old_id != e.id)
			assert_int_equal(ids->rules[old_id].sets, 0);
		assert_int_equal(ids->rules[e.id].deny_sets, e.action == IPBLOCK_ACTION_DENY);
	}
	*touched = e.prefix;
}

static void incremental_matches_reference(int family)
{
	const int batches = 40, per_batch = (int)scaled(400);
	struct cidr touched;
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 16);
	struct flat_stats st;
	struct table tb;
	struct rules r;
	struct rule e;
	uint32_t peak_chunks = 0, chunk_cap, ext_cap;

	rules_init(&r, family);
	table_open(&tb, family, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	for (size_t i = 0; i < scaled(3000); i++) {
		gen_rule(&r, ids, &e);
		assert_int_equal(flat_add(&tb.t, &e, 0), 0);
	}
	check_all(&tb.t, &r, scaled(20000));
	check_table(&tb.t, &r);
	for (int b = 0; b < batches; b++) {
		for (int i = 0; i < per_batch; i++) {
			random_step(&r, ids, &tb.t, &touched);
			check_edges(&tb.t, r.rc, &touched);
			check_touched(&tb.t, &r, &touched);
		}
		for (int i = 0; i < 300; i++)
			check_edges(&tb.t, r.rc, &r.v[below((uint32_t)r.n)].prefix);
		check_random(&tb.t, &r, scaled(5000));
		check_table(&tb.t, &r);
		flat_stats(&tb.t, &st);
		if (st.chunks_used > peak_chunks)
			peak_chunks = st.chunks_used;
	}
	check_all(&tb.t, &r, scaled(20000));
	check_pools_follow(&tb);
	chunk_cap = tb.t.chunk_cap;
	ext_cap = tb.t.ext_cap;

	/* Delete everything: chunks and records go back, every block says "no rule". */
	while (r.n) {
		e = r.v[r.n - 1];
		rules_remove_at(&r, r.n - 1);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
		if (r.n % 512 == 0)
			check_table(&tb.t, &r);
	}
	check_table(&tb.t, &r);
	flat_stats(&tb.t, &st);
	printf("# %s: at most %u chunks in use, %u after deleting everything (%u mapped)\n",
	       family == AF_INET ? "v4" : "v6", peak_chunks, st.chunks_used, st.chunk_cap);
	assert_true(peak_chunks > 0);
	assert_int_equal(st.chunks_used, 0);
	assert_int_equal(st.ext_used, 0);
	assert_int_equal(st.long_rules, 0);
	assert_int_equal(st.live_slots, 0);
	for (uint32_t b = 0; b < FLAT_BLOCKS; b++)
		assert_int_equal(tb.t.blocks[b], 0);
	for (uint32_t i = 1; i < ids->n; i++)
		assert_int_equal(ids->rules[i].sets, 0);
	/* The pools keep their memory for the next rules. */
	assert_int_equal(tb.t.chunk_cap, chunk_cap);
	assert_int_equal(tb.t.ext_cap, ext_cap);

	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

static void test_v4_incremental_changes_match_reference(void **state)
{
	(void)state;
	incremental_matches_reference(AF_INET);
}

static void test_v6_incremental_changes_match_reference(void **state)
{
	(void)state;
	incremental_matches_reference(AF_INET6);
}

/* --- tests: crowded regions ----------------------------------------------------------- */

/* Distinct lengths past /24 among the rules of r. */
static unsigned int long_lengths(const struct rules *r)
{
	bool seen[129] = { false };
	unsigned int n = 0;

	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].prefix.len > FLAT_REGION_BITS && !seen[r->v[i].prefix.len]) {
			seen[r->v[i].prefix.len] = true;
			n++;
		}
	return n;
}

/*
 * A prefix not yet in r inside region 2001:d00::/24: any length past /24,
 * nested in an existing rule half the time; one in 16 is a rule of /8../24
 * over the region (the verdict its nodes push down).
 */
static void gen_crowded(const struct rules *r, struct cidr *p)
{
	static const uint8_t region[3] = { 0x20, 0x01, 0x0d };

	do {
		memset(p, 0, sizeof(*p));
		p->family = AF_INET6;
		if (r->n && below(2)) {
			addr_in(&r->v[below((uint32_t)r->n)].prefix, p->addr);
		} else {
			for (int i = 0; i < 16; i++)
				p->addr[i] = (uint8_t)rnd();
		}
		memcpy(p->addr, region, sizeof(region));
		p->len = (uint8_t)(below(16) ? 25 + below(104) : 8 + below(17));
		cidr_clear_host_bits(p);
	} while (!ref_find(r->rc, p, NULL));
}

/*
 * One change inside the crowded region: add, delete, or flip an action
 * (sometimes with a new id).  *e gets the rule touched.
 */
static void crowded_step(struct rules *r, struct flat_ids *ids, struct flat *t, struct rule *e)
{
	uint32_t op = below(20), old_id;
	size_t k;

	memset(e, 0, sizeof(*e));
	if (op < 9 || r->n < 10) {
		gen_crowded(r, &e->prefix);
		e->action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
		assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
		rules_add(r, e);
		assert_int_equal(flat_add(t, e, 0), 0);
		return;
	}
	k = below((uint32_t)r->n);
	*e = r->v[k];
	if (op < 16) {
		rules_remove_at(r, k);
		assert_int_equal(flat_delete(t, e), 0);
		return;
	}
	old_id = e->id;
	e->action = e->action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW : IPBLOCK_ACTION_DENY;
	if (op == 19)
		assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
	rules_replace_at(r, k, e);
	assert_int_equal(flat_add(t, e, old_id), 0);
}

/* One region holds all long rules of r: a tree exactly when they use more than 8 lengths. */
static void assert_tree(const struct flat *t, const struct rules *r)
{
	struct flat_stats st;
	bool crowded = long_lengths(r) > FLAT_MAX_LENS;

	flat_stats(t, &st);
	assert_int_equal(st.split_regions, crowded);
	/* One node holds up to FLAT_NODE_LENS lengths; more need children. */
	if (!crowded)
		assert_int_equal(st.nodes, 0);
	else if (long_lengths(r) <= FLAT_NODE_LENS)
		assert_int_equal(st.nodes, 1);
	else
		assert_true(st.nodes >= 2);
}

/*
 * More than FLAT_MAX_LENS distinct lengths under one IPv6 region: the region
 * gets a tree of nodes, through adds, churn (nested rules of every length,
 * rules over the region, action and id changes) and deletes back to a
 * plain list once its rules use 8 lengths or fewer.
 */
static void test_v6_crowded_region_gets_a_tree(void **state)
{
	const size_t steps = scaled(4000);
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 16);
	struct flat_stats st;
	struct table tb;
	struct rules r;
	unsigned int max_nodes = 0;
	(void)state;

	rules_init(&r, AF_INET6);
	table_open(&tb, AF_INET6, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	/* A chain of 12 nested lengths: the 9th splits the region. */
	for (int i = 0; i < 12; i++) {
		struct rule e = { .action = i % 2 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW };

		e.prefix = parse("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
		e.prefix.len = (uint8_t)(32 + 8 * i);
		cidr_clear_host_bits(&e.prefix);
		assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
		rules_add(&r, &e);
		assert_int_equal(flat_add(&tb.t, &e, 0), 0);
		assert_tree(&tb.t, &r);
		check_all(&tb.t, &r, 1000);
		check_table(&tb.t, &r);
	}

	/* Churn inside the region; every lookup must agree with the reference. */
	for (size_t i = 0; i < steps; i++) {
		struct rule e;

		crowded_step(&r, ids, &tb.t, &e);
		check_edges(&tb.t, r.rc, &e.prefix);
		check_random(&tb.t, &r, 20);
		check_touched(&tb.t, &r, &e.prefix);
		if (i % 250 == 249) {
			check_all(&tb.t, &r, 2000);
			check_table(&tb.t, &r);
			assert_tree(&tb.t, &r);
			flat_stats(&tb.t, &st);
			if (st.nodes > max_nodes)
				max_nodes = st.nodes;
		}
	}
	flat_stats(&tb.t, &st);
	printf("# crowded region after %zu changes: %zu rules, %u long lengths, %u nodes (at most "
	       "%u seen)\n",
	       steps, r.n, long_lengths(&r), st.nodes, max_nodes);
	assert_true(max_nodes > 2);

	/* Down to 8 long lengths: a plain list again, no nodes left. */
	while (long_lengths(&r) > FLAT_MAX_LENS) {
		size_t k = r.n - 1;
		struct rule e;

		for (size_t j = 0; j < r.n; j++)
			if (r.v[j].prefix.len > r.v[k].prefix.len)
				k = j;
		e = r.v[k];
		rules_remove_at(&r, k);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
	}
	assert_tree(&tb.t, &r);
	check_table(&tb.t, &r);
	check_all(&tb.t, &r, 2000);
	while (r.n) {
		struct rule e = r.v[r.n - 1];

		rules_remove_at(&r, r.n - 1);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
	}
	check_table(&tb.t, &r);
	flat_stats(&tb.t, &st);
	assert_int_equal(st.ext_regions, 0);
	assert_int_equal(st.nodes, 0);
	assert_int_equal(st.split_regions, 0);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

#define CHAIN_ADDR "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"
/* The same but for bit 80: another /92 than the chain's. */
#define SIBLING_ADDR "2001:db8:aaaa:bbbb:cccc:5ddd:eeee:ffff"

/*
 * A crowded region whose tree has children: a chain of 25 nested lengths
 * (/32 to /128 by 4; the root lists the 16 shortest, to /92) and 5 rules
 * under another /92.  Three nodes, two markers.
 */
static void build_chain(struct table *tb, struct flat_ids *ids, struct rules *r)
{
	struct flat_stats st;

	for (unsigned int len = 32; len <= 128; len += 4) {
		struct rule e = { .prefix = parse(CHAIN_ADDR),
				  .action = len % 8 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW };

		e.prefix.len = (uint8_t)len;
		cidr_clear_host_bits(&e.prefix);
		assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
		rules_add(r, &e);
	}
	for (unsigned int len = 96; len <= 128; len += 8) {
		struct rule e = { .prefix = parse(SIBLING_ADDR), .action = IPBLOCK_ACTION_DENY };

		e.prefix.len = (uint8_t)len;
		cidr_clear_host_bits(&e.prefix);
		assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
		rules_add(r, &e);
	}
	assert_int_equal(flat_build(&tb->t, r->v, r->n), 0);
	check_table(&tb->t, r);
	flat_stats(&tb->t, &st);
	assert_int_equal(st.split_regions, 1);
	assert_int_equal(st.nodes, 3);
}

/* The index of the chain's rule of length len in r. */
static size_t chain_rule(const struct rules *r, unsigned int len)
{
	struct cidr p = parse(CHAIN_ADDR);
	ssize_t i;

	p.len = (uint8_t)len;
	cidr_clear_host_bits(&p);
	i = rules_index(r, &p);
	assert_true(i >= 0);
	return (size_t)i;
}

/* Addresses to judge in the chain's region: every rule's edges and some inside each. */
static size_t chain_addrs(const struct rules *r, uint8_t (*a)[16], size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n && n + 4 <= max; i++) {
		addr_edge(&r->v[i].prefix, false, a[n++]);
		addr_edge(&r->v[i].prefix, true, a[n++]);
		addr_in(&r->v[i].prefix, a[n++]);
		addr_in(&r->v[i].prefix, a[n++]);
	}
	return n;
}

/* Flip rule i's action in r; the rule as it is now. */
static struct rule flip_rule(struct rules *r, size_t i)
{
	struct rule e = r->v[i];

	e.action = e.action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW : IPBLOCK_ACTION_DENY;
	rules_replace_at(r, i, &e);
	return e;
}

/*
 * A split region whose new tree cannot get its records (the pool at its
 * ceiling) keeps judging by its old tree: the change is refused with
 * -ENOSPC, every address of the region is judged by the old or the new
 * rule, and with room again the next change to the region rebuilds it.
 */
static void test_v6_tree_that_cannot_be_built_keeps_the_old_one(void **state)
{
	struct flatmem_opts o = { .ext_step = 8 };
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 16);
	static uint8_t a[256][16];
	uint32_t before[256], after[256], root;
	struct table tb;
	struct rules r;
	struct rule e;
	size_t n;
	int ret = 0;
	(void)state;

	rules_init(&r, AF_INET6);
	table_open(&tb, AF_INET6, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, &o);
	build_chain(&tb, ids, &r);
	root = (uint32_t)(region_ext(&tb.t, rule_region(&r.v[0]))->lens >> 8);
	/* Every record taken: long rules in fresh regions until one is refused. */
	tb.m.pool[FLAT_POOL_EXT].ceiling = tb.t.ext_cap;
	for (unsigned int k = 0; !ret; k++) {
		char txt[64];

		snprintf(txt, sizeof(txt), "2001:%x00::1/128", 0x10 + k);
		e = pending_rule(ids, txt, IPBLOCK_ACTION_DENY);
		ret = flat_add(&tb.t, &e, 0);
		if (!ret)
			rules_add(&r, &e);
	}
	assert_int_equal(ret, -ENOSPC);
	check_table(&tb.t, &r);

	/* A rule in the chain's child node changes: its tree cannot be rebuilt. */
	n = chain_addrs(&r, a, 256);
	for (size_t i = 0; i < n; i++)
		before[i] = flat_judge(&tb.t, a[i]);
	e = flip_rule(&r, chain_rule(&r, 100));
	assert_int_equal(flat_add(&tb.t, &e, e.id), -ENOSPC);
	for (size_t i = 0; i < n; i++) {
		after[i] = reference_entry(r.rc, AF_INET6, a[i]);
		if (flat_judge(&tb.t, a[i]) != before[i] && flat_judge(&tb.t, a[i]) != after[i])
			fail_verdict(AF_INET6, a[i], flat_judge(&tb.t, a[i]), after[i],
				     "neither old nor new");
	}
	/* The old tree is still the region's, and whole. */
	assert_int_equal(region_ext(&tb.t, rule_region(&e))->lens,
			 FLAT_LENS_SPLIT | (__u64)root << 8);
	assert_int_equal(tb.t.ext[root].state, EXT_NODE);
	assert_int_equal(tb.t.hdr->nodes, 3);

	/* Room again: the same change rebuilds the tree. */
	tb.m.pool[FLAT_POOL_EXT].ceiling = 1u << 20;
	assert_int_equal(flat_add(&tb.t, &e, e.id), 0);
	check_table(&tb.t, &r);
	check_all(&tb.t, &r, 2000);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

/* Live markers in region of generation gen (0 or CHILD_GEN). */
static uint32_t markers_of(const struct flat *t, uint32_t region, uint32_t gen)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < (1u << t->slot_bits); i++) {
		const struct flat_slot *s = &t->slots[i];
		__u64 w = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE);
		uint32_t tag = (uint32_t)(w >> 32);

		if ((tag & (FLAT_TAG_NODE | FLAT_TAG_DEAD)) == FLAT_TAG_NODE &&
		    (tag & CHILD_GEN) == gen &&
		    (uint32_t)(__atomic_load_n(&s->hi, __ATOMIC_RELAXED) >> 40) == region)
			n++;
	}
	return n;
}

struct rebuild {
	struct flat *t;
	struct rule e;
	int ret, done;
};

static void *rebuild_writer(void *arg)
{
	struct rebuild *w = arg;

	w->ret = flat_add(w->t, &w->e, w->e.id);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A tree is rebuilt beside the old one: while the writer waits out the
 * quarantine, markers of both generations are in the hash and lookups,
 * through either tree, give the old or the new verdict; after it, only the
 * new generation is left, and the next rebuild takes the other one again.
 */
static void test_tree_rebuild_keeps_two_marker_generations_until_settled(void **state)
{
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 16);
	static uint8_t a[256][16];
	uint32_t before[256], after[256], region, gen;
	struct table tb;
	struct rules r;
	(void)state;

	rules_init(&r, AF_INET6);
	table_open(&tb, AF_INET6, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	build_chain(&tb, ids, &r);
	region = rule_region(&r.v[0]);
	/* The generation the root's child byte gives its children's markers. */
	gen = tb.t.ext[region_ext(&tb.t, region)->lens >> 8].child & CHILD_GEN;
	assert_int_equal(markers_of(&tb.t, region, gen), 2);
	assert_int_equal(markers_of(&tb.t, region, gen ^ CHILD_GEN), 0);

	for (int round = 0; round < 2; round++) {
		struct rebuild w = { .t = &tb.t };
		size_t n = chain_addrs(&r, a, 256), both = 0, wrong = 0, bad = 0;
		uint32_t got = 0;
		pthread_t th;

		for (size_t i = 0; i < n; i++)
			before[i] = flat_judge(&tb.t, a[i]);
		w.e = flip_rule(&r, chain_rule(&r, round ? 124 : 100));
		for (size_t i = 0; i < n; i++)
			after[i] = reference_entry(r.rc, AF_INET6, a[i]);
		tb.t.quarantine_ms = 400;
		assert_int_equal(pthread_create(&th, NULL, rebuild_writer, &w), 0);
		while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)) {
			both += markers_of(&tb.t, region, gen) &&
				markers_of(&tb.t, region, gen ^ CHILD_GEN);
			for (size_t i = 0; i < n; i++) {
				uint32_t v = flat_judge(&tb.t, a[i]);

				if (v != before[i] && v != after[i] && !wrong++) {
					bad = i;
					got = v;
				}
			}
		}
		pthread_join(th, NULL);
		tb.t.quarantine_ms = 0;
		assert_int_equal(w.ret, 0);
		if (wrong)
			fail_verdict(AF_INET6, a[bad], got, after[bad], "neither old nor new");
		/* Seen many times over the 400 ms the old tree waits. */
		assert_true(both > 0);
		/* Settled: the old generation's markers are dead, the new one's are the tree's. */
		gen ^= CHILD_GEN;
		assert_int_equal(markers_of(&tb.t, region, gen ^ CHILD_GEN), 0);
		assert_int_equal(markers_of(&tb.t, region, gen), 2);
		check_table(&tb.t, &r);
		check_all(&tb.t, &r, 2000);
	}
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

/* --- tests: pools that run out, a hash that fills ------------------------------------------- */

/* A table's memory and its ids as they were, to compare after a refused change. */
struct snapshot {
	void *fixed, *chunks, *ext, *ids;
	size_t chunk_bytes, ext_bytes, ids_bytes;
};

static void *copy_of(const void *p, size_t n)
{
	void *c = malloc(n ? n : 1);

	assert_non_null(c);
	memcpy(c, p, n);
	return c;
}

static void snap_take(struct snapshot *s, const struct table *tb, const struct flat_ids *ids)
{
	s->chunk_bytes = (size_t)tb->t.chunk_cap * FLAT_CHUNK_ENTRIES * sizeof(uint32_t);
	s->ext_bytes = (size_t)tb->t.ext_cap * sizeof(struct flat_ext);
	s->ids_bytes = (size_t)ids->n * sizeof(struct flat_rule);
	s->fixed = copy_of(tb->m.fixed, tb->m.fixed_bytes);
	s->chunks = copy_of(tb->t.chunks, s->chunk_bytes);
	s->ext = copy_of(tb->t.ext, s->ext_bytes);
	s->ids = copy_of(ids->rules, s->ids_bytes);
}

/*
 * Nothing changed since s: the ids, the blocks and the chunks; exact, every
 * byte (else a failed long rule may have left what a rollback leaves: a
 * dead slot, a record on the free list).  The caller holds the table
 * against its unchanged rules too.
 */
static void snap_same(struct snapshot *s, const struct table *tb, const struct flat_ids *ids,
		      bool exact)
{
	if (ids->n * sizeof(struct flat_rule) != s->ids_bytes ||
	    memcmp(ids->rules, s->ids, s->ids_bytes))
		fail_msg("a refused change changed the ids");
	if (memcmp(tb->t.blocks, s->fixed, FLAT_BLOCKS * sizeof(uint32_t)))
		fail_msg("a refused change changed the blocks");
	if (tb->t.chunk_cap * FLAT_CHUNK_ENTRIES * sizeof(uint32_t) < s->chunk_bytes ||
	    memcmp(tb->t.chunks, s->chunks, s->chunk_bytes))
		fail_msg("a refused change changed the chunks");
	if (exact && (memcmp(tb->m.fixed, s->fixed, tb->m.fixed_bytes) ||
		      memcmp(tb->t.ext, s->ext, s->ext_bytes)))
		fail_msg("a refused change changed the header, slots, counters or records");
	free(s->fixed);
	free(s->chunks);
	free(s->ext);
	free(s->ids);
}

/* flat_add() of e is refused with want and changes nothing. */
static void add_refused(struct table *tb, struct flat_ids *ids, const struct rules *r,
			const struct rule *e, int want, bool exact)
{
	struct snapshot s;

	snap_take(&s, tb, ids);
	assert_int_equal(flat_add(&tb->t, e, 0), want);
	snap_same(&s, tb, ids, exact);
	assert_true(ids->rules[e->id].flags & FLAT_RULE_RESERVED);
	check_table(&tb->t, r);
	check_edges(&tb->t, r->rc, &e->prefix);
}

static void add_ok(struct table *tb, struct rules *r, const struct rule *e)
{
	assert_int_equal(flat_add(&tb->t, e, 0), 0);
	rules_add(r, e);
	check_table(&tb->t, r);
	check_edges(&tb->t, r->rc, &e->prefix);
}

static void add_text_ok(struct table *tb, struct flat_ids *ids, struct rules *r, const char *txt)
{
	struct rule e = pending_rule(ids, txt, IPBLOCK_ACTION_DENY);

	add_ok(tb, r, &e);
}

/*
 * The chunk pool at its ceiling: a rule that needs a chunk (a block that is
 * uniform now) is refused with -ENOSPC and changes nothing; rules that need
 * none (whole blocks, a block that has its chunk) still go in; with the
 * ceiling raised the refused ones go in too.
 */
static void chunk_ceiling_refuses(int family)
{
	static const char *const v4[] = { "10.1.1.0/24", "10.2.1.0/24", "10.3.1.0/24",
					  "10.4.1.0/24", "10.5.1.0/24", "10.6.1.7/32",
					  "11.0.0.0/8",	 "10.1.2.3/32" };
	static const char *const v6[] = { "2001:100::/24", "2002:100::/24",  "2003:100::/24",
					  "2004:100::/24", "2005:100::/24",  "2006:100::7/128",
					  "3000::/8",	   "2001:100::5/128" };
	const char *const *txt = family == AF_INET ? v4 : v6;
	const int D = IPBLOCK_ACTION_DENY;
	struct flatmem_opts o = { .chunk_ceiling = 4 };
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1024);
	struct rule e5, e6;
	struct table tb;
	struct rules r;

	rules_init(&r, family);
	table_open(&tb, family, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, &o);
	for (int i = 0; i < 4; i++)
		add_text_ok(&tb, ids, &r, txt[i]);
	assert_int_equal(tb.t.chunk_cap, 4);
	/* A fifth block needs a fifth chunk: for a short rule, and for a long one. */
	e5 = pending_rule(ids, txt[4], D);
	add_refused(&tb, ids, &r, &e5, -ENOSPC, true);
	e6 = pending_rule(ids, txt[5], D);
	add_refused(&tb, ids, &r, &e6, -ENOSPC, false);
	assert_true(tb.m.pool[FLAT_POOL_CHUNKS].refused >= 2);
	/* Whole blocks need no chunk, nor does a block that has one. */
	add_text_ok(&tb, ids, &r, txt[6]);
	add_text_ok(&tb, ids, &r, txt[7]);
	/* Room again: the refused rules go in. */
	tb.m.pool[FLAT_POOL_CHUNKS].ceiling = FLAT_BLOCKS;
	add_ok(&tb, &r, &e5);
	add_ok(&tb, &r, &e6);
	assert_true(tb.t.chunk_cap > 4);
	check_all(&tb.t, &r, 5000);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

/*
 * The record pool at its ceiling: a long rule in a region without one is
 * refused and changes nothing; another in a region with a record goes in;
 * a record freed (its region's last long rule gone) serves the refused one.
 */
static void ext_ceiling_refuses(int family)
{
	const int D = IPBLOCK_ACTION_DENY;
	struct flatmem_opts o = { .ext_step = 8, .ext_ceiling = 8 };
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1024);
	struct rule e8, more;
	struct table tb;
	struct rules r;
	char txt[64];

	rules_init(&r, family);
	table_open(&tb, family, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, &o);
	/* Record 0 is never used: seven regions take the other seven. */
	for (int i = 0; i < 7; i++) {
		snprintf(txt, sizeof(txt), family == AF_INET ? "10.9.%d.1/32" : "2001:%d00::1/128",
			 i);
		add_text_ok(&tb, ids, &r, txt);
	}
	assert_int_equal(tb.t.ext_cap, 8);
	e8 = pending_rule(ids, family == AF_INET ? "10.9.7.1/32" : "2001:700::1/128", D);
	add_refused(&tb, ids, &r, &e8, -ENOSPC, true);
	assert_int_equal(tb.m.pool[FLAT_POOL_EXT].refused, 1);
	more = pending_rule(ids, family == AF_INET ? "10.9.0.2/32" : "2001::2/128", D);
	add_ok(&tb, &r, &more);
	/* Region 0 loses its long rules: its record is free for the refused rule. */
	for (int k = 0; k < 2; k++) {
		ssize_t i = rules_index(&r, k ? &more.prefix : &r.v[0].prefix);
		struct rule e = r.v[i];

		rules_remove_at(&r, (size_t)i);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
		check_table(&tb.t, &r);
	}
	add_ok(&tb, &r, &e8);
	assert_int_equal(tb.t.ext_cap, 8);
	check_all(&tb.t, &r, 5000);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

static void test_pool_at_ceiling_refuses_and_changes_nothing(void **state)
{
	(void)state;
	for (int f = 0; f < 2; f++) {
		chunk_ceiling_refuses(f ? AF_INET6 : AF_INET);
		ext_ceiling_refuses(f ? AF_INET6 : AF_INET);
	}
}

/*
 * A slot hash at load 1/2 refuses a new long rule with -ENOBUFS and changes
 * nothing; it still takes action changes and deletes (no new slot), but a
 * delete leaves a tombstone, which counts.  A table compiled afresh with
 * the slot bits flat_slot_bits_for() gives takes every rule; the old one's
 * ids go with its set.
 */
static void full_slot_hash_refuses(int family)
{
	const uint32_t half = 1u << (FLAT_MIN_SLOT_BITS - 1);
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 16);
	struct flat_stats st;
	struct table tb, big;
	struct rules r;
	struct rule e, flip, gone;
	char txt[32];
	uint32_t i;

	rules_init(&r, family);
	table_open(&tb, family, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	/* IPv4 hosts of 10.0.0.0/18 (64 regions of one block), IPv6 /64s of one region. */
	for (i = 0;; i++) {
		int ret;

		if (family == AF_INET)
			snprintf(txt, sizeof(txt), "10.0.%u.%u/32", i >> 8, i & 0xff);
		else
			snprintf(txt, sizeof(txt), "2001:db8:0:%x::/64", i);
		e = pending_rule(ids, txt, i % 3 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW);
		ret = flat_add(&tb.t, &e, 0);
		if (ret) {
			assert_int_equal(ret, -ENOBUFS);
			break;
		}
		rules_add(&r, &e);
	}
	flat_stats(&tb.t, &st);
	printf("# %s refused at %u long rules: %u live, %u dead slots of %u\n",
	       family == AF_INET ? "v4" : "v6", i, st.live_slots, st.dead_slots, st.slots);
	assert_int_equal(i, half);
	check_table(&tb.t, &r);
	add_refused(&tb, ids, &r, &e, -ENOBUFS, true);

	/* An action change needs no slot; a delete frees one, as a tombstone. */
	flip = r.v[7];
	flip.action =
		flip.action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW : IPBLOCK_ACTION_DENY;
	assert_int_equal(flat_add(&tb.t, &flip, flip.id), 0);
	rules_replace_at(&r, 7, &flip);
	gone = r.v[9];
	rules_remove_at(&r, 9);
	assert_int_equal(flat_delete(&tb.t, &gone), 0);
	check_table(&tb.t, &r);
	add_refused(&tb, ids, &r, &e, -ENOBUFS, true);

	/* Compiled afresh, bigger, in the other set: everything fits. */
	rules_add(&r, &e);
	table_open(&big, family, ids, 1, r.rc, slot_bits_for(r.n), NULL);
	assert_true(big.t.slot_bits > tb.t.slot_bits);
	assert_int_equal(flat_build(&big.t, r.v, r.n), 0);
	check_table(&big.t, &r);
	check_all(&big.t, &r, 5000);
	flat_ids_drop_set(ids, 0);
	for (size_t k = 0; k < r.n; k++)
		assert_int_equal(ids->rules[r.v[k].id].sets, 2);
	assert_int_equal(ids->rules[gone.id].sets, 0);
	table_close(&big);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

static void test_full_slot_hash_refuses_and_changes_nothing(void **state)
{
	(void)state;
	full_slot_hash_refuses(AF_INET);
	full_slot_hash_refuses(AF_INET6);
}

/*
 * Pools grow as the rules need, through the provider, and table, header
 * and statistics follow; after many deletes the chunks come back
 * (chunks_used falls with the mixed blocks) and the same rules again need
 * no new memory.
 */
static void test_pools_grow_with_the_rules_and_chunks_come_back(void **state)
{
	struct flatmem_opts o = { .ext_step = 64 };
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 16);
	struct flat_stats st;
	struct table tb;
	struct rules r;
	struct rule e, *gone;
	uint32_t peak, grows[2], caps[2];
	size_t n = scaled(4000), ngone = 0;
	(void)state;

	rules_init(&r, AF_INET);
	table_open(&tb, AF_INET, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, &o);
	assert_int_equal(tb.t.chunk_cap, 0);
	assert_int_equal(tb.t.ext_cap, 0);
	while (r.n < n) {
		gen_rule(&r, ids, &e);
		assert_int_equal(flat_add(&tb.t, &e, 0), 0);
	}
	check_table(&tb.t, &r);
	check_pools_follow(&tb);
	flat_stats(&tb.t, &st);
	peak = st.chunks_used;
	for (int k = 0; k < 2; k++) {
		grows[k] = tb.m.pool[k].grows;
		caps[k] = tb.m.pool[k].cap;
		assert_true(grows[k] > 1);
	}
	printf("# %zu rules: %u chunks (%u grows), %u records (%u grows)\n", r.n, caps[0], grows[0],
	       caps[1], grows[1]);

	/* Nine in ten go: so do most chunks. */
	gone = malloc(n * sizeof(*gone));
	assert_non_null(gone);
	while (r.n > n / 10) {
		size_t i = below((uint32_t)r.n);

		gone[ngone] = r.v[i];
		rules_remove_at(&r, i);
		assert_int_equal(flat_delete(&tb.t, &gone[ngone]), 0);
		ngone++;
	}
	check_table(&tb.t, &r);
	flat_stats(&tb.t, &st);
	printf("# %zu rules left: %u chunks in use of %u\n", r.n, st.chunks_used, peak);
	assert_true(st.chunks_used < peak / 4);

	/* The same rules again (new ids): the freed chunks and records serve. */
	for (size_t i = 0; i < ngone; i++) {
		e = gone[i];
		assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
		rules_add(&r, &e);
		assert_int_equal(flat_add(&tb.t, &e, 0), 0);
	}
	check_table(&tb.t, &r);
	check_all(&tb.t, &r, scaled(20000));
	flat_stats(&tb.t, &st);
	assert_int_equal(st.chunks_used, peak);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(tb.m.pool[k].grows, grows[k]);
		assert_int_equal(tb.m.pool[k].cap, caps[k]);
	}
	free(gone);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

/* --- tests: quarantine, sets, ids, arguments ------------------------------------------ */

/* An IPv4 address as the table keys it. */
static __u64 v4_hi(const struct cidr *p)
{
	__u64 hi, lo;

	prefix_key(p, &hi, &lo);
	return hi;
}

/*
 * What readers may still be looking at is not reused within the
 * quarantine: a dead slot (the same prefix may take its own back at once),
 * a chunk given back, a record freed.  Once aged, they serve again.
 */
static void test_freed_slots_chunks_and_records_wait_out_the_quarantine(void **state)
{
	struct cidr a = parse("198.18.5.1/32"), b = a;
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 64);
	struct table tb;
	struct rules r;
	struct rule ra, rb, rc;
	uint32_t mask, home, chunk_a, rec_a, bump;
	(void)state;

	rules_init(&r, AF_INET);
	table_open(&tb, AF_INET, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	mask = (1u << tb.t.slot_bits) - 1;
	/* Two host routes of one block, other regions, with the same home slot. */
	home = flat_home(v4_hi(&a), 0, 32, tb.t.slot_bits);
	for (uint32_t k = 0;; k++) {
		assert_true(k < 65536);
		b.addr[2] = (uint8_t)(k >> 8);
		b.addr[3] = (uint8_t)k;
		if (b.addr[2] != a.addr[2] && flat_home(v4_hi(&b), 0, 32, tb.t.slot_bits) == home)
			break;
	}
	ra = pending_rule(ids, "198.18.5.1/32", IPBLOCK_ACTION_DENY);
	rb = (struct rule){ .prefix = b, .action = IPBLOCK_ACTION_DENY };
	assert_int_equal(flat_ids_alloc(ids, 32, &rb.id), 0);
	assert_int_equal(flat_add(&tb.t, &ra, 0), 0);
	assert_int_equal(tb.t.slots[home].word >> 32, 32);
	chunk_a = tb.t.blocks[198 << 8 | 18] & ~FLAT_EXT;
	rec_a = chunk_of(&tb.t, chunk_a)[5] & ~FLAT_EXT;
	assert_int_equal(flat_delete(&tb.t, &ra), 0);

	tb.t.quarantine_ms = 60000;
	add_ok(&tb, &r, &rb);
	/* Not a's dead slot, chunk or record: new ones. */
	assert_int_equal(tb.t.slots[home].word >> 32, FLAT_TAG_DEAD | 32);
	assert_int_equal(tb.t.slots[(home + 1) & mask].hi, v4_hi(&b));
	assert_true((tb.t.blocks[198 << 8 | 18] & ~FLAT_EXT) != chunk_a);
	assert_true((chunk_of(&tb.t, tb.t.blocks[198 << 8 | 18] & ~FLAT_EXT)[b.addr[2]] &
		     ~FLAT_EXT) != rec_a);
	assert_int_equal(flat_judge(&tb.t, a.addr), 0);
	/* The same prefix may take its own dead slot back. */
	ra.action = IPBLOCK_ACTION_ALLOW;
	add_ok(&tb, &r, &ra);
	assert_int_equal(tb.t.slots[home].word, (uint64_t)32 << 32 | ra.id << 1);

	/* Aged: a's chunk serves the next block that needs one. */
	tb.t.quarantine_ms = 0;
	bump = tb.t.hdr->chunk_bump;
	rc = pending_rule(ids, "198.51.100.0/24", IPBLOCK_ACTION_DENY);
	add_ok(&tb, &r, &rc);
	assert_int_equal(tb.t.blocks[198 << 8 | 51], FLAT_EXT | chunk_a);
	assert_int_equal(tb.t.hdr->chunk_bump, bump);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

/*
 * Sets A and B share one family's ids: B follows a new rule set by diff,
 * then A through a second attachment of its memory (another process).
 * Each table matches its own set at every step, prefixes keep their ids
 * across sets, and ids in neither set are free afterwards.  A table
 * compiled afresh on wiped memory is the same table; memory another
 * table's header does not fit is refused.
 */
static void test_two_sets_follow_by_diff_and_share_ids(void **state)
{
	(void)state;
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;
		struct flatmem_ids x;
		struct flat_ids *ids = ids_open(&x, 1u << 16);
		struct rules old, new;
		struct table a, b;
		struct flat again;
		struct flat_area area;
		struct rule e;
		size_t changes, used = 0;

		rules_init(&old, family);
		rules_init(&new, family);
		table_open(&a, family, ids, 0, old.rc, FLAT_MIN_SLOT_BITS, NULL);
		table_open(&b, family, ids, 1, old.rc, FLAT_MIN_SLOT_BITS, NULL);
		for (size_t i = 0; i < scaled(3000); i++)
			gen_rule(&old, ids, &e);
		assert_int_equal(flat_build(&a.t, old.v, old.n), 0);
		assert_int_equal(flat_build(&b.t, old.v, old.n), 0);
		check_table(&a.t, &old);
		check_table(&b.t, &old);

		/* new: most old rules (same ids, some actions flipped), some new. */
		for (size_t i = 0; i < old.n; i++) {
			e = old.v[i];
			if (below(4) == 0)
				continue;
			if (below(5) == 0)
				e.action ^= IPBLOCK_ACTION_ALLOW ^ IPBLOCK_ACTION_DENY;
			rules_add(&new, &e);
		}
		for (size_t i = 0; i < scaled(1000); i++)
			gen_rule(&new, ids, &e);

		/* B follows new (its parent lookups ask new), A still old. */
		b.t.parent_ctx = new.rc;
		assert_int_equal(table_sync(&b.t, old.rc, new.rc, &changes), 0);
		assert_true(changes > 0);
		check_all(&b.t, &new, 5000);
		check_all(&a.t, &old, 5000);
		check_table(&b.t, &new);

		/* A follows, through a second attachment of the same memory. */
		flatmem_area(&a.m, &area);
		assert_int_equal(
			flat_attach(&again, family, &area, ids, 0, &a.m.mem, cache_parent, new.rc),
			0);
		again.quarantine_ms = 0;
		assert_int_equal(table_sync(&again, old.rc, new.rc, NULL), 0);
		check_all(&again, &new, 5000);
		check_table(&again, &new);
		/* ...which the first attachment sees, its pools grown meanwhile. */
		flatmem_area(&a.m, &area);
		assert_int_equal(
			flat_attach(&a.t, family, &area, ids, 0, &a.m.mem, cache_parent, new.rc),
			0);
		a.t.quarantine_ms = 0;
		check_table(&a.t, &new);

		/* Ids: every rule of new in both sets, every other id free. */
		for (size_t i = 0; i < new.n; i++)
			assert_int_equal(ids->rules[new.v[i].id].sets, 3);
		for (uint32_t i = 1; i < ids->n; i++)
			used += ids->rules[i].sets != 0;
		assert_int_equal(used, new.n);

		/* B compiled afresh on wiped memory: the same verdicts; A keeps its bits. */
		flatmem_wipe(&b.m);
		flat_ids_drop_set(ids, 1);
		for (size_t i = 0; i < new.n; i++)
			assert_int_equal(ids->rules[new.v[i].id].sets, 1);
		flatmem_area(&b.m, &area);
		assert_int_equal(
			flat_attach(&b.t, family, &area, ids, 1, &b.m.mem, cache_parent, new.rc),
			0);
		b.t.quarantine_ms = 0;
		assert_int_equal(flat_build(&b.t, new.v, new.n), 0);
		check_table(&b.t, &new);
		check_all(&b.t, &new, 5000);
		for (size_t i = 0; i < new.n; i++)
			assert_int_equal(ids->rules[new.v[i].id].sets, 3);

		/* Memory that does not fit the table in it is refused. */
		flatmem_area(&a.m, &area);
		area.slot_bits++;
		assert_int_equal(flat_attach(&again, family, &area, ids, 0, NULL, NULL, NULL),
				 -EPROTO);
		flatmem_area(&a.m, &area);
		area.chunk_cap--;
		assert_int_equal(flat_attach(&again, family, &area, ids, 0, NULL, NULL, NULL),
				 -EPROTO);
		flatmem_area(&a.m, &area);
		assert_int_equal(flat_attach(&again, f ? AF_INET : AF_INET6, &area, ids, 0, NULL,
					     NULL, NULL),
				 -EPROTO);

		table_close(&a);
		table_close(&b);
		flatmem_ids_close(&x);
		rules_free(&old);
		rules_free(&new);
	}
}

/*
 * Ids: reserved by alloc until added or released, grown through the
 * provider up to its ceiling (-ENOSPC there, nothing changed), handed out
 * round-robin, reservations of a writer that died reclaimed.
 */
static void test_ids_reserved_until_added_then_reclaimed(void **state)
{
	struct flatmem_ids xs, xl;
	struct flat_ids *ids = ids_open(&xs, 4), *many = ids_open(&xl, 1000);
	struct flat_rule saved[4];
	uint32_t a, b, c, d;
	(void)state;

	assert_int_equal(ids->n, 0);
	assert_int_equal(flat_ids_alloc(ids, 24, &a), 0);
	assert_int_equal(ids->n, 4);
	assert_int_equal(flat_ids_alloc(ids, 24, &b), 0);
	assert_int_equal(flat_ids_alloc(ids, 24, &c), 0);
	assert_true(a != b && b != c && a != c && a && b && c);
	memcpy(saved, ids->rules, sizeof(saved));
	assert_int_equal(flat_ids_alloc(ids, 24, &d), -ENOSPC);
	assert_int_equal(memcmp(saved, ids->rules, sizeof(saved)), 0);
	assert_true(xs.pool.refused >= 1);
	flat_ids_release(ids, b);
	assert_int_equal(flat_ids_alloc(ids, 16, &d), 0);
	assert_int_equal(d, b);
	assert_int_equal(ids->rules[d].prefixlen, 16);
	/* A CLI that died after alloc leaves reservations; reclaim frees them. */
	flat_ids_reclaim(ids);
	assert_int_equal(flat_ids_alloc(ids, 8, &d), 0);
	for (uint32_t i = 1; i < 4; i++)
		assert_int_equal(ids->rules[i].flags & FLAT_RULE_RESERVED,
				 i == d ? FLAT_RULE_RESERVED : 0);
	/* Every id was handed out before: its counters are to be zeroed first. */
	assert_true(ids->rules[d].flags & FLAT_RULE_RESET);

	/* Growth: in steps, each id once, n following the provider. */
	for (uint32_t i = 1; i < 1000; i++) {
		assert_int_equal(flat_ids_alloc(many, 32, &a), 0);
		assert_int_equal(a, i);
		assert_int_equal(many->n, xl.pool.cap);
	}
	assert_int_equal(flat_ids_alloc(many, 32, &a), -ENOSPC);
	assert_true(xl.pool.grows > 2);
	/* Round-robin: a released id rests while others are free. */
	flat_ids_release(many, 500);
	flat_ids_release(many, 7);
	assert_int_equal(flat_ids_alloc(many, 32, &a), 0);
	assert_int_equal(a, 7);
	assert_int_equal(flat_ids_alloc(many, 32, &a), 0);
	assert_int_equal(a, 500);
	flatmem_ids_close(&xs);
	flatmem_ids_close(&xl);
}

static void test_bad_arguments_are_refused(void **state)
{
	struct cidr v6 = { .family = AF_INET6, .len = 64 }, v4 = { .family = AF_INET, .len = 33 };
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 16), none = { 0 };
	struct flat_area a;
	struct snapshot s;
	struct table tb;
	struct rules r;
	struct rule e = { .action = IPBLOCK_ACTION_DENY }, h1, h2;
	struct flat t2;
	uint8_t bits;
	uint32_t id;
	(void)state;

	rules_init(&r, AF_INET);
	table_open(&tb, AF_INET, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	assert_int_equal(flat_slot_bits_for(1ull << 30, &bits), -E2BIG);
	assert_int_equal(flat_slot_bits_for(0, &bits), 0);
	assert_int_equal(bits, FLAT_MIN_SLOT_BITS);
	/* Attaching: family, set, slot bits, missing parts. */
	flatmem_area(&tb.m, &a);
	assert_int_equal(flat_attach(&t2, AF_UNIX, &a, ids, 0, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(flat_attach(&t2, AF_INET, &a, ids, 2, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(flat_attach(&t2, AF_INET, &a, NULL, 0, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(flat_attach(&t2, AF_INET, &a, &none, 0, NULL, NULL, NULL), -EINVAL);
	a.slot_bits = FLAT_MIN_SLOT_BITS - 1;
	assert_int_equal(flat_attach(&t2, AF_INET, &a, ids, 0, NULL, NULL, NULL), -EINVAL);
	flatmem_area(&tb.m, &a);
	a.blocks = NULL;
	assert_int_equal(flat_attach(&t2, AF_INET, &a, ids, 0, NULL, NULL, NULL), -EINVAL);

	/* Changes: nothing happens. */
	e.prefix = parse("10.0.0.0/8");
	assert_int_equal(flat_ids_alloc(ids, 8, &id), 0);
	e.id = id;
	add_ok(&tb, &r, &e);
	h1 = pending_rule(ids, "10.9.9.9/32", IPBLOCK_ACTION_DENY);
	h2 = pending_rule(ids, "10.9.9.10/32", IPBLOCK_ACTION_DENY);
	add_ok(&tb, &r, &h1);
	add_ok(&tb, &r, &h2);
	snap_take(&s, &tb, ids);
	/* A delete names the rule by prefix and id: another rule's id is refused. */
	h1.id = h2.id;
	assert_int_equal(flat_delete(&tb.t, &h1), -ENOENT);
	h1.id = id;
	assert_int_equal(flat_delete(&tb.t, &h1), -ENOENT);
	e.prefix = v6;
	assert_int_equal(flat_add(&tb.t, &e, 0), -EINVAL);
	e.prefix = v4;
	assert_int_equal(flat_add(&tb.t, &e, 0), -EINVAL);
	e.prefix = parse("10.1.0.0/16");
	e.id = 0;
	assert_int_equal(flat_add(&tb.t, &e, 0), -EINVAL);
	e.id = ids->n;
	assert_int_equal(flat_add(&tb.t, &e, 0), -EINVAL);
	e.id = FLAT_MAX_ID + 1;
	assert_int_equal(flat_add(&tb.t, &e, 0), -EINVAL);
	e.id = id;
	assert_int_equal(flat_add(&tb.t, &e, ids->n), -EINVAL);
	assert_int_equal(flat_delete(&tb.t, &e), -ENOENT);
	e.prefix = parse("10.0.0.0/8");
	e.id = id + 1;
	assert_int_equal(flat_delete(&tb.t, &e), -ENOENT);
	e.id = ids->n;
	assert_int_equal(flat_delete(&tb.t, &e), -EINVAL);
	/* A short rule's delete needs its parent: without the callback, refused. */
	tb.t.parent = NULL;
	e.id = id;
	assert_int_equal(flat_delete(&tb.t, &e), -EINVAL);
	snap_same(&s, &tb, ids, true);
	check_table(&tb.t, &r);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

/* --- tests: readers racing the writer ------------------------------------------------ */

/*
 * Readers in a chunk while it is filled and while it is given back: a
 * block's chunk must be complete before the block names it, and keep its
 * entries after the block stops naming it until no reader can be in it
 * (the quarantine).  The writer adds and deletes a /24 in 10.200/16 under
 * 10/8 and in 11.200/16 under 11/8, so the two blocks take turns with the
 * same chunks; readers look at the first two and the last region of each
 * block, which must say their /8's verdict (or the /24's).  A lookup that
 * overlapped more than one change is not judged: the quarantine (a time
 * packets never take) is not what a preempted thread is owed.
 */
struct chunk_race {
	const struct flat *t;
	uint32_t want[4][2];
	uint64_t gen; /* 2k: change k done; 2k-1: change k running */
	int stop;
	uint64_t lookups, wrong;
	uint32_t what, where;
};

static const uint8_t chunk_race_addr[4][4] = {
	{ 10, 200, 0, 7 }, { 10, 200, 1, 7 }, { 10, 200, 255, 7 }, { 11, 200, 255, 7 }
};

static void *chunk_reader(void *arg)
{
	struct chunk_race *cr = arg;

	while (!__atomic_load_n(&cr->stop, __ATOMIC_ACQUIRE)) {
		for (uint32_t i = 0; i < 4; i++) {
			uint64_t g1 = __atomic_load_n(&cr->gen, __ATOMIC_ACQUIRE), g2;
			uint32_t v = flat_judge(cr->t, chunk_race_addr[i]);

			g2 = __atomic_load_n(&cr->gen, __ATOMIC_ACQUIRE);
			if ((g2 + 1) / 2 - g1 / 2 > 1)
				continue;
			cr->lookups++;
			if (v != cr->want[i][0] && v != cr->want[i][1] && !cr->wrong++) {
				cr->what = v;
				cr->where = i;
			}
		}
	}
	return NULL;
}

static void test_reader_in_a_chunk_filled_or_given_back_sees_its_verdict(void **state)
{
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 64);
	struct chunk_race cr = { 0 };
	struct rule e10, e11, s10, s11;
	struct table tb;
	struct rules r;
	pthread_t th;
	double until;
	size_t rounds = 0;
	(void)state;

	rules_init(&r, AF_INET);
	table_open(&tb, AF_INET, ids, 0, r.rc, FLAT_MIN_SLOT_BITS, NULL);
	e10 = text_rule(&r, ids, "10.0.0.0/8", IPBLOCK_ACTION_DENY);
	e11 = text_rule(&r, ids, "11.0.0.0/8", IPBLOCK_ACTION_ALLOW);
	s10 = text_rule(&r, ids, "10.200.1.0/24", IPBLOCK_ACTION_ALLOW);
	s11 = text_rule(&r, ids, "11.200.1.0/24", IPBLOCK_ACTION_DENY);
	assert_int_equal(flat_add(&tb.t, &e10, 0), 0);
	assert_int_equal(flat_add(&tb.t, &e11, 0), 0);
	cr.t = &tb.t;
	for (int i = 0; i < 4; i++)
		cr.want[i][0] = cr.want[i][1] = rule_entry(i < 3 ? &e10 : &e11);
	cr.want[1][1] = rule_entry(&s10);
	assert_int_equal(pthread_create(&th, NULL, chunk_reader, &cr), 0);
	until = now_s() + (UNDER_SANITIZER ? 1.0 : 2.0);
	while (now_s() < until && !__atomic_load_n(&cr.wrong, __ATOMIC_RELAXED)) {
		__atomic_store_n(&cr.gen, 4 * rounds + 1, __ATOMIC_RELEASE);
		assert_int_equal(flat_add(&tb.t, rounds % 2 ? &s11 : &s10, 0), 0);
		__atomic_store_n(&cr.gen, 4 * rounds + 2, __ATOMIC_RELEASE);
		__atomic_store_n(&cr.gen, 4 * rounds + 3, __ATOMIC_RELEASE);
		assert_int_equal(flat_delete(&tb.t, rounds % 2 ? &s11 : &s10), 0);
		__atomic_store_n(&cr.gen, 4 * rounds + 4, __ATOMIC_RELEASE);
		rounds++;
	}
	__atomic_store_n(&cr.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	printf("# %zu chunks filled and given back under %llu judged lookups\n", rounds,
	       (unsigned long long)cr.lookups);
	if (cr.wrong) {
		const uint8_t *a = chunk_race_addr[cr.where];

		fail_msg("%llu lookups saw neither verdict: %u.%u.%u.%u -> %#x (want %#x or %#x)",
			 (unsigned long long)cr.wrong, a[0], a[1], a[2], a[3], cr.what,
			 cr.want[cr.where][0], cr.want[cr.where][1]);
	}
	rules_remove_at(&r, 3);
	rules_remove_at(&r, 2);
	check_table(&tb.t, &r);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&r);
}

/*
 * A reader thread looks addresses up while the writer changes rules one at
 * a time.  The writer publishes the expected verdicts of each state before
 * the change and bumps a generation counter around it (odd: in progress),
 * so a lookup that overlapped at most one change must equal the state
 * before or after it -- never a half-written entry, a chunk being filled
 * or given back, a parent that was not there, a slot read while being
 * reused, or a tree half built.
 */
#define RACE_ADDRS 8

struct race {
	const struct flat *t;
	uint8_t addrs[RACE_ADDRS][16];
	uint32_t (*expect)[RACE_ADDRS]; /* after op k */
	uint64_t gen;			/* 2k: op k done; 2k-1: op k running */
	int started, done;
	uint64_t sweeps; /* reader passes over addrs: the writer keeps pace */
	size_t checked, violations;
	char what[160];
};

static void *race_reader(void *arg)
{
	struct race *rc = arg;

	__atomic_store_n(&rc->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&rc->done, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < RACE_ADDRS; i++) {
			uint64_t g1 = __atomic_load_n(&rc->gen, __ATOMIC_ACQUIRE), g2, from, to;
			uint32_t v = flat_judge(rc->t, rc->addrs[i]), a, b;

			g2 = __atomic_load_n(&rc->gen, __ATOMIC_ACQUIRE);
			from = g1 / 2;
			to = (g2 + 1) / 2;
			if (to - from > 1)
				continue;
			a = __atomic_load_n(&rc->expect[from][i], __ATOMIC_RELAXED);
			b = __atomic_load_n(&rc->expect[to][i], __ATOMIC_RELAXED);
			rc->checked++;
			if (v != a && v != b && !rc->violations++)
				snprintf(rc->what, sizeof(rc->what),
					 "addr %d between states %llu and %llu: got %u/%u, "
					 "expected %u/%u or %u/%u",
					 i, (unsigned long long)from, (unsigned long long)to,
					 v >> 1, v & 1, a >> 1, a & 1, b >> 1, b & 1);
		}
		__atomic_fetch_add(&rc->sweeps, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * Churn the rules of pool (n of them) in t, ops changes, while a reader
 * judges rc->addrs; ref is t's rule set (empty at first).
 */
static void race_run(struct race *rc, struct flat *t, struct flat_ids *ids, struct rules *ref,
		     const struct cidr *pool, int n, size_t ops, const char *name)
{
	struct rule *rules = calloc((size_t)n, sizeof(*rules));
	bool *present = calloc((size_t)n, sizeof(*present));
	pthread_t th;

	assert_true(rules && present);
	rc->expect = calloc(ops + 1, sizeof(*rc->expect));
	assert_non_null(rc->expect);
	for (int i = 0; i < n; i++)
		rules[i] = (struct rule){ .prefix = pool[i], .action = IPBLOCK_ACTION_DENY };
	rc->t = t;
	assert_int_equal(pthread_create(&th, NULL, race_reader, rc), 0);
	while (!__atomic_load_n(&rc->started, __ATOMIC_ACQUIRE))
		sched_yield();

	for (uint64_t k = 1; k <= ops; k++) {
		int i = (int)below((uint32_t)n);
		struct rule *e = &rules[i];
		uint32_t old_id = 0;
		enum { ADD, DEL, UPD } op;
		ssize_t at = rules_index(ref, &e->prefix);
		uint64_t sw;
		double until;

		if (!present[i]) {
			op = ADD;
			assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
			rules_add(ref, e);
		} else if (below(3)) {
			op = DEL;
			rules_remove_at(ref, (size_t)at);
		} else {
			op = UPD;
			old_id = e->id;
			e->action ^= IPBLOCK_ACTION_ALLOW ^ IPBLOCK_ACTION_DENY;
			if (below(2))
				assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
			rules_replace_at(ref, (size_t)at, e);
		}
		for (int a = 0; a < RACE_ADDRS; a++)
			__atomic_store_n(&rc->expect[k][a],
					 reference_entry(ref->rc, ref->family, rc->addrs[a]),
					 __ATOMIC_RELAXED);
		__atomic_store_n(&rc->gen, 2 * k - 1, __ATOMIC_RELEASE);
		if (op == DEL)
			assert_int_equal(flat_delete(t, e), 0);
		else
			assert_int_equal(flat_add(t, e, old_id), 0);
		__atomic_store_n(&rc->gen, 2 * k, __ATOMIC_RELEASE);
		present[i] = op != DEL;
		/* Let the reader see most states; on a busy machine give up after 100 us. */
		sw = __atomic_load_n(&rc->sweeps, __ATOMIC_ACQUIRE);
		until = now_s() + 100e-6;
		while (__atomic_load_n(&rc->sweeps, __ATOMIC_ACQUIRE) == sw && now_s() < until)
			;
	}
	__atomic_store_n(&rc->done, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	printf("# %s: %zu concurrent lookups checked over %zu changes\n", name, rc->checked, ops);
	if (rc->violations)
		fail_msg("%zu lookups saw neither state: %s", rc->violations, rc->what);
	assert_true(rc->checked > 0);
	check_table(t, ref);
	free(rc->expect);
	free(rules);
	free(present);
}

/* One race over the rules of txt[] (NULL-ended); addresses: edge[] first, then inside rules. */
static void race_pool(int family, const char *const *txt, const char *const *edge, size_t ops,
		      const char *name)
{
	struct flatmem_ids x;
	struct flat_ids *ids = ids_open(&x, 1u << 16);
	struct race *rc = calloc(1, sizeof(*rc));
	struct cidr pool[32];
	struct table tb;
	struct rules ref;
	int n = 0, ne = 0;

	assert_non_null(rc);
	while (txt[n])
		pool[n] = parse(txt[n]), n++;
	for (; edge[ne]; ne++) {
		struct cidr c = parse(edge[ne]);

		memcpy(rc->addrs[ne], c.addr, 16);
	}
	for (int i = ne; i < RACE_ADDRS; i++)
		addr_in(&pool[1 + i % (n - 1)], rc->addrs[i]);
	rules_init(&ref, family);
	/* Pools from nothing: they grow while the reader reads. */
	table_open(&tb, family, ids, 0, ref.rc, FLAT_MIN_SLOT_BITS, NULL);
	/* Short enough to keep the changes quick, long enough that nothing is reused under a
	 * lookup. */
	tb.t.quarantine_ms = 1;
	race_run(rc, &tb.t, ids, &ref, pool, n, ops, name);
	table_close(&tb);
	flatmem_ids_close(&x);
	rules_free(&ref);
	free(rc);
}

static void test_reader_sees_old_or_new_during_changes(void **state)
{
	static const char *const v4[] = { "10.0.0.0/16",   "10.0.5.0/24",   "10.0.5.0/25",
					  "10.0.5.0/28",   "10.0.5.7/32",   "10.0.5.6/31",
					  "10.0.6.0/24",   "10.0.6.128/26", "10.0.6.200/32",
					  "10.0.0.0/8",	   "10.0.5.64/26",  "10.0.6.201/32",
					  "10.200.1.0/24", "10.200.1.9/32", NULL };
	/* The first two regions of 10.200/16, whose chunk comes and goes. */
	static const char *const v4_at[] = { "10.0.5.7", "10.0.5.6", "10.200.0.7", "10.200.1.9",
					     NULL };
	static const char *const v6[] = { "2001:db8::/32",
					  "2001:db8:5::/48",
					  "2001:db8:5::/56",
					  "2001:db8:5::/64",
					  "2001:db8:5::7/128",
					  "2001:db8:5::6/127",
					  "2001:db8:6::/48",
					  "2001:db8:6::/96",
					  "2001:db8:6::200/128",
					  "2001:d00::/24",
					  "2001:db8:5:0:8000::/65",
					  "2001:db8:6::201/128",
					  "2002::/16",
					  "2002:100::/24",
					  "2002:100::9/128",
					  NULL };
	static const char *const v6_at[] = { "2001:db8:5::7", "2001:db8:5::6", "2002::7",
					     "2002:100::9", NULL };
	/* One region, 16 lengths: a tree while more than 8 are in, a list when fewer. */
	static const char *const split[] = { CHAIN_ADDR "/32",
					     CHAIN_ADDR "/40",
					     CHAIN_ADDR "/44",
					     CHAIN_ADDR "/48",
					     CHAIN_ADDR "/52",
					     CHAIN_ADDR "/56",
					     CHAIN_ADDR "/60",
					     CHAIN_ADDR "/64",
					     CHAIN_ADDR "/68",
					     CHAIN_ADDR "/72",
					     CHAIN_ADDR "/80",
					     CHAIN_ADDR "/96",
					     CHAIN_ADDR "/112",
					     CHAIN_ADDR "/120",
					     CHAIN_ADDR "/127",
					     CHAIN_ADDR "/128",
					     SIBLING_ADDR "/96",
					     SIBLING_ADDR "/120",
					     NULL };
	static const char *const split_at[] = { CHAIN_ADDR,
						"2001:db8:aaaa:bbbb:cccc:dddd:eeee:fffe",
						"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ff00",
						"2001:db8:aaaa:bbbb:cccc:dddd:eeee::",
						"2001:db8:aaaa:bbbb:cccc:dddd::",
						SIBLING_ADDR,
						"2001:db8:aaaa:bbbb::",
						NULL };
	(void)state;

	race_pool(AF_INET, v4, v4_at, scaled(6000), "v4");
	race_pool(AF_INET6, v6, v6_at, scaled(6000), "v6");
	race_pool(AF_INET6, split, split_at, scaled(2000), "v6 split region");
}

/* --- tests: a writer killed half-way ---------------------------------------------------- */

#define KILL_LOG 8192

/* One change a killed writer began: its rule as it is after the change, or was (delete). */
struct kill_op {
	uint8_t fam, del;
	struct rule e;
	uint32_t old_id;
};

/* Shared with the writer: what it began and finished. */
struct kill_log {
	uint32_t started, done;
	int err, line;
	struct kill_op op[KILL_LOG];
};

struct kill_env {
	struct flatmem m[2];
	struct flatmem_ids x[2];
	struct flat t[2];
	struct rules r[2];
	struct kill_log *log;
	struct cidr p8;
};

/* Attach t[f] to its memory as a new process would: what the header says. */
static int kill_attach(struct kill_env *k, int f)
{
	struct flat_area a;
	int ret = flatmem_follow(&k->m[f]);

	if (ret)
		return ret;
	flatmem_area(&k->m[f], &a);
	return flat_attach(&k->t[f], f ? AF_INET6 : AF_INET, &a, &k->x[f].ids, 0, &k->m[f].mem,
			   cache_parent, k->r[f].rc);
}

/* A prefix not in r inside 10.0.0.0/8, nested half the time, /12 to /32. */
static void gen_inside_8(const struct rules *r, const struct cidr *p8, struct cidr *p)
{
	do {
		memset(p, 0, sizeof(*p));
		p->family = AF_INET;
		addr_in(r->n && below(2) ? &r->v[below((uint32_t)r->n)].prefix : p8, p->addr);
		p->len = (uint8_t)(below(3) ? 25 + below(8) : 12 + below(13));
		cidr_clear_host_bits(p);
	} while (!ref_find(r->rc, p, NULL));
}

/* The writer's own bookkeeping, without cmocka (a failed assert must not run on in a child). */
static int child_insert(struct rules *r, const struct rule *e, bool fresh)
{
	int ret = rulecache_insert(r->rc, &(struct rulecache_entry){ .rule = *e }, NULL);
	ssize_t i;

	if (ret)
		return ret;
	if (fresh) {
		if (r->n == r->cap)
			return -ENOMEM; /* sized by the parent: never */
		r->v[r->n++] = *e;
		return 0;
	}
	i = rules_index(r, &e->prefix);
	if (i < 0)
		return -ENOENT;
	r->v[i] = *e;
	return 0;
}

/* Pick, log and make one change; 0 or -errno. */
static int child_step(struct kill_env *k)
{
	uint32_t n = k->log->started, c = below(10);
	struct kill_op *op = &k->log->op[n];
	int f = (int)below(2), ret;
	struct rules *r = &k->r[f];
	struct rule e = { 0 };
	size_t i;

	op->fam = (uint8_t)f;
	op->del = 0;
	op->old_id = 0;
	if (f == 0 && c < 3) {
		/* The /8 flips: every block of it and every region base below it. */
		e = r->v[rules_index(r, &k->p8)];
		e.action ^= IPBLOCK_ACTION_ALLOW ^ IPBLOCK_ACTION_DENY;
		op->old_id = e.id;
	} else if (c < 6 || r->n < 40) {
		if (f == 0)
			gen_inside_8(r, &k->p8, &e.prefix);
		else
			gen_crowded(r, &e.prefix);
		e.action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
		ret = flat_ids_alloc(&k->x[f].ids, e.prefix.len, &e.id);
		if (ret)
			return ret;
	} else if (c < 9) {
		do
			i = below((uint32_t)r->n);
		while (f == 0 && r->v[i].prefix.len == 8);
		e = r->v[i];
		op->del = 1;
	} else {
		i = below((uint32_t)r->n);
		e = r->v[i];
		op->old_id = e.id;
		e.action ^= IPBLOCK_ACTION_ALLOW ^ IPBLOCK_ACTION_DENY;
		if (below(2)) {
			ret = flat_ids_alloc(&k->x[f].ids, e.prefix.len, &e.id);
			if (ret)
				return ret;
		}
	}
	op->e = e;
	__atomic_store_n(&k->log->started, n + 1, __ATOMIC_RELEASE);
	if (op->del) {
		i = (size_t)rules_index(r, &e.prefix);
		ret = rulecache_remove(r->rc, &e.prefix);
		r->v[i] = r->v[--r->n];
		if (!ret)
			ret = flat_delete(&k->t[f], &e);
	} else {
		ret = child_insert(r, &e, !op->old_id);
		if (!ret)
			ret = flat_add(&k->t[f], &e, op->old_id);
	}
	if (!ret)
		__atomic_store_n(&k->log->done, n + 1, __ATOMIC_RELEASE);
	return ret;
}

static void kill_child(struct kill_env *k, pid_t parent, uint64_t seed, uint32_t quarantine)
{
	int ret = 0;

	/* Never outlive the test, whatever ends it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	rng_state = seed;
	for (int f = 0; f < 2 && !ret; f++) {
		ret = kill_attach(k, f);
		k->t[f].quarantine_ms = quarantine;
	}
	while (!ret && k->log->started < KILL_LOG)
		ret = child_step(k);
	if (ret) {
		k->log->err = ret;
		_exit(1);
	}
	for (;;)
		pause();
}

/* The parent's rules follow one logged change. */
static void kill_replay(struct kill_env *k, const struct kill_op *op)
{
	struct rules *r = &k->r[op->fam];
	ssize_t i = rules_index(r, &op->e.prefix);

	if (op->del)
		rules_remove_at(r, (size_t)i);
	else if (i >= 0)
		rules_replace_at(r, (size_t)i, &op->e);
	else
		rules_add(r, &op->e);
}

/* Addresses to judge after a kill: every rule's edges, and random ones where the rules are. */
static size_t kill_addrs(const struct kill_env *k, int f, const struct kill_op *op,
			 uint8_t (*a)[16], size_t max)
{
	const struct rules *r = &k->r[f];
	struct cidr crowded = parse("2001:d00::/24");
	size_t n = 0;

	for (size_t i = 0; i < r->n && n + 2 <= max; i++) {
		addr_edge(&r->v[i].prefix, false, a[n++]);
		addr_edge(&r->v[i].prefix, true, a[n++]);
	}
	if (op && op->fam == f && n + 4 <= max) {
		addr_edge(&op->e.prefix, false, a[n++]);
		addr_edge(&op->e.prefix, true, a[n++]);
		addr_in(&op->e.prefix, a[n++]);
		addr_in(&op->e.prefix, a[n++]);
	}
	while (n < max)
		addr_in(f ? &crowded : &k->p8, a[n++]);
	return n;
}

/* The free chunks of a table a writer may have left half-way: FIFO and limbo, leniently. */
static uint8_t *torn_free_chunks(const struct flat *t)
{
	const struct flat_hdr *h = t->hdr;
	uint8_t *fr = calloc(h->chunk_bump + 1, 1);
	uint32_t n = 0;

	assert_non_null(fr);
	for (uint32_t c = h->chunk_head; c < h->chunk_bump && !fr[c] && n++ < h->chunk_bump;
	     c = chunk_of(t, c)[0])
		fr[c] = 1;
	for (uint32_t i = 0; i < h->limbo_n && i < FLAT_LIMBO; i++)
		if (h->limbo[i] < h->chunk_bump)
			fr[h->limbo[i]] = 1;
	return fr;
}

/*
 * What a killed writer leaves: a uniform block holds the entry of the old
 * or the new rules (which would make it uniform); a block with a chunk
 * names one handed out, free neither in the FIFO nor in the limbo, and no
 * other block's; its regions name records handed out.
 */
static void check_torn_blocks(const struct flat *t, const struct rules *old,
			      const struct rules *new)
{
	struct model mo, mn;
	uint8_t *fr = torn_free_chunks(t), *seen = calloc(t->hdr->chunk_bump + 1, 1);
	size_t ko = 0, kn = 0;

	assert_non_null(seen);
	model_build(&mo, old, 0, FLAT_BLOCKS);
	model_build(&mn, new, 0, FLAT_BLOCKS);
	for (uint32_t b = 0; b < FLAT_BLOCKS; b++) {
		uint32_t e = t->blocks[b], c = e & ~FLAT_EXT;
		bool deep_o = false, deep_n = false;

		while (ko < mo.ndeep && rule_block(mo.deep[ko]) == b)
			ko++, deep_o = true;
		while (kn < mn.ndeep && rule_block(mn.deep[kn]) == b)
			kn++, deep_n = true;
		if (!(e & FLAT_EXT)) {
			if ((deep_o || e != mo.blk[b]) && (deep_n || e != mn.blk[b]))
				fail_msg("block %#x: uniform %#x; old rules %s%#x, new %s%#x", b, e,
					 deep_o ? "mixed " : "", mo.blk[b], deep_n ? "mixed " : "",
					 mn.blk[b]);
			continue;
		}
		if (c >= t->hdr->chunk_bump || fr[c] || seen[c])
			fail_msg("block %#x names chunk %u: %s", b, c,
				 c >= t->hdr->chunk_bump ? "never handed out"
				 : fr[c]		 ? "free"
							 : "another block's");
		seen[c] = 1;
		for (uint32_t i = 0; i < FLAT_CHUNK_ENTRIES; i++) {
			uint32_t x = chunk_of(t, c)[i];

			if ((x & FLAT_EXT) &&
			    (!(x & ~FLAT_EXT) || (x & ~FLAT_EXT) >= t->hdr->ext_bump))
				fail_msg("region %#x names record %u (bump %u)", b << 8 | i,
					 x & ~FLAT_EXT, t->hdr->ext_bump);
		}
	}
	model_free(&mo);
	model_free(&mn);
	free(fr);
	free(seen);
}

/* A copy of r's rules (the reference included). */
static void rules_copy(struct rules *to, const struct rules *from)
{
	rules_init(to, from->family);
	for (size_t i = 0; i < from->n; i++)
		rules_add(to, &from->v[i]);
}

/* Compile both tables afresh from the parent's rules, as the product's rebuild after a dirty mark.
 */
static void kill_rebuild(struct kill_env *k)
{
	for (int f = 0; f < 2; f++) {
		flatmem_wipe(&k->m[f]);
		flat_ids_drop_set(&k->x[f].ids, 0);
		flat_ids_reclaim(&k->x[f].ids);
		assert_int_equal(kill_attach(k, f), 0);
		k->t[f].quarantine_ms = 0;
		assert_int_equal(flat_build(&k->t[f], k->r[f].v, k->r[f].n), 0);
		check_table(&k->t[f], &k->r[f]);
	}
}

/*
 * A writer killed in the middle of an operation (a CLI interrupted, the OOM
 * killer) never leaves a wrong verdict: a child process changes both
 * families' tables on shared memory (a /8 flipping over mixed blocks, rules
 * inside it, a crowded IPv6 region whose tree is rebuilt) and is killed at
 * a random moment.  Every address is then judged by the rules before or
 * after the change in flight, uniform blocks hold one of those verdicts,
 * and no block names a free chunk.  The tables are then compiled afresh
 * (what the product's dirty mark leads to) and the next child carries on.
 */
static void test_killed_writer_never_leaves_a_wrong_verdict(void **state)
{
	const int rounds = (int)scaled(80);
	struct flatmem_opts o = { .shared = true };
	struct kill_env *k = calloc(1, sizeof(*k));
	static uint8_t a[2048][16];
	static uint32_t want_old[2048];
	uint32_t applied = 0, ops = 0;
	int torn = 0, grew = 0;
	(void)state;

	assert_non_null(k);
	k->log = mmap(NULL, sizeof(*k->log), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	assert_true(k->log != MAP_FAILED);
	k->p8 = parse("10.0.0.0/8");
	for (int f = 0; f < 2; f++) {
		assert_int_equal(flatmem_ids_open(&k->x[f], 1u << 16, true), 0);
		/* Mapped up front: ids a child maps would be the child's alone. */
		assert_int_equal(flatmem_ids_grow(&k->x[f], 1u << 16), 0);
		assert_int_equal(flatmem_open(&k->m[f], FLAT_MIN_SLOT_BITS, &o), 0);
		rules_init(&k->r[f], f ? AF_INET6 : AF_INET);
		/* Room for every rule a round may add: the child cannot grow the list. */
		k->r[f].cap = 4 * KILL_LOG;
		k->r[f].v = malloc(k->r[f].cap * sizeof(*k->r[f].v));
		assert_non_null(k->r[f].v);
	}
	text_rule(&k->r[0], &k->x[0].ids, "10.0.0.0/8", IPBLOCK_ACTION_DENY);
	for (int i = 0; i < 150; i++) {
		struct rule e = { .action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW };

		gen_inside_8(&k->r[0], &k->p8, &e.prefix);
		assert_int_equal(flat_ids_alloc(&k->x[0].ids, e.prefix.len, &e.id), 0);
		rules_add(&k->r[0], &e);
	}
	for (int i = 0; i < 80; i++) {
		struct rule e = { .action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW };

		gen_crowded(&k->r[1], &e.prefix);
		assert_int_equal(flat_ids_alloc(&k->x[1].ids, e.prefix.len, &e.id), 0);
		rules_add(&k->r[1], &e);
	}
	kill_rebuild(k);

	for (int round = 0; round < rounds; round++) {
		struct timespec d = { .tv_nsec = (long)(50 + below(3000)) * 1000 };
		uint64_t seed = rnd() | 1;
		uint32_t quarantine = below(2), chunk_cap[2];
		pid_t parent = getpid(), pid;
		uint32_t started, done;
		double until;

		for (int f = 0; f < 2; f++)
			chunk_cap[f] = k->m[f].pool[FLAT_POOL_CHUNKS].cap;
		pid = fork();
		assert_true(pid >= 0);
		if (!pid)
			kill_child(k, parent, seed, quarantine);
		/* From its first change on (a slow start, e.g. under valgrind, is no moment to
		 * test). */
		until = now_s() + 30;
		while (!__atomic_load_n(&k->log->started, __ATOMIC_ACQUIRE) && !k->log->err &&
		       now_s() < until)
			sched_yield();
		nanosleep(&d, NULL);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		if (k->log->err)
			fail_msg("the writer failed: %d", k->log->err);
		started = __atomic_load_n(&k->log->started, __ATOMIC_ACQUIRE);
		done = __atomic_load_n(&k->log->done, __ATOMIC_ACQUIRE);
		for (; applied < done; applied++)
			kill_replay(k, &k->log->op[applied]);

		for (int f = 0; f < 2; f++) {
			const struct kill_op *op = started > done ? &k->log->op[done] : NULL;
			size_t n = kill_addrs(k, f, op, a, 2048);
			struct rules old;

			/* The writer may have grown the pools: map what the header says. */
			assert_int_equal(kill_attach(k, f), 0);
			grew += k->m[f].pool[FLAT_POOL_CHUNKS].cap > chunk_cap[f];
			rules_copy(&old, &k->r[f]);
			for (size_t i = 0; i < n; i++)
				want_old[i] = reference_entry(old.rc, old.family, a[i]);
			if (op && op->fam == f)
				kill_replay(k, op);
			for (size_t i = 0; i < n; i++) {
				uint32_t v = flat_judge(&k->t[f], a[i]);
				uint32_t want = reference_entry(k->r[f].rc, k->r[f].family, a[i]);

				if (v != want && v != want_old[i])
					fail_verdict(k->r[f].family, a[i], v, want,
						     "neither old nor new after a kill");
			}
			check_torn_blocks(&k->t[f], &old, &k->r[f]);
			rules_free(&old);
		}
		torn += started > done;
		ops += started;
		memset(k->log, 0, sizeof(*k->log));
		applied = 0;
		kill_rebuild(k);
	}
	printf("# %d of %d kills landed inside an operation (of %u begun); the writer grew a "
	       "pool %d times\n",
	       torn, rounds, ops, grew);
	/* Otherwise the test proved nothing. */
	assert_true(torn > 0);
	for (int f = 0; f < 2; f++) {
		flatmem_close(&k->m[f]);
		flatmem_ids_close(&k->x[f]);
		rules_free(&k->r[f]);
	}
	munmap(k->log, sizeof(*k->log));
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nested_rules_longest_wins),
		cmocka_unit_test(test_blocks_have_chunks_only_while_mixed),
		cmocka_unit_test(test_v4_random_rules_match_reference),
		cmocka_unit_test(test_v6_random_rules_match_reference),
		cmocka_unit_test(test_v4_incremental_changes_match_reference),
		cmocka_unit_test(test_v6_incremental_changes_match_reference),
		cmocka_unit_test(test_v6_crowded_region_gets_a_tree),
		cmocka_unit_test(test_v6_tree_that_cannot_be_built_keeps_the_old_one),
		cmocka_unit_test(test_tree_rebuild_keeps_two_marker_generations_until_settled),
		cmocka_unit_test(test_pool_at_ceiling_refuses_and_changes_nothing),
		cmocka_unit_test(test_full_slot_hash_refuses_and_changes_nothing),
		cmocka_unit_test(test_pools_grow_with_the_rules_and_chunks_come_back),
		cmocka_unit_test(test_freed_slots_chunks_and_records_wait_out_the_quarantine),
		cmocka_unit_test(test_reader_sees_old_or_new_during_changes),
		cmocka_unit_test(test_reader_in_a_chunk_filled_or_given_back_sees_its_verdict),
		cmocka_unit_test(test_killed_writer_never_leaves_a_wrong_verdict),
		cmocka_unit_test(test_two_sets_follow_by_diff_and_share_ids),
		cmocka_unit_test(test_ids_reserved_until_added_then_reclaimed),
		cmocka_unit_test(test_bad_arguments_are_refused),
	};
	const char *s = getenv("FLAT_SCALE");

	scale = UNDER_SANITIZER ? 4 : 1;
	if (s && atoi(s) > 0)
		scale = (unsigned int)atoi(s);
	seed();
	if (getenv("FLAT_ONLY"))
		cmocka_set_test_filter(getenv("FLAT_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
