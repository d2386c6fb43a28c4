// SPDX-License-Identifier: GPL-2.0
/*
 * The rule cache against independent references: a brute-force longest
 * match, diff replayed onto its input, cidr_compare() for ordering, and the
 * XDP program itself through BPF_PROG_RUN.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <linux/bpf.h>

#include "harness.h"
#include "reference.h"
#include "rulecache.h"
#include "sanitizer.h"
#include "trie.h"

/* Sanitizers slow every access 5-20x; smaller sets keep the run short. */
#define SCALE(n) (UNDER_SANITIZER ? (n) / 4 : (n))

/* cmocka may only fail on the main thread; workers count failures here. */
static _Atomic int thread_errors;
#define CHECK_T(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			atomic_fetch_add(&thread_errors, 1);                                       \
	} while (0)

static uint64_t rng_state;

/* xorshift64*: reproducible from the seed printed by main(). */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned int bits_of(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* The test's own masking, independent of the cache's and cidr.c's. */
static bool bit_at(const uint8_t *a, unsigned int i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

static bool ref_contains(const struct cidr *p, const uint8_t *addr)
{
	for (unsigned int i = 0; i < p->len; i++)
		if (bit_at(p->addr, i) != bit_at(addr, i))
			return false;
	return true;
}

static void ref_normalise(struct cidr *p)
{
	for (unsigned int i = p->len; i < 128; i++)
		p->addr[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
}

static bool same_prefix(const struct cidr *a, const struct cidr *b)
{
	return a->family == b->family && a->len == b->len && !memcmp(a->addr, b->addr, 16);
}

static void random_addr(int family, uint8_t *a)
{
	memset(a, 0, 16);
	for (unsigned int i = 0; i < bits_of(family) / 8; i++)
		a[i] = (uint8_t)rnd();
}

/*
 * Prefixes drawn from a few base addresses so that many nest inside each
 * other, plus the edges: /0 and full-length host routes.
 */
#define NBASES 64
static uint8_t bases[2][NBASES][16];

static void init_bases(void)
{
	for (int f = 0; f < 2; f++)
		for (int i = 0; i < NBASES; i++)
			random_addr(f ? AF_INET6 : AF_INET, bases[f][i]);
}

static void random_prefix(int family, struct cidr *p)
{
	unsigned int max = bits_of(family);
	uint64_t r = rnd();

	memset(p, 0, sizeof(*p));
	p->family = family;
	memcpy(p->addr, bases[family == AF_INET6][r % NBASES], 16);
	r >>= 8;
	switch (r % 16) {
	case 0:
		p->len = 0;
		break;
	case 1:
	case 2:
		p->len = max;
		break;
	case 3:
	case 4:
	case 5:
		/* Outside the bases: mostly no neighbours. */
		random_addr(family, p->addr);
		p->len = (r >> 8) % (max + 1);
		break;
	default:
		p->len = (r >> 8) % (max + 1);
		break;
	}
	/* Random host bits past the prefix, which the cache must ignore. */
	for (unsigned int i = p->len; i < max; i++)
		if (rnd() & 1)
			p->addr[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
}

/* An address inside a random base (so that nested rules compete) or anywhere. */
static void probe_addr(int family, uint8_t *a)
{
	unsigned int max = bits_of(family), keep;

	if (rnd() % 4 == 0) {
		random_addr(family, a);
		return;
	}
	memcpy(a, bases[family == AF_INET6][rnd() % NBASES], 16);
	keep = rnd() % (max + 1);
	for (unsigned int i = keep; i < max; i++)
		if (rnd() & 1)
			a[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
}

static uint8_t random_action(void)
{
	return rnd() & 1 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
}

/* The reference rule set: a plain array, searched linearly. */
struct ref {
	struct rulecache_entry *e;
	size_t n, cap;
};

static struct rulecache_entry *ref_find(struct ref *r, const struct cidr *p)
{
	for (size_t i = 0; i < r->n; i++)
		if (same_prefix(&r->e[i].rule.prefix, p))
			return &r->e[i];
	return NULL;
}

/* Insert into both; checks the cache's new/updated report against the reference. */
static void both_insert(struct rulecache *rc, struct ref *r, const struct rulecache_entry *e)
{
	struct rulecache_entry n = *e, *old;
	bool created;

	ref_normalise(&n.rule.prefix);
	old = ref_find(r, &n.rule.prefix);
	assert_int_equal(rulecache_insert(rc, e, &created), 0);
	assert_int_equal(created, old == NULL);
	if (old) {
		*old = n;
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 1024;
		r->e = realloc(r->e, r->cap * sizeof(*r->e));
		assert_non_null(r->e);
	}
	r->e[r->n++] = n;
}

static const struct rulecache_entry *ref_lpm(const struct ref *r, int family, const uint8_t *a)
{
	const struct rulecache_entry *best = NULL;

	for (size_t i = 0; i < r->n; i++) {
		const struct rulecache_entry *e = &r->e[i];

		if (e->rule.prefix.family == family && ref_contains(&e->rule.prefix, a) &&
		    (!best || e->rule.prefix.len > best->rule.prefix.len))
			best = e;
	}
	return best;
}

static void fill_random(struct rulecache *rc, struct ref *r, size_t n, uint32_t id_base)
{
	for (size_t i = 0; i < n; i++) {
		struct rulecache_entry e = { .rule.action = random_action(),
					     .rule.id = id_base + (uint32_t)i };

		random_prefix(i % 3 ? AF_INET : AF_INET6, &e.rule.prefix);
		both_insert(rc, r, &e);
	}
}

static size_t check_lpm_against_reference(struct rulecache *rc, const struct ref *r, size_t probes)
{
	size_t matched = 0;

	for (size_t i = 0; i < probes; i++) {
		int family = i % 2 ? AF_INET : AF_INET6;
		const struct rulecache_entry *want;
		struct rulecache_entry got;
		uint8_t a[16];
		int ret;

		probe_addr(family, a);
		want = ref_lpm(r, family, a);
		ret = reference_lookup(rc, family, a, &got);
		if (!want) {
			assert_int_equal(ret, -ENOENT);
			continue;
		}
		assert_int_equal(ret, 0);
		assert_true(same_prefix(&got.rule.prefix, &want->rule.prefix));
		assert_int_equal(got.rule.action, want->rule.action);
		assert_int_equal(got.rule.id, want->rule.id);
		matched++;
	}
	return matched;
}

/* Drop from both the rules pick() selects. */
static size_t both_remove(struct rulecache *rc, struct ref *r,
			  bool (*pick)(const struct rulecache_entry *))
{
	size_t removed = 0;

	for (size_t i = 0; i < r->n;) {
		if (!pick(&r->e[i])) {
			i++;
			continue;
		}
		assert_int_equal(rulecache_remove(rc, &r->e[i].rule.prefix), 0);
		assert_int_equal(rulecache_remove(rc, &r->e[i].rule.prefix), -ENOENT);
		r->e[i] = r->e[--r->n];
		removed++;
	}
	return removed;
}

/* Short rules cover most of the space: without them random probes can miss. */
static bool pick_short(const struct rulecache_entry *e)
{
	return e->rule.prefix.len < (e->rule.prefix.family == AF_INET ? 8 : 16);
}

static bool pick_a_third(const struct rulecache_entry *e)
{
	(void)e;
	return rnd() % 3 == 0;
}

static void test_longest_match_agrees_with_brute_force(void **state)
{
	struct rulecache *rc = rulecache_new();
	size_t probes = SCALE(20000), matched, removed;
	struct ref r = { 0 };

	(void)state;
	assert_non_null(rc);
	fill_random(rc, &r, SCALE(8000), 1);
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), r.n);
	matched = check_lpm_against_reference(rc, &r, probes);
	print_message("# %zu rules (%zu IPv4), %zu of %zu probes matched\n", r.n,
		      rulecache_count(rc, AF_INET), matched, probes);

	/* Without the short rules and a third of the rest, others show through and misses appear.
	 */
	removed = both_remove(rc, &r, pick_short);
	assert_true(removed >= 2);
	removed += both_remove(rc, &r, pick_a_third);
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), r.n);
	matched = check_lpm_against_reference(rc, &r, probes);
	print_message("# %zu removed, then %zu of %zu probes matched\n", removed, matched, probes);
	/* The probes must exercise both outcomes to mean anything. */
	assert_true(matched > probes / 4);
	assert_true(matched < probes);
	free(r.e);
	rulecache_free(rc);
}

static void test_zero_length_and_host_routes_are_edges_not_errors(void **state)
{
	struct rulecache *rc = rulecache_new();
	struct rulecache_entry any4 = { .rule.prefix = { .family = AF_INET, .len = 0 },
					.rule.action = IPBLOCK_ACTION_DENY,
					.rule.id = 1 };
	struct rulecache_entry host4 = {
		.rule.prefix = { .family = AF_INET, .len = 32, .addr = { 192, 0, 2, 1 } },
		.rule.action = IPBLOCK_ACTION_ALLOW,
		.rule.id = 2
	};
	struct rulecache_entry host6 = { .rule.prefix = { .family = AF_INET6,
							  .len = 128,
							  .addr = { 0x20, 0x01, 0x0d,
								    0xb8, [15] = 1 } },
					 .rule.action = IPBLOCK_ACTION_ALLOW,
					 .rule.id = 3 };
	uint8_t a4[4] = { 192, 0, 2, 2 }, a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };
	struct rulecache_entry got;

	(void)state;
	assert_int_equal(rulecache_insert(rc, &any4, NULL), 0);
	assert_int_equal(rulecache_insert(rc, &host4, NULL), 0);
	assert_int_equal(rulecache_insert(rc, &host6, NULL), 0);

	/* /0 catches every IPv4 address but no IPv6 one. */
	assert_int_equal(reference_lookup(rc, AF_INET, a4, &got), 0);
	assert_int_equal(got.rule.id, 1);
	assert_int_equal(reference_lookup(rc, AF_INET, host4.rule.prefix.addr, &got), 0);
	assert_int_equal(got.rule.id, 2);
	assert_int_equal(reference_lookup(rc, AF_INET6, a6, &got), -ENOENT);
	assert_int_equal(reference_lookup(rc, AF_INET6, host6.rule.prefix.addr, &got), 0);
	assert_int_equal(got.rule.id, 3);
	assert_int_equal(reference_lookup(rc, AF_UNIX, a6, &got), -EINVAL);
	rulecache_free(rc);
}

static void test_insert_update_remove_semantics(void **state)
{
	struct rulecache *rc = rulecache_new();
	struct rulecache_entry e = {
		.rule.prefix = { .family = AF_INET, .len = 8, .addr = { 10, 1, 2, 3 } },
		.rule.action = IPBLOCK_ACTION_DENY,
		.rule.id = 7,
		.added_at = 1700000000,
		.expires_at = 1800000000
	};
	struct cidr net10 = { .family = AF_INET, .len = 8, .addr = { 10 } };
	struct cidr net10_16 = { .family = AF_INET, .len = 16, .addr = { 10 } };
	struct rulecache_entry got, bad;
	bool created = false;

	(void)state;
	assert_non_null(rc);
	assert_int_equal(rulecache_find(rc, &net10, &got), -ENOENT);
	assert_int_equal(rulecache_remove(rc, &net10), -ENOENT);

	assert_int_equal(rulecache_insert(rc, &e, &created), 0);
	assert_true(created);
	/* Stored normalised, every field kept. */
	assert_int_equal(rulecache_find(rc, &net10, &got), 0);
	assert_true(same_prefix(&got.rule.prefix, &net10));
	assert_int_equal(got.rule.action, IPBLOCK_ACTION_DENY);
	assert_int_equal(got.rule.id, 7);
	assert_int_equal(got.added_at, 1700000000);
	assert_int_equal(got.expires_at, 1800000000);
	/* Exact find is exact: same address, other length is another rule. */
	assert_int_equal(rulecache_find(rc, &net10_16, NULL), -ENOENT);

	e.rule.action = IPBLOCK_ACTION_ALLOW;
	e.rule.id = 8;
	assert_int_equal(rulecache_insert(rc, &e, &created), 0);
	assert_false(created);
	assert_int_equal(rulecache_find(rc, &e.rule.prefix, &got), 0); /* host bits ignored */
	assert_int_equal(got.rule.action, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(got.rule.id, 8);
	assert_int_equal(rulecache_count(rc, AF_INET), 1);
	assert_int_equal(rulecache_count(rc, AF_INET6), 0);
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), 1);

	bad = e;
	bad.rule.action = 0;
	assert_int_equal(rulecache_insert(rc, &bad, NULL), -EINVAL);
	bad = e;
	bad.rule.prefix.len = 33;
	assert_int_equal(rulecache_insert(rc, &bad, NULL), -EINVAL);
	bad = e;
	bad.rule.prefix.family = AF_UNIX;
	assert_int_equal(rulecache_insert(rc, &bad, NULL), -EINVAL);
	assert_int_equal(rulecache_remove(rc, &bad.rule.prefix), -EINVAL);
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), 1);

	assert_int_equal(rulecache_remove(rc, &e.rule.prefix), 0);
	assert_int_equal(rulecache_remove(rc, &net10), -ENOENT);
	assert_int_equal(rulecache_find(rc, &net10, NULL), -ENOENT);
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), 0);

	/* Emptying gives the tables back. */
	for (int i = 0; i < 1000; i++) {
		e.rule.prefix = (struct cidr){ .family = AF_INET6,
					       .len = 64,
					       .addr = { 0x20, 1, [6] = i >> 8, [7] = i } };
		assert_int_equal(rulecache_insert(rc, &e, NULL), 0);
	}
	assert_true(rulecache_memory(rc) > 1000 * sizeof(struct rulecache_entry));
	rulecache_clear(rc);
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), 0);
	assert_int_equal(rulecache_find(rc, &e.rule.prefix, NULL), -ENOENT);
	assert_true(rulecache_memory(rc) < 1000 * sizeof(struct rulecache_entry));
	rulecache_free(rc);
	rulecache_free(NULL);
}

/* Every survivor still found with its own data, every removed rule gone. */
static void check_membership(struct rulecache *rc, const struct rulecache_entry *all, size_t n,
			     const bool *gone)
{
	for (size_t i = 0; i < n; i++) {
		struct rulecache_entry got;
		int ret = rulecache_find(rc, &all[i].rule.prefix, &got);

		if (gone[i]) {
			assert_int_equal(ret, -ENOENT);
		} else {
			assert_int_equal(ret, 0);
			assert_int_equal(got.rule.id, all[i].rule.id);
		}
	}
}

static void test_mass_removal_keeps_every_survivor_findable(void **state)
{
	size_t n = SCALE(20000), left = n, peak;
	struct rulecache_entry *all = calloc(n, sizeof(*all));
	bool *gone = calloc(n, sizeof(*gone));
	size_t *order = calloc(n, sizeof(*order));
	struct rulecache *rc = rulecache_new();

	(void)state;
	assert_true(all && gone && order && rc);
	/* Distinct by construction: the index is spelled into the address. */
	for (size_t i = 0; i < n; i++) {
		struct cidr *p = &all[i].rule.prefix;

		p->family = i % 4 == 3 ? AF_INET6 : AF_INET;
		p->len = p->family == AF_INET6 ? 64 : i % 4 == 2 ? 24 : 32;
		p->addr[0] = 10;
		p->addr[1] = (uint8_t)(i >> 16);
		p->addr[2] = (uint8_t)(i >> 8);
		p->addr[3] = (uint8_t)i;
		if (p->len == 24) {
			p->addr[0] = 11;
			p->addr[1] = (uint8_t)(i / 4 >> 8);
			p->addr[2] = (uint8_t)(i / 4);
			p->addr[3] = 0;
		}
		all[i].rule.action = random_action();
		all[i].rule.id = (uint32_t)i + 1;
		assert_int_equal(rulecache_insert(rc, &all[i], NULL), 0);
		order[i] = i;
	}
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), n);
	peak = rulecache_memory(rc);
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	/* Removal shifts probe runs, moves entries and shrinks tables on the way down. */
	for (size_t k = 0; k + 100 < n; k++) {
		assert_int_equal(rulecache_remove(rc, &all[order[k]].rule.prefix), 0);
		gone[order[k]] = true;
		left--;
		if (k % 2000 == 0 || left < 300)
			check_membership(rc, all, n, gone);
	}
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), left);
	check_membership(rc, all, n, gone);
	print_message("# %zu rules: %zu bytes at peak, %zu after removing all but %zu\n", n, peak,
		      rulecache_memory(rc), left);
	assert_true(rulecache_memory(rc) < peak / 8);
	free(all);
	free(gone);
	free(order);
	rulecache_free(rc);
}

struct collect {
	struct rulecache_entry *e;
	size_t n, cap, stop_after;
};

static int collect_cb(const struct rulecache_entry *e, void *ctx)
{
	struct collect *c = ctx;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->e = realloc(c->e, c->cap * sizeof(*c->e));
		if (!c->e)
			return -ENOMEM;
	}
	c->e[c->n++] = *e;
	return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

static void test_listing_follows_cidr_compare_ipv4_first(void **state)
{
	struct rulecache *rc = rulecache_new();
	struct collect c = { 0 };
	struct ref r = { 0 };

	(void)state;
	fill_random(rc, &r, SCALE(4000), 1);
	assert_int_equal(rulecache_foreach(rc, collect_cb, &c), 0);
	assert_int_equal(c.n, r.n);
	for (size_t i = 1; i < c.n; i++)
		assert_true(cidr_compare(&c.e[i - 1].rule.prefix, &c.e[i].rule.prefix) < 0);
	assert_int_equal(c.e[0].rule.prefix.family, AF_INET);
	assert_int_equal(c.e[c.n - 1].rule.prefix.family, AF_INET6);
	/* Every listed rule is the reference's, field for field. */
	for (size_t i = 0; i < c.n; i++) {
		struct rulecache_entry *want = ref_find(&r, &c.e[i].rule.prefix);

		assert_non_null(want);
		assert_memory_equal(want, &c.e[i], sizeof(*want));
	}

	/* A non-zero callback return stops the walk and comes back. */
	c.n = 0;
	c.stop_after = 10;
	assert_int_equal(rulecache_foreach(rc, collect_cb, &c), 42);
	assert_int_equal(c.n, 10);
	free(c.e);
	free(r.e);
	rulecache_free(rc);
}

static int remove_self_cb(const struct rulecache_entry *e, void *ctx)
{
	return rulecache_remove(ctx, &e->rule.prefix);
}

static void test_callbacks_may_change_the_cache(void **state)
{
	struct rulecache *rc = rulecache_new();
	struct ref r = { 0 };

	(void)state;
	fill_random(rc, &r, 500, 1);
	/* Would self-deadlock if the walk still held the read lock. */
	assert_int_equal(rulecache_foreach(rc, remove_self_cb, rc), 0);
	assert_int_equal(rulecache_count(rc, AF_UNSPEC), 0);
	free(r.e);
	rulecache_free(rc);
}

/* Diff replay: apply each change to a copy of the old set. */
struct replay {
	struct rulecache *target;
	size_t adds, updates, deletes;
	const struct rulecache *old, *new;
	struct cidr last;
	bool have_last;
};

/* Changes come in prefix order, each prefix once. */
static int replay_order(struct replay *rp, const struct cidr *p)
{
	if (rp->have_last && cidr_compare(&rp->last, p) >= 0)
		return -EINVAL;
	rp->last = *p;
	rp->have_last = true;
	return 0;
}

static int replay_gone(const struct rule *o, void *ctx)
{
	struct replay *rp = ctx;

	if (replay_order(rp, &o->prefix) || rulecache_find(rp->new, &o->prefix, NULL) != -ENOENT)
		return -EINVAL;
	rp->deletes++;
	return rulecache_remove(rp->target, &o->prefix);
}

static int replay_added(const struct rule *n, void *ctx)
{
	struct replay *rp = ctx;
	bool created;

	if (replay_order(rp, &n->prefix) || rulecache_find(rp->old, &n->prefix, NULL) != -ENOENT)
		return -EINVAL;
	rp->adds++;
	if (rulecache_insert(rp->target, &(struct rulecache_entry){ .rule = *n }, &created) ||
	    !created)
		return -EINVAL;
	return 0;
}

static int replay_changed(const struct rule *o, const struct rule *n, void *ctx)
{
	struct replay *rp = ctx;
	bool created;

	if (replay_order(rp, &n->prefix) || !same_prefix(&o->prefix, &n->prefix))
		return -EINVAL;
	rp->updates++;
	if (rulecache_insert(rp->target, &(struct rulecache_entry){ .rule = *n }, &created) ||
	    created)
		return -EINVAL;
	return 0;
}

/* The number of prefixes whose rules differ between a and b (ids included). */
static size_t diff_count(const struct rulecache *a, const struct rulecache *b)
{
	struct ruleset ra = {}, rb = {};
	struct ruleset_delta d;

	assert_int_equal(rulecache_rules(a, &ra), 0);
	assert_int_equal(rulecache_rules(b, &rb), 0);
	ruleset_delta(ra.r, ra.n, rb.r, rb.n, &d);
	ruleset_free(&ra);
	ruleset_free(&rb);
	return d.gone + d.added + d.changed;
}

static int copy_cb(const struct rulecache_entry *e, void *ctx)
{
	return rulecache_insert(ctx, e, NULL);
}

static void test_diff_of_two_caches_applied_to_a_yields_b(void **state)
{
	static const struct ruleset_diff replay = { replay_gone, replay_added, replay_changed };
	struct rulecache *a = rulecache_new(), *b = rulecache_new(), *work = rulecache_new();
	struct ref ra = { 0 }, rb = { 0 };
	struct replay rp = { .target = work, .old = a, .new = b };
	struct collect cw = { 0 }, cb = { 0 };
	struct ruleset sa = {}, sb = {};
	size_t n = SCALE(4000);

	(void)state;
	/* B: part of A as is, part of A with the action flipped, and new rules. */
	fill_random(a, &ra, n, 1);
	for (size_t i = 0; i < ra.n; i++) {
		struct rulecache_entry e = ra.e[i];

		switch (rnd() % 4) {
		case 0:
			continue; /* dropped */
		case 1:
			e.rule.action = e.rule.action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW
									     : IPBLOCK_ACTION_DENY;
			break;
		default:
			break;
		}
		both_insert(b, &rb, &e);
	}
	fill_random(b, &rb, n / 3, 100000);

	assert_int_equal(rulecache_foreach(a, copy_cb, work), 0);
	assert_int_equal(rulecache_rules(a, &sa), 0);
	assert_int_equal(rulecache_rules(b, &sb), 0);
	assert_int_equal(ruleset_diff(sa.r, sa.n, sb.r, sb.n, &replay, &rp), 0);
	assert_true(rp.adds > 0 && rp.updates > 0 && rp.deletes > 0);

	/* work is now B, prefix for prefix and action for action. */
	assert_int_equal(rulecache_foreach(work, collect_cb, &cw), 0);
	assert_int_equal(rulecache_foreach(b, collect_cb, &cb), 0);
	assert_int_equal(cw.n, cb.n);
	for (size_t i = 0; i < cw.n; i++) {
		assert_true(same_prefix(&cw.e[i].rule.prefix, &cb.e[i].rule.prefix));
		assert_int_equal(cw.e[i].rule.action, cb.e[i].rule.action);
	}
	assert_int_equal(diff_count(work, b), 0);
	assert_int_equal(diff_count(b, b), 0);
	print_message("# diff of %zu -> %zu rules: %zu adds, %zu updates, %zu deletes\n", ra.n,
		      rb.n, rp.adds, rp.updates, rp.deletes);

	/* A rule id change is an update too. */
	rulecache_clear(work);
	assert_int_equal(rulecache_foreach(b, copy_cb, work), 0);
	cb.e[0].rule.id += 1000000;
	assert_int_equal(rulecache_insert(work, &cb.e[0], NULL), 0);
	assert_int_equal(diff_count(b, work), 1);

	ruleset_free(&sa);
	ruleset_free(&sb);
	free(cw.e);
	free(cb.e);
	free(ra.e);
	free(rb.e);
	rulecache_free(a);
	rulecache_free(b);
	rulecache_free(work);
}

/*
 * Concurrency: one writer keeps 10.0.0.0/8 deny and churns /24 allows inside
 * it, rewriting each with rule_id == expires_at so a torn copy shows.
 * Readers must always find a rule for 10.x and never a torn one.
 */
struct churn {
	struct rulecache *rc;
	int rounds;
	_Atomic int done;
	_Atomic uint64_t lookups, listings;
};

static void *churn_writer(void *arg)
{
	struct churn *c = arg;

	for (int i = 0; i < c->rounds; i++) {
		uint32_t v = (uint32_t)i + 1;
		struct rulecache_entry e = { .rule.prefix = { .family = AF_INET,
							      .len = 24,
							      .addr = { 10, (uint8_t)(i % 64),
									(uint8_t)(i / 64 % 4) } },
					     .rule.action = IPBLOCK_ACTION_ALLOW,
					     .rule.id = v,
					     .expires_at = v };

		int ret;

		/* Writers win the lock; pausing now and then lets the readers overlap with us. */
		if (atomic_load(&c->lookups) < (uint64_t)i)
			sched_yield();
		CHECK_T(rulecache_insert(c->rc, &e, NULL) == 0);
		if (i % 3 == 0) {
			e.rule.prefix.addr[1] = (uint8_t)((i + 32) % 64);
			ret = rulecache_remove(c->rc, &e.rule.prefix);
			CHECK_T(ret == 0 || ret == -ENOENT);
		}
	}
	atomic_store(&c->done, 1);
	return NULL;
}

static int check_entry_cb(const struct rulecache_entry *e, void *ctx)
{
	(void)ctx;
	CHECK_T(e->rule.id == e->expires_at);
	return 0;
}

static void *churn_reader(void *arg)
{
	struct churn *c = arg;
	uint32_t x = (uint32_t)(uintptr_t)&x | 1; /* private generator: rnd() is not shared */
	int i = 0;

	/* Bounded even if the writer were stuck. */
	for (; !atomic_load(&c->done) && i < 10 * c->rounds; i++) {
		struct rulecache_entry got;
		uint8_t a[4];

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		a[0] = 10;
		a[1] = (uint8_t)x;
		a[2] = (uint8_t)((x >> 8) % 8);
		a[3] = 1;

		CHECK_T(reference_lookup(c->rc, AF_INET, a, &got) == 0);
		if (got.rule.prefix.len == 24)
			CHECK_T(got.rule.id == got.expires_at && got.rule.prefix.addr[1] == a[1] &&
				got.rule.prefix.addr[2] == a[2]);
		else
			CHECK_T(got.rule.prefix.len == 8 && got.rule.action == IPBLOCK_ACTION_DENY);
		atomic_fetch_add(&c->lookups, 1);
		if (i % 256 == 0) {
			CHECK_T(rulecache_foreach(c->rc, check_entry_cb, NULL) == 0);
			CHECK_T(rulecache_count(c->rc, AF_INET) >= 1);
			atomic_fetch_add(&c->listings, 1);
		}
	}
	return NULL;
}

static void test_readers_see_whole_rules_while_a_writer_churns(void **state)
{
	enum { READERS = 3 };
	struct rulecache *rc = rulecache_new();
	struct churn c = { .rc = rc, .rounds = SCALE(40000) };
	struct rulecache_entry base = {
		.rule.prefix = { .family = AF_INET, .len = 8, .addr = { 10 } },
		.rule.action = IPBLOCK_ACTION_DENY
	};
	pthread_t t[READERS + 1];

	(void)state;
	assert_int_equal(rulecache_insert(rc, &base, NULL), 0);
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn_reader, &c), 0);
	assert_int_equal(pthread_create(&t[READERS], NULL, churn_writer, &c), 0);
	for (int i = 0; i <= READERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	print_message("# %llu lookups, %llu listings during %d writes\n",
		      (unsigned long long)atomic_load(&c.lookups),
		      (unsigned long long)atomic_load(&c.listings), c.rounds);
	assert_int_equal(atomic_load(&thread_errors), 0);
	assert_true(atomic_load(&c.lookups) > 0 && atomic_load(&c.listings) > 0);
	rulecache_free(rc);
}

/* A bijection on the low `bits` bits: distinct i give distinct prefixes. */
static uint32_t scatter(uint32_t i, unsigned int bits)
{
	uint64_t m = bits == 32 ? 0xffffffffull : (1ull << bits) - 1;

	return (uint32_t)(((uint64_t)i * 0x9e3779b1u) & m);
}

static void test_million_prefixes_load_in_under_a_second(void **state)
{
	enum { N = 1000000 };
	struct rulecache_entry *in = malloc(N * sizeof(*in));
	struct rulecache *rc = rulecache_new();
	uint32_t per_len[3] = { 0 };
	uint64_t t0, c0, t_insert, c_insert, t_lookup, t_list;
	size_t bytes, hits = 0;
	struct collect c = { 0 };

	(void)state;
	assert_non_null(in);
	/* Half host routes, the rest /24 and /20 networks: all distinct. */
	for (uint32_t i = 0; i < N; i++) {
		static const unsigned int lens[3] = { 32, 24, 20 };
		unsigned int k = i % 10 < 5 ? 0 : i % 10 < 8 ? 1 : 2;
		uint32_t a = scatter(per_len[k]++, lens[k]) << (32 - lens[k]);

		in[i] = (struct rulecache_entry){ .rule.prefix = { .family = AF_INET,
								   .len = lens[k] },
						  .rule.action = random_action(),
						  .rule.id = i + 1 };
		in[i].rule.prefix.addr[0] = a >> 24;
		in[i].rule.prefix.addr[1] = a >> 16;
		in[i].rule.prefix.addr[2] = a >> 8;
		in[i].rule.prefix.addr[3] = a;
	}

	t0 = now_ns();
	c0 = cpu_ns();
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(rulecache_insert(rc, &in[i], NULL), 0);
	t_insert = now_ns() - t0;
	c_insert = cpu_ns() - c0;
	assert_int_equal(rulecache_count(rc, AF_INET), N);

	t0 = now_ns();
	for (uint32_t i = 0; i < N; i++) {
		/* The rule by its prefix, host bits set (ignored). */
		struct cidr p = in[i].rule.prefix;

		p.addr[3] |= p.len < 32;
		hits += rulecache_find(rc, &p, NULL) == 0;
	}
	t_lookup = now_ns() - t0;
	assert_int_equal(hits, N);

	t0 = now_ns();
	assert_int_equal(rulecache_foreach(rc, collect_cb, &c), 0);
	t_list = now_ns() - t0;
	assert_int_equal(c.n, N);

	bytes = rulecache_memory(rc);
	print_message("# 1M IPv4 prefixes: insert %.0f ms (%.0f ms CPU), 1M finds %.0f ms, "
		      "sorted walk %.0f ms; %zu bytes = %.1f bytes/rule (entry %zu)%s\n",
		      t_insert / 1e6, c_insert / 1e6, t_lookup / 1e6, t_list / 1e6, bytes,
		      (double)bytes / N, sizeof(struct rulecache_entry),
		      UNDER_SANITIZER ? " [sanitizer build: not asserted]" : "");
	/*
	 * CPU time of this thread (page faults included) is what the cache
	 * costs; wall time on a shared machine also measures the neighbours.
	 */
	if (!UNDER_SANITIZER)
		assert_true(c_insert < 1000000000ull);
	free(c.e);
	free(in);
	rulecache_free(rc);
}

/*
 * harness_verdict_src() with the frame placed the way drivers place it
 * (NET_IP_ALIGN): 2 bytes into an aligned buffer, so the IP header after the
 * 14-byte Ethernet header is 4-byte aligned.  frame_build() writes the
 * header through struct pointers, which UBSan rejects at an odd offset.
 */
static int verdict_src(struct harness *h, int family, const uint8_t *src, int *verdict)
{
	struct frame_spec s = { .family = family, .payload = 18 };
	_Alignas(8) uint8_t raw[258];
	uint8_t *buf = raw + 2;
	size_t len;

	memcpy(s.src, src, family == AF_INET ? 4 : 16);
	len = frame_build(&s, buf, sizeof(raw) - 2);
	if (!len)
		return -EINVAL;
	return harness_run(h, buf, len, verdict);
}

/*
 * The cache holds the rule set the kernel judges by: the same random rules
 * in the XDP program's maps give the verdict the reference longest match
 * over the cache implies, and the maps read back into a cache give it again.
 */
static void test_kernel_verdicts_match_the_cache(void **state)
{
	struct rulecache *rc = rulecache_new(), *loaded = rulecache_new();
	size_t probes = SCALE(4000), mismatches = 0, drops = 0;
	struct ruleset back = {};
	struct harness h;
	struct collect c = { 0 };
	struct ref r = { 0 };
	int ret;

	(void)state;
	ret = harness_open(&h);
	if (ret == -EPERM || ret == -EACCES) {
		print_message("# cannot load BPF programs here (%s): skipped\n", strerror(-ret));
		skip();
	}
	assert_int_equal(ret, 0);

	fill_random(rc, &r, SCALE(3000), 1);
	assert_int_equal(rulecache_foreach(rc, collect_cb, &c), 0);
	for (size_t i = 0; i < c.n; i++) {
		struct rule rule = c.e[i].rule;

		assert_int_equal(maps_rule_set(&h.maps, &rule), 0);
	}

	/*
	 * Reading the maps back gives the same set (rule ids are the maps'
	 * own: the flat tables hand them out).
	 */
	assert_int_equal(trie_read(&h.pins, &back), 0);
	for (size_t i = 0; i < back.n; i++)
		back.r[i].id = 0;
	assert_int_equal(rulecache_load(loaded, back.r, back.n), 0);
	ruleset_free(&back);
	assert_int_equal(rulecache_count(loaded, AF_UNSPEC), c.n);
	for (size_t i = 0; i < c.n; i++)
		c.e[i].rule.id = 0;
	rulecache_clear(rc);
	for (size_t i = 0; i < c.n; i++)
		assert_int_equal(rulecache_insert(rc, &c.e[i], NULL), 0);
	assert_int_equal(diff_count(rc, loaded), 0);

	for (size_t i = 0; i < probes; i++) {
		int family = i % 2 ? AF_INET : AF_INET6, verdict = -1, want;
		struct rulecache_entry got;
		uint8_t a[16];

		probe_addr(family, a);
		ret = reference_lookup(rc, family, a, &got);
		assert_true(ret == 0 || ret == -ENOENT);
		want = ret == 0 && got.rule.action == IPBLOCK_ACTION_DENY ? XDP_DROP : XDP_PASS;
		assert_int_equal(verdict_src(&h, family, a, &verdict), 0);
		if (verdict != want && mismatches++ < 5) {
			char buf[CIDR_STRLEN];
			struct cidr host = { .family = family, .len = bits_of(family) };

			memcpy(host.addr, a, 16);
			print_message("# %s: kernel %d, cache %d (rule %s)\n",
				      cidr_format(&host, buf, sizeof(buf)), verdict, want,
				      ret ? "none"
					  : cidr_format(&got.rule.prefix, (char[CIDR_STRLEN]){ 0 },
							CIDR_STRLEN));
		}
		drops += want == XDP_DROP;
	}
	print_message("# %zu rules in the kernel, %zu probes (%zu dropped), %zu mismatches\n", c.n,
		      probes, drops, mismatches);
	assert_int_equal(mismatches, 0);
	/* Both verdicts must have been exercised. */
	assert_true(drops > 0 && drops < probes);

	harness_close(&h);
	free(c.e);
	free(r.e);
	rulecache_free(rc);
	rulecache_free(loaded);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_update_remove_semantics),
		cmocka_unit_test(test_zero_length_and_host_routes_are_edges_not_errors),
		cmocka_unit_test(test_longest_match_agrees_with_brute_force),
		cmocka_unit_test(test_mass_removal_keeps_every_survivor_findable),
		cmocka_unit_test(test_listing_follows_cidr_compare_ipv4_first),
		cmocka_unit_test(test_callbacks_may_change_the_cache),
		cmocka_unit_test(test_diff_of_two_caches_applied_to_a_yields_b),
		cmocka_unit_test(test_readers_see_whole_rules_while_a_writer_churns),
		cmocka_unit_test(test_million_prefixes_load_in_under_a_second),
		cmocka_unit_test(test_kernel_verdicts_match_the_cache),
	};
	const char *seed = getenv("RULECACHE_SEED");

	/* Fixed by default so CI is repeatable; set it to explore other sets. */
	rng_state = seed ? strtoull(seed, NULL, 0) : 20261123;
	if (!rng_state)
		rng_state = 1;
	printf("# RULECACHE_SEED=%llu\n", (unsigned long long)rng_state);
	init_bases();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
