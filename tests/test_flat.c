// SPDX-License-Identifier: GPL-2.0
/*
 * The flat lookup tables against the rule cache's reference LPM: random rule
 * sets (nested allows and denies, /0, host routes), incremental adds,
 * deletes and updates, fallback when a table runs out of room, two sets
 * sharing ids, and the BPF reader run by BPF_PROG_RUN over the same tables.
 *
 * FLAT_SEED=n repeats a run; FLAT_BENCH=1 adds the 1M-rule measurements
 * (BPF ns/packet, update and compile cost), which take a minute;
 * FLAT_ONLY=pattern runs the matching tests only.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cmocka.h>
#include <linux/bpf.h>

#include "cidr.h"
#include "flat.h"
#include "tables.h"
#include "trie.h"
#include "harness.h"
#include "reference.h"
#include "rulecache.h"
#include "tests/flat_test.skel.h"

#ifdef __SANITIZE_ADDRESS__
#define SCALE 4 /* sizes divide by this under ASan */
#else
#define SCALE 1
#endif

/* --- random numbers, addresses ----------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

static void seed(void)
{
	const char *s = getenv("FLAT_SEED");

	rng_state = s ? strtoull(s, NULL, 0)
		      : ((uint64_t)time(NULL) << 20 ^ (uint64_t)getpid()) * 2654435761u + 1;
	if (!rng_state)
		rng_state = 1;
	printf("# FLAT_SEED=%llu\n", (unsigned long long)rng_state);
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

/* --- rule sets ------------------------------------------------------------------ */

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

/* --- the reference: a rule cache of struct rule ---------------------------------- */

static int ref_insert(struct rulecache *rc, const struct rule *r, bool *created)
{
	return rulecache_insert(rc, &(struct rulecache_entry){ .rule = *r }, created);
}

static int ref_remove(struct rulecache *rc, const struct cidr *p)
{
	return rulecache_remove(rc, p);
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

/* The rule that judges addr; -ENOENT when none. */
static int ref_lookup(const struct rulecache *rc, int family, const uint8_t *addr, struct rule *out)
{
	struct rulecache_entry e;
	int ret = reference_lookup(rc, family, addr, &e);

	if (!ret)
		*out = e.rule;
	return ret;
}

/* Every rule of rc, sorted. */
static void ref_rules(const struct rulecache *rc, struct ruleset *out);

/* The rule set under test: the reference cache and a list to pick from. */
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

/*
 * A prefix not yet in r: half the time inside (or around) an existing
 * rule so that rules nest; IPv6 mostly in 2000::/3 like real lists.
 */
static void gen_prefix(const struct rules *r, struct cidr *p)
{
	struct rule dummy;

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
	} while (!ref_find(r->rc, p, &dummy));
}

/* Add a fresh random rule with an id from ids; *out gets it. */
static void gen_rule(struct rules *r, struct flat_ids *ids, struct rule *out)
{
	struct rule e = { 0 };

	gen_prefix(r, &e.prefix);
	e.action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
	assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
	assert_int_equal(ref_insert(r->rc, &e, NULL), 0);
	rules_push(r, &e);
	*out = e;
}

/* --- tables on malloc'd memory ------------------------------------------------- */

struct table {
	struct flat_sizes sz;
	void *top, *data;
	struct flat t;
};

/* The parent callback over the reference: longest rule <= p->len covering p. */
static int cache_parent(void *ctx, const struct cidr *p, struct rule *out)
{
	struct rulecache_entry e;
	int ret = reference_match(ctx, p, &e);

	if (!ret)
		*out = e.rule;
	return ret;
}

static void ids_new(struct flat_ids *ids, uint32_t n)
{
	flat_ids_attach(ids, calloc(n, sizeof(struct flat_rule)), n);
	assert_non_null(ids->rules);
}

static void table_new_sized(struct table *tb, int family, const struct flat_sizes *sz,
			    struct flat_ids *ids, unsigned int set, struct rulecache *ref)
{
	tb->sz = *sz;
	tb->top = calloc(sz->top_elems, FLAT_TOP_VALUE_SIZE);
	tb->data = calloc(sz->data_elems, FLAT_DATA_VALUE_SIZE);
	assert_non_null(tb->top);
	assert_non_null(tb->data);
	assert_int_equal(
		flat_attach(&tb->t, family, sz, tb->top, tb->data, ids, set, cache_parent, ref), 0);
	tb->t.quarantine_ms = 0;
}

static void table_new(struct table *tb, int family, uint32_t max_rules, struct flat_ids *ids,
		      unsigned int set, struct rulecache *ref)
{
	struct flat_sizes sz;

	assert_int_equal(flat_sizes(family, max_rules, &sz), 0);
	table_new_sized(tb, family, &sz, ids, set, ref);
}

static void table_free(struct table *tb)
{
	free(tb->top);
	free(tb->data);
}

/* flat_add() of prefix p with id and deny. */
static int put_prefix(struct flat *t, const struct cidr *p, uint32_t id, bool deny, uint32_t old_id)
{
	struct rule r = { .prefix = *p,
			  .action = deny ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW,
			  .id = id };

	return flat_add(t, &r, old_id);
}

/* flat_delete() of prefix p, whose id is id. */
static int drop_prefix(struct flat *t, const struct cidr *p, uint32_t id)
{
	struct rule r = { .prefix = *p, .id = id };

	return flat_delete(t, &r);
}

static void ref_rules(const struct rulecache *rc, struct ruleset *out)
{
	*out = (struct ruleset){};
	assert_int_equal(rulecache_rules(rc, out), 0);
}

/*
 * Bring t from the rules of have to those of want, ids included: their
 * diff through flat_apply().  *changes (may be NULL) gets its length.
 */
static int table_sync(struct flat *t, const struct rulecache *have, const struct rulecache *want,
		      size_t *changes)
{
	struct ruleset a, b;
	struct ruleset_changes d = {};
	int ret;

	ref_rules(have, &a);
	ref_rules(want, &b);
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

/* --- equivalence ---------------------------------------------------------------- */

static uint32_t reference_entry(const struct rulecache *rc, int family, const uint8_t *addr)
{
	struct rule e;

	if (ref_lookup(rc, family, addr, &e))
		return 0;
	return e.id << 1 | (e.action == IPBLOCK_ACTION_DENY);
}

static size_t fallbacks_seen;

static void check_addr(const struct flat *t, const struct rulecache *rc, int family,
		       const uint8_t *addr)
{
	uint32_t want = reference_entry(rc, family, addr), got = flat_judge(t, addr);

	/* A region that fell back is judged by the authoritative store. */
	if (got == FLAT_FALLBACK) {
		fallbacks_seen++;
		got = want;
	}
	if (got != want) {
		struct cidr c = { .family = (uint8_t)family, .len = (uint8_t)width_of(family) };
		char buf[CIDR_STRLEN];

		memcpy(c.addr, addr, 16);
		fail_msg("%s: flat says id %u %s, reference says id %u %s",
			 cidr_format(&c, buf, sizeof(buf)), got >> 1, got & 1 ? "deny" : "allow",
			 want >> 1, want & 1 ? "deny" : "allow");
	}
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

/*
 * Every block summary is exact between operations: the plain entry all of
 * the block's top entries hold, or FLAT_SUM_MIXED when they differ or one
 * needs more than top.  Returns the number of mixed blocks.
 */
static uint32_t check_sums(const struct flat *t)
{
	uint32_t nblocks = 1u << (t->top_bits - FLAT_SUM_SHIFT), mixed = 0;

	for (uint32_t b = 0; b < nblocks; b++) {
		const uint32_t *e = &t->top[b << FLAT_SUM_SHIFT];
		uint32_t want = e[0] & FLAT_EXT ? FLAT_SUM_MIXED : e[0];

		for (uint32_t i = 1; i < (1u << FLAT_SUM_SHIFT) && want != FLAT_SUM_MIXED; i++)
			if (e[i] != want)
				want = FLAT_SUM_MIXED;
		if (t->sum[b] != want)
			fail_msg("block %u: summary %#x, its top entries say %#x", b, t->sum[b],
				 want);
		mixed += want == FLAT_SUM_MIXED;
	}
	return mixed;
}

/*
 * Every long rule's bloom bit is set in its region's record (a clear bit
 * would skip a probe that hits).  exact: no other bit is set either (a
 * table only added to), unless the record was made without knowing its
 * rules (all bits).
 */
static void check_blooms(const struct flat *t, bool exact)
{
	uint32_t *want = calloc((size_t)1 << t->top_bits, sizeof(*want));
	uint32_t nslots = 1u << t->slot_bits;

	assert_non_null(want);
	for (uint32_t i = 0; i < nslots; i++) {
		const struct flat_slot *s = &t->slots[i];
		uint32_t tag = (uint32_t)(s->word >> 32);

		if (!tag || tag > 128)
			continue;
		want[s->hi >> (64 - t->top_bits)] |= flat_bloom_bit(flat_hash(s->hi, s->lo, tag));
	}
	for (uint32_t r = 0; r < (1u << t->top_bits); r++) {
		uint32_t e = t->top[r];
		const struct flat_ext *x;

		if (!want[r] || e == FLAT_FALLBACK)
			continue;
		assert_true(e & FLAT_EXT);
		x = &t->ext[(e & ~FLAT_EXT) - FLAT_SLOT_BASE - nslots];
		if ((x->bloom & want[r]) != want[r])
			fail_msg("region %u: bloom %#x lacks bits %#x of its rules", r, x->bloom,
				 want[r] & ~x->bloom);
		if (exact && x->bloom != want[r] && x->bloom != ~0u)
			fail_msg("region %u: bloom %#x, its rules set %#x", r, x->bloom, want[r]);
	}
	free(want);
}

/* The entry of slot key (hi, lo, len) by a plain scan from its home, or 0. */
static uint32_t slot_entry(const struct flat *t, __u64 hi, __u64 lo, uint32_t len)
{
	uint32_t mask = (1u << t->slot_bits) - 1, i = flat_home(hi, lo, len, t->slot_bits);

	for (int n = 0; n < FLAT_MAX_PROBE; n++, i = (i + 1) & mask) {
		const struct flat_slot *s = &t->slots[i];

		if (!(s->word >> 32))
			return 0;
		if ((s->word >> 32) == len && s->hi == hi && s->lo == lo)
			return (uint32_t)s->word;
	}
	return 0;
}

/*
 * An IPv4 region whose record keeps its rule inline has exactly that one
 * long rule, and the hash holds it with the same entry.  Returns how many
 * regions keep one.
 */
static uint32_t check_inline(const struct flat *t)
{
	uint32_t n = 0, nslots = 1u << t->slot_bits;

	for (uint32_t r = 0; t->width == 32 && r < (1u << t->top_bits); r++) {
		uint32_t e = t->top[r], len;
		const struct flat_ext *x;
		__u64 hi;

		if (e == FLAT_FALLBACK || !(e & FLAT_EXT))
			continue;
		x = &t->ext[(e & ~FLAT_EXT) - FLAT_SLOT_BASE - nslots];
		if (!flat_lens_is_inline(x->lens))
			continue;
		len = x->lens & 0xff;
		hi = ((__u64)r << 8 | ((x->lens >> 16) & 0xff)) << 32;
		if (x->nlong != 1 || len <= t->top_bits ||
		    slot_entry(t, hi, 0, len) != (uint32_t)(x->lens >> 32))
			fail_msg("region %u: inline rule /%u entry %#x, %u long rules, hash says "
				 "%#x",
				 r, len, (uint32_t)(x->lens >> 32), x->nlong,
				 slot_entry(t, hi, 0, len));
		n++;
	}
	return n;
}

/* Header counters agree with the rule set (long rules) and the top entries (blocks). */
static void check_stats(const struct flat *t, const struct rules *r)
{
	struct flat_stats st;
	uint32_t nlong = 0, mixed = check_sums(t);

	check_blooms(t, false);
	check_inline(t);
	for (size_t i = 0; i < r->n; i++)
		nlong += r->v[i].prefix.len > t->top_bits;
	flat_stats(t, &st);
	assert_int_equal(st.long_rules, nlong);
	assert_int_equal(st.mixed_blocks, mixed);
	assert_int_equal(st.blocks, 1u << (t->top_bits - FLAT_SUM_SHIFT));
}

/* --- tests: whole rule sets -------------------------------------------------------- */

static void random_set_matches_reference(int family, size_t nrules)
{
	struct flat_ids ids;
	struct table tb;
	struct rules r;
	struct flat_stats st;

	rules_init(&r, family);
	ids_new(&ids, 2 * (uint32_t)nrules + 8);
	table_new(&tb, family, (uint32_t)nrules + 4, &ids, 0, r.rc);

	/* The extremes are always there: everything, and single hosts. */
	struct rule e = { .prefix = { .family = (uint8_t)family, .len = 0 },
			  .action = IPBLOCK_ACTION_ALLOW };
	assert_int_equal(flat_ids_alloc(&ids, 0, &e.id), 0);
	assert_int_equal(ref_insert(r.rc, &e, NULL), 0);
	rules_push(&r, &e);
	while (r.n < nrules)
		gen_rule(&r, &ids, &e);

	assert_int_equal(flat_build(&tb.t, r.v, r.n), 0);

	fallbacks_seen = 0;
	check_all(&tb.t, &r, 200000 / SCALE);
	check_stats(&tb.t, &r);
	check_blooms(&tb.t, true);
	/* A random set has regions with one long rule: those keep it inline. */
	if (family == AF_INET)
		assert_true(check_inline(&tb.t) > 0);
	flat_stats(&tb.t, &st);
	printf("# %s: %zu rules, %u long, %u ext regions, %u fallback regions\n",
	       family == AF_INET ? "v4" : "v6", r.n, st.long_rules, st.ext_regions,
	       st.fallback_regions);
	for (size_t i = 0; i < r.n; i++)
		assert_true(ids.rules[r.v[i].id].sets & 1);

	table_free(&tb);
	free(ids.rules);
	rules_free(&r);
}

static void test_v4_random_rules_match_reference(void **state)
{
	(void)state;
	random_set_matches_reference(AF_INET, 20000 / SCALE);
}

static void test_v6_random_rules_match_reference(void **state)
{
	(void)state;
	random_set_matches_reference(AF_INET6, 20000 / SCALE);
}

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
		struct flat_ids ids;
		struct table tb;
		struct rules r;

		rules_init(&r, family);
		ids_new(&ids, 64);
		table_new(&tb, family, 16, &ids, 0, r.rc);
		for (int i = 0; i < 7; i++) {
			struct rule e = { .action = i % 2 ? IPBLOCK_ACTION_DENY
							  : IPBLOCK_ACTION_ALLOW };

			assert_int_equal(cidr_parse(txt[i], &e.prefix, NULL, NULL, 0), 0);
			assert_int_equal(flat_ids_alloc(&ids, e.prefix.len, &e.id), 0);
			assert_int_equal(ref_insert(r.rc, &e, NULL), 0);
			rules_push(&r, &e);
			assert_int_equal(flat_add(&tb.t, &e, 0), 0);
			check_all(&tb.t, &r, 2000);
			check_sums(&tb.t);
		}
		/* Take them away again, outermost first: the inner ones stay. */
		for (int i = 0; i < 7; i++) {
			assert_int_equal(ref_remove(r.rc, &r.v[i].prefix), 0);
			assert_int_equal(flat_delete(&tb.t, &r.v[i]), 0);
			for (int j = i + 1; j < 7; j++)
				check_edges(&tb.t, r.rc, &r.v[j].prefix);
			check_random(&tb.t, &r, 2000);
			check_sums(&tb.t);
		}
		check_stats(&tb.t, &(struct rules){ .family = family });
		table_free(&tb);
		free(ids.rules);
		rules_free(&r);
	}
}

/* Add (action given) or delete (action 0) one rule by its text; returns its entry. */
static uint32_t step_text(struct table *tb, struct flat_ids *ids, struct rules *r, const char *txt,
			  int action)
{
	struct rule e = { .action = (uint8_t)action };

	assert_int_equal(cidr_parse(txt, &e.prefix, NULL, NULL, 0), 0);
	if (!action) {
		for (size_t i = 0; i < r->n; i++) {
			if (r->v[i].prefix.len == e.prefix.len &&
			    !memcmp(r->v[i].prefix.addr, e.prefix.addr, 16)) {
				e = r->v[i];
				assert_int_equal(ref_remove(r->rc, &e.prefix), 0);
				r->v[i] = r->v[--r->n];
				assert_int_equal(flat_delete(&tb->t, &e), 0);
				return 0;
			}
		}
		fail_msg("%s is not in the set", txt);
	}
	assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
	assert_int_equal(ref_insert(r->rc, &e, NULL), 0);
	rules_push(r, &e);
	assert_int_equal(flat_add(&tb->t, &e, 0), 0);
	return e.id << 1 | (action == IPBLOCK_ACTION_DENY);
}

/*
 * Block summaries by hand: a block (/16) answers from its summary while all
 * its regions agree and need no ext record, and goes back to that as soon
 * as they do again.
 */
static void test_block_summaries_follow_the_rules(void **state)
{
	const int D = IPBLOCK_ACTION_DENY, A = IPBLOCK_ACTION_ALLOW;
	struct flat_ids ids;
	struct table tb;
	struct rules r;
	uint32_t e8, e16, e20;
	(void)state;

	rules_init(&r, AF_INET);
	ids_new(&ids, 64);
	table_new(&tb, AF_INET, 16, &ids, 0, r.rc);
	assert_int_equal(check_sums(&tb.t), 0);

	/* A /24 mixes its block, and only it. */
	step_text(&tb, &ids, &r, "10.1.2.0/24", D);
	assert_int_equal(check_sums(&tb.t), 1);
	assert_int_equal(tb.t.sum[10 << 8 | 1], FLAT_SUM_MIXED);
	/* A /8 over it: 255 blocks take its entry, 10.1/16 stays mixed. */
	e8 = step_text(&tb, &ids, &r, "10.0.0.0/8", D);
	assert_int_equal(check_sums(&tb.t), 1);
	assert_int_equal(tb.t.sum[10 << 8 | 200], e8);
	/* A /16 allow inside: its block is mixed still (the /24 is longer). */
	e16 = step_text(&tb, &ids, &r, "10.1.0.0/16", A);
	assert_int_equal(check_sums(&tb.t), 1);
	step_text(&tb, &ids, &r, "10.1.2.0/24", 0);
	assert_int_equal(check_sums(&tb.t), 0);
	assert_int_equal(tb.t.sum[10 << 8 | 1], e16);
	/* A /32 needs an ext record: mixed while it is there. */
	step_text(&tb, &ids, &r, "10.7.8.9/32", A);
	assert_int_equal(check_sums(&tb.t), 1);
	assert_int_equal(tb.t.sum[10 << 8 | 7], FLAT_SUM_MIXED);
	step_text(&tb, &ids, &r, "10.7.8.9/32", 0);
	assert_int_equal(check_sums(&tb.t), 0);
	assert_int_equal(tb.t.sum[10 << 8 | 7], e8);
	/* Rules that cut blocks in two: a /12 is 16 whole blocks, a /17 half of one. */
	step_text(&tb, &ids, &r, "172.16.0.0/12", D);
	step_text(&tb, &ids, &r, "172.20.128.0/17", A);
	assert_int_equal(check_sums(&tb.t), 1);
	assert_int_equal(tb.t.sum[172 << 8 | 20], FLAT_SUM_MIXED);
	step_text(&tb, &ids, &r, "172.20.0.0/17", A);
	assert_int_equal(check_sums(&tb.t), 1);
	e20 = step_text(&tb, &ids, &r, "172.20.0.0/16", D);
	step_text(&tb, &ids, &r, "172.20.128.0/17", 0);
	assert_int_equal(check_sums(&tb.t), 1);
	step_text(&tb, &ids, &r, "172.20.0.0/17", 0);
	assert_int_equal(check_sums(&tb.t), 0);
	assert_int_equal(tb.t.sum[172 << 8 | 20], e20);
	check_all(&tb.t, &r, 20000);
	check_stats(&tb.t, &r);

	/* Everything deleted: every block is "no rule" again. */
	while (r.n) {
		struct rule e = r.v[--r.n];

		assert_int_equal(ref_remove(r.rc, &e.prefix), 0);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
	}
	assert_int_equal(check_sums(&tb.t), 0);
	assert_int_equal(tb.t.sum[10 << 8 | 200], 0);
	table_free(&tb);
	free(ids.rules);
	rules_free(&r);
}

/* Every block whose summary answers has that entry in all its top entries. */
static void check_sums_safe(const struct flat *t)
{
	for (uint32_t b = 0; b < (1u << (t->top_bits - FLAT_SUM_SHIFT)); b++) {
		const uint32_t *e = &t->top[b << FLAT_SUM_SHIFT];

		if (t->sum[b] == FLAT_SUM_MIXED)
			continue;
		for (uint32_t i = 0; i < (1u << FLAT_SUM_SHIFT); i++)
			if (e[i] != t->sum[b])
				fail_msg("block %u answers %#x but region %u holds %#x", b,
					 t->sum[b], i, e[i]);
	}
}

/*
 * A writer killed in the middle of an operation (a CLI interrupted, the OOM
 * killer) leaves summaries that are slow at worst, never wrong: a block is
 * marked mixed before any of its entries changes.  A child process flips a
 * /8 between two rules on shared memory and is killed at random moments.
 */
static void test_killed_writer_leaves_summaries_safe(void **state)
{
	const int rounds = 40;
	struct cidr p8;
	struct flat_sizes sz;
	struct flat_ids ids;
	struct flat t;
	uint32_t id[2];
	void *top, *data, *idmem;
	int torn = 0;
	(void)state;

	assert_int_equal(flat_sizes_geom(AF_INET, 64, 16, 256, 16, &sz), 0);
	top = mmap(NULL, sz.top_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	data = mmap(NULL, sz.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	idmem = mmap(NULL, sz.ids_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(top != MAP_FAILED && data != MAP_FAILED && idmem != MAP_FAILED);
	flat_ids_attach(&ids, idmem, 16);
	assert_int_equal(flat_attach(&t, AF_INET, &sz, top, data, &ids, 0, NULL, NULL), 0);
	assert_int_equal(cidr_parse("10.0.0.0/8", &p8, NULL, NULL, 0), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(flat_ids_alloc(&ids, 8, &id[i]), 0);
	assert_int_equal(put_prefix(&t, &p8, id[0], true, 0), 0);

	for (int r = 0; r < rounds; r++) {
		struct timespec d = { .tv_nsec = (long)(50 + below(2000)) * 1000 };
		uint32_t first;
		bool mixed = false;
		pid_t parent = getpid(), pid = fork();

		assert_true(pid >= 0);
		if (!pid) {
			/* Never outlive the test, whatever ends it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0);
			/* Each step rewrites all 65,536 regions of the /8. */
			for (uint32_t k = 1;; k++)
				put_prefix(&t, &p8, id[k % 2], k % 2 == 0, id[(k + 1) % 2]);
		}
		nanosleep(&d, NULL);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		check_sums_safe(&t);
		first = t.top[10 << 16];
		for (uint32_t i = 1; i < (1u << 16) && !mixed; i++)
			mixed = t.top[10 << 16 | i] != first;
		torn += mixed;
	}
	printf("# %d of %d kills landed inside an operation\n", torn, rounds);
	/* Otherwise the test proved nothing. */
	assert_true(torn > 0);
	munmap(top, sz.top_bytes);
	munmap(data, sz.data_bytes);
	munmap(idmem, sz.ids_bytes);
}

/* --- tests: incremental changes ------------------------------------------------------ */

static void remove_at(struct rules *r, size_t i)
{
	assert_int_equal(ref_remove(r->rc, &r->v[i].prefix), 0);
	r->v[i] = r->v[--r->n];
}

/*
 * One random step: add, delete, or update (action flip, or a new id for
 * the same prefix).  The changed prefix goes into touched.
 */
static void random_step(struct rules *r, struct flat_ids *ids, struct flat *t, struct cidr *touched)
{
	uint32_t op = below(10);
	struct rule e;

	if (op < 4 || r->n < 10) {
		gen_rule(r, ids, &e);
		assert_int_equal(flat_add(t, &e, 0), 0);
		*touched = e.prefix;
	} else if (op < 8) {
		size_t i = below((uint32_t)r->n);

		e = r->v[i];
		remove_at(r, i);
		assert_int_equal(flat_delete(t, &e), 0);
		*touched = e.prefix;
	} else {
		size_t i = below((uint32_t)r->n);
		uint32_t old_id = r->v[i].id;

		e = r->v[i];
		e.action = e.action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW
							   : IPBLOCK_ACTION_DENY;
		if (op == 9)
			assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
		assert_int_equal(ref_insert(r->rc, &e, NULL), 0);
		r->v[i] = e;
		assert_int_equal(flat_add(t, &e, old_id), 0);
		if (old_id != e.id)
			assert_int_equal(ids->rules[old_id].sets, 0);
		*touched = e.prefix;
	}
}

static void incremental_matches_reference(int family)
{
	const int batches = 40, per_batch = 400 / SCALE;
	struct cidr touched[400];
	struct flat_ids ids;
	struct table tb;
	struct rules r;
	struct rule e;

	rules_init(&r, family);
	ids_new(&ids, 40000);
	table_new(&tb, family, 16000, &ids, 0, r.rc);
	for (int i = 0; i < 3000 / SCALE; i++) {
		gen_rule(&r, &ids, &e);
		assert_int_equal(flat_add(&tb.t, &e, 0), 0);
	}
	check_all(&tb.t, &r, 20000 / SCALE);
	for (int b = 0; b < batches; b++) {
		for (int i = 0; i < per_batch; i++)
			random_step(&r, &ids, &tb.t, &touched[i]);
		for (int i = 0; i < per_batch; i++)
			check_edges(&tb.t, r.rc, &touched[i]);
		for (int i = 0; i < 300; i++)
			check_edges(&tb.t, r.rc, &r.v[below((uint32_t)r.n)].prefix);
		check_random(&tb.t, &r, 5000 / SCALE);
		check_stats(&tb.t, &r);
	}
	check_all(&tb.t, &r, 20000 / SCALE);

	/* Delete everything: the table must be empty again, records freed. */
	while (r.n) {
		e = r.v[r.n - 1];
		remove_at(&r, r.n - 1);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
	}
	for (uint32_t i = 0; i < tb.sz.top_elems * 2; i += 997)
		assert_int_equal(tb.t.top[i], 0);
	struct flat_stats st;

	flat_stats(&tb.t, &st);
	assert_int_equal(st.long_rules, 0);
	assert_int_equal(st.ext_regions, 0);
	assert_int_equal(st.fallback_regions, 0);
	for (uint32_t i = 1; i < ids.n; i++)
		assert_int_equal(ids.rules[i].sets, 0);

	table_free(&tb);
	free(ids.rules);
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

/* --- tests: fallback ------------------------------------------------------------------ */

/*
 * A table with far too few slots and ext records: regions fall back, the
 * verdicts stay right (fallback asks the reference), and as rules go away
 * the regions come back.
 */
static void exhausted_table_falls_back(int family)
{
	struct flat_sizes sz;
	struct flat_stats st;
	struct flat_ids ids;
	struct table tb;
	struct rules r;
	struct rule e;
	uint32_t fixed;

	rules_init(&r, family);
	ids_new(&ids, 8000);
	assert_int_equal(flat_sizes_geom(family, 64, 24, 8192, 8000, &sz), 0);
	table_new_sized(&tb, family, &sz, &ids, 0, r.rc);
	for (int i = 0; i < 2000; i++) {
		gen_rule(&r, &ids, &e);
		assert_int_equal(flat_add(&tb.t, &e, 0), 0);
	}
	flat_stats(&tb.t, &st);
	assert_true(st.fallback_regions > 0);
	assert_true(st.missing > 0);
	/* Churn, updates included, while rules lack slots. */
	for (int i = 0; i < 1500; i++) {
		struct cidr touched;

		random_step(&r, &ids, &tb.t, &touched);
		check_edges(&tb.t, r.rc, &touched);
	}
	check_stats(&tb.t, &r);
	fallbacks_seen = 0;
	check_all(&tb.t, &r, 20000);
	assert_true(fallbacks_seen > 0);
	printf("# %s exhausted: %u regions fell back, %u rules without a slot, %zu lookups asked "
	       "the trie\n",
	       family == AF_INET ? "v4" : "v6", st.fallback_regions, st.missing, fallbacks_seen);

	/* Shrink to what fits; fallen-back regions recover. */
	while (r.n > 12) {
		size_t i = below((uint32_t)r.n);

		e = r.v[i];
		remove_at(&r, i);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
	}
	assert_int_equal(flat_repair(&tb.t, r.v, r.n, &fixed), 0);
	check_all(&tb.t, &r, 20000);
	flat_stats(&tb.t, &st);
	printf("# %s after shrinking to %zu rules and repair: %u fallback regions (%u repaired)\n",
	       family == AF_INET ? "v4" : "v6", r.n, st.fallback_regions, fixed);
	assert_int_equal(st.missing, 0);
	assert_int_equal(st.fallback_regions, 0);
	fallbacks_seen = 0;
	check_all(&tb.t, &r, 5000);
	assert_int_equal(fallbacks_seen, 0);

	table_free(&tb);
	free(ids.rules);
	rules_free(&r);
}

static void test_v4_exhausted_table_falls_back_then_recovers(void **state)
{
	(void)state;
	exhausted_table_falls_back(AF_INET);
}

static void test_v6_exhausted_table_falls_back_then_recovers(void **state)
{
	(void)state;
	exhausted_table_falls_back(AF_INET6);
}

/* Distinct lengths past /24 among the rules of r (all in one region). */
static unsigned int long_lengths(const struct rules *r)
{
	bool seen[129] = { false };
	unsigned int n = 0;

	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].prefix.len > FLAT_V6_TOP_BITS && !seen[r->v[i].prefix.len]) {
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
	struct rule dummy;

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
	} while (!ref_find(r->rc, p, &dummy));
}

/*
 * One change inside the crowded region: add (a fresh prefix from
 * gen_crowded()), delete, or flip an action (sometimes with a new id).  *e
 * gets the rule touched; returns whether it was deleted.
 */
static bool crowded_step(struct rules *r, struct flat_ids *ids, struct flat *t, struct rule *e)
{
	uint32_t op = below(20);

	memset(e, 0, sizeof(*e));
	if (op < 9 || r->n < 10) {
		gen_crowded(r, &e->prefix);
		e->action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
		assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
		assert_int_equal(ref_insert(r->rc, e, NULL), 0);
		rules_push(r, e);
		assert_int_equal(flat_add(t, e, 0), 0);
		return false;
	}
	if (op < 16) {
		size_t k = below((uint32_t)r->n);

		*e = r->v[k];
		remove_at(r, k);
		assert_int_equal(flat_delete(t, e), 0);
		return true;
	}
	size_t k = below((uint32_t)r->n);
	uint32_t old_id = r->v[k].id;

	*e = r->v[k];
	e->action = e->action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW : IPBLOCK_ACTION_DENY;
	if (op == 19)
		assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
	assert_int_equal(ref_insert(r->rc, e, NULL), 0);
	r->v[k] = *e;
	assert_int_equal(flat_add(t, e, old_id), 0);
	return false;
}

static void assert_tree(const struct flat *t, const struct rules *r)
{
	struct flat_stats st;
	bool crowded = long_lengths(r) > FLAT_MAX_LENS;

	flat_stats(t, &st);
	assert_int_equal(st.fallback_regions, 0);
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
 * gets a tree of nodes instead of the trie, through adds, churn (nested
 * rules of every length, rules over the region, action and id changes) and
 * deletes back to a plain region.
 */
static void test_v6_crowded_region_gets_a_tree(void **state)
{
	const int steps = 4000 / SCALE;
	struct flat_stats st;
	struct flat_ids ids;
	struct table tb;
	struct rules r;
	unsigned int max_nodes = 0;
	(void)state;

	rules_init(&r, AF_INET6);
	ids_new(&ids, 4096);
	table_new(&tb, AF_INET6, 1024, &ids, 0, r.rc);
	/* A chain of 12 nested lengths: the 9th splits the region. */
	for (int i = 0; i < 12; i++) {
		struct rule e = { .action = i % 2 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW };

		assert_int_equal(cidr_parse("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", &e.prefix,
					    NULL, NULL, 0),
				 0);
		e.prefix.len = (uint8_t)(32 + 8 * i);
		cidr_clear_host_bits(&e.prefix);
		assert_int_equal(flat_ids_alloc(&ids, e.prefix.len, &e.id), 0);
		assert_int_equal(ref_insert(r.rc, &e, NULL), 0);
		rules_push(&r, &e);
		assert_int_equal(flat_add(&tb.t, &e, 0), 0);
		assert_tree(&tb.t, &r);
		fallbacks_seen = 0;
		check_all(&tb.t, &r, 1000);
		assert_int_equal(fallbacks_seen, 0);
	}

	/* Churn inside the region; every lookup must agree with the reference. */
	for (int i = 0; i < steps; i++) {
		struct rule e;

		crowded_step(&r, &ids, &tb.t, &e);
		fallbacks_seen = 0;
		check_edges(&tb.t, r.rc, &e.prefix);
		check_random(&tb.t, &r, 20);
		assert_int_equal(fallbacks_seen, 0);
		if (i % 250 == 249) {
			check_all(&tb.t, &r, 2000);
			check_stats(&tb.t, &r);
			assert_tree(&tb.t, &r);
			flat_stats(&tb.t, &st);
			if (st.nodes > max_nodes)
				max_nodes = st.nodes;
		}
	}
	flat_stats(&tb.t, &st);
	printf("# crowded region after %d changes: %zu rules, %u long lengths, %u nodes (at most "
	       "%u seen)\n",
	       steps, r.n, long_lengths(&r), st.nodes, max_nodes);
	assert_true(max_nodes > 2);

	/* Down to 8 long lengths: a plain region again, no nodes left. */
	while (long_lengths(&r) > FLAT_MAX_LENS) {
		size_t k = r.n - 1;
		struct rule e;

		for (size_t j = 0; j < r.n; j++)
			if (r.v[j].prefix.len > r.v[k].prefix.len)
				k = j;
		e = r.v[k];
		remove_at(&r, k);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
	}
	assert_tree(&tb.t, &r);
	fallbacks_seen = 0;
	check_all(&tb.t, &r, 2000);
	assert_int_equal(fallbacks_seen, 0);
	while (r.n) {
		struct rule e = r.v[r.n - 1];

		remove_at(&r, r.n - 1);
		assert_int_equal(flat_delete(&tb.t, &e), 0);
	}
	flat_stats(&tb.t, &st);
	assert_int_equal(st.ext_regions, 0);
	assert_int_equal(st.nodes, 0);
	assert_int_equal(st.split_regions, 0);
	table_free(&tb);
	free(ids.rules);
	rules_free(&r);
}

/* --- tests: concurrency rules, sets and ids ------------------------------------------------ */

/* An IPv4 prefix as the table keys it. */
static __u64 v4_hi(const struct cidr *p)
{
	uint32_t a;

	memcpy(&a, p->addr, 4);
	return (__u64)ntohl(a) << 32;
}

/*
 * A slot that just died must not take another prefix while readers may be
 * looking at it; the same prefix may come back at once.
 */
static void test_dead_slot_not_reused_within_quarantine(void **state)
{
	struct cidr a = { .family = AF_INET, .len = 32 }, b = a;
	struct flat_ids ids;
	struct table tb;
	struct rules r;
	uint32_t mask, home, ida, idb;
	(void)state;

	rules_init(&r, AF_INET);
	ids_new(&ids, 64);
	table_new(&tb, AF_INET, 16, &ids, 0, r.rc);
	mask = (1u << tb.t.slot_bits) - 1;
	/* Two host routes with the same home slot. */
	a.addr[0] = 198, a.addr[1] = 18, a.addr[2] = 5, a.addr[3] = 1;
	home = flat_home(v4_hi(&a), 0, 32, tb.t.slot_bits);
	for (uint32_t x = 2;; x++) {
		uint32_t v = htonl(0xc6120500u + x);

		memcpy(b.addr, &v, 4);
		if (flat_home((__u64)ntohl(v) << 32, 0, 32, tb.t.slot_bits) == home)
			break;
	}
	assert_int_equal(flat_ids_alloc(&ids, 32, &ida), 0);
	assert_int_equal(put_prefix(&tb.t, &a, ida, true, 0), 0);
	assert_int_equal(tb.t.slots[home].word >> 32, 32);
	assert_int_equal(drop_prefix(&tb.t, &a, ida), 0);

	tb.t.quarantine_ms = 60000;
	assert_int_equal(flat_ids_alloc(&ids, 32, &idb), 0);
	assert_int_equal(put_prefix(&tb.t, &b, idb, true, 0), 0);
	assert_int_equal(tb.t.slots[home].word >> 32, FLAT_TAG_DEAD | 32);
	assert_int_equal(tb.t.slots[(home + 1) & mask].hi, v4_hi(&b));
	assert_int_equal(flat_judge(&tb.t, b.addr), idb << 1 | 1);
	assert_int_equal(flat_judge(&tb.t, a.addr), 0);

	/* The same prefix may take its own dead slot back. */
	assert_int_equal(put_prefix(&tb.t, &a, ida, false, 0), 0);
	assert_int_equal(tb.t.slots[home].word, (uint64_t)32 << 32 | ida << 1);

	table_free(&tb);
	free(ids.rules);
	rules_free(&r);
}

/*
 * The lead's replace: sets A and B share one ids table; sync B to the new
 * rules, then A.  Each table matches its own set at every step, prefixes
 * keep their ids across sets, and ids in neither set are free afterwards.
 * A table re-attached from its memory (another process) carries on.
 */
static void test_two_sets_sync_by_diff_copy_and_share_ids(void **state)
{
	struct rules old, new;
	struct flat_ids ids;
	struct table a, b;
	struct flat again;
	struct rule e;
	size_t changes;
	(void)state;

	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;

		rules_init(&old, family);
		rules_init(&new, family);
		ids_new(&ids, 20000);
		table_new(&a, family, 6000, &ids, 0, old.rc);
		table_new(&b, family, 6000, &ids, 1, old.rc);
		for (int i = 0; i < 3000 / SCALE; i++)
			gen_rule(&old, &ids, &e);
		assert_int_equal(flat_build(&a.t, old.v, old.n), 0);
		assert_int_equal(flat_build(&b.t, old.v, old.n), 0);

		/* new: most old rules (same ids, some actions flipped), some new. */
		for (size_t i = 0; i < old.n; i++) {
			e = old.v[i];
			if (below(4) == 0)
				continue;
			if (below(5) == 0)
				e.action ^= IPBLOCK_ACTION_ALLOW ^ IPBLOCK_ACTION_DENY;
			assert_int_equal(ref_insert(new.rc, &e, NULL), 0);
			rules_push(&new, &e);
		}
		for (int i = 0; i < 1000 / SCALE; i++)
			gen_rule(&new, &ids, &e);

		/* B follows new (its parent lookups ask new), A still old. */
		b.t.parent_ctx = new.rc;
		assert_int_equal(table_sync(&b.t, old.rc, new.rc, &changes), 0);
		assert_true(changes > 0);
		check_all(&b.t, &new, 5000);
		check_all(&a.t, &old, 5000);
		check_stats(&b.t, &new);

		/* A follows, through a second attachment of the same memory. */
		assert_int_equal(flat_attach(&again, family, &a.sz, a.top, a.data, &ids, 0,
					     cache_parent, new.rc),
				 0);
		again.quarantine_ms = 0;
		assert_int_equal(table_sync(&again, old.rc, new.rc, NULL), 0);
		check_all(&again, &new, 5000);
		check_all(&a.t, &new, 1000);
		check_stats(&a.t, &new);

		/* Ids: every rule of new in both sets, every other id free. */
		for (size_t i = 0; i < new.n; i++)
			assert_int_equal(ids.rules[new.v[i].id].sets, 3);
		size_t used = 0;

		for (uint32_t i = 1; i < ids.n; i++)
			used += ids.rules[i].sets != 0;
		assert_int_equal(used, new.n);

		/* A rebuild from scratch gives the same table; A keeps its bits. */
		flat_clear(&b.t);
		for (size_t i = 0; i < new.n; i++)
			assert_int_equal(ids.rules[new.v[i].id].sets, 1);
		assert_int_equal(flat_build(&b.t, new.v, new.n), 0);
		check_all(&b.t, &new, 5000);
		check_stats(&b.t, &new);
		for (size_t i = 0; i < new.n; i++)
			assert_int_equal(ids.rules[new.v[i].id].sets, 3);

		/*
		 * A copy: A is taken back to old, then made a copy of B (new).
		 * It judges as B does, and the ids of old-only rules are free.
		 */
		flat_clear(&a.t);
		a.t.parent_ctx = old.rc;
		assert_int_equal(flat_build(&a.t, old.v, old.n), 0);
		check_all(&a.t, &old, 2000);
		assert_int_equal(flat_copy(&a.t, &b.t), 0);
		a.t.parent_ctx = new.rc;
		check_all(&a.t, &new, 5000);
		check_stats(&a.t, &new);
		used = 0;
		for (uint32_t i = 1; i < ids.n; i++)
			used += ids.rules[i].sets != 0;
		assert_int_equal(used, new.n);
		for (size_t i = 0; i < new.n; i++) {
			const struct flat_rule *r = &ids.rules[new.v[i].id];
			unsigned int deny = new.v[i].action == IPBLOCK_ACTION_DENY ? 3 : 0;

			assert_int_equal(r->sets, 3);
			assert_int_equal(r->deny_sets, deny);
		}
		assert_int_equal(flat_copy(&a.t, &a.t), -EINVAL);

		/* A geometry that does not match the memory is refused. */
		struct flat_sizes other;

		assert_int_equal(flat_sizes(family, 7000, &other), 0);
		if (other.slots != a.sz.slots || other.ext_cap != a.sz.ext_cap)
			assert_int_equal(flat_attach(&again, family, &other, a.top, a.data, &ids, 0,
						     NULL, NULL),
					 -EPROTO);

		table_free(&a);
		table_free(&b);
		free(ids.rules);
		rules_free(&old);
		rules_free(&new);
	}
}

/*
 * A reader thread looks addresses up while the writer changes rules one at
 * a time.  The writer publishes the expected verdicts of each state before
 * the change and bumps a generation counter around it (odd: in progress),
 * so a lookup that overlapped at most one change must equal the state
 * before or after it -- never a half-written entry, a parent that was not
 * there, or a slot read while being reused.
 */
#define RACE_ADDRS 8
#define RACE_OPS   (6000 / SCALE)
#define RACE_POOL  12

struct race {
	const struct flat *t;
	/* One lookup of addrs[i]; false when the answer cannot be judged. */
	bool (*lookup)(struct race *rc, int i, uint32_t *v);
	void *ctx;
	uint8_t addrs[RACE_ADDRS][16];
	uint32_t expect[RACE_OPS + 1][RACE_ADDRS]; /* after op k */
	uint64_t gen;				   /* 2k: op k done; 2k-1: op k running */
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
			uint32_t v, a, b;
			bool judged = rc->lookup(rc, i, &v);

			g2 = __atomic_load_n(&rc->gen, __ATOMIC_ACQUIRE);
			from = g1 / 2;
			to = (g2 + 1) / 2;
			if (!judged || to - from > 1)
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

/* Churn the pool in t while rc->lookup reads; ref is t's rule set. */
static void race_run(struct race *rc, struct flat *t, struct flat_ids *ids, struct rules *ref)
{
	static const char *const pool4[RACE_POOL] = {
		"10.0.0.0/16",	 "10.0.5.0/24", "10.0.5.0/25",	"10.0.5.0/28",
		"10.0.5.7/32",	 "10.0.5.6/31", "10.0.6.0/24",	"10.0.6.128/26",
		"10.0.6.200/32", "10.0.0.0/8",	"10.0.5.64/26", "10.0.6.201/32",
	};
	static const char *const pool6[RACE_POOL] = {
		"2001:db8::/32",   "2001:db8:5::/48",	     "2001:db8:5::/56",
		"2001:db8:5::/64", "2001:db8:5::7/128",	     "2001:db8:5::6/127",
		"2001:db8:6::/48", "2001:db8:6::/96",	     "2001:db8:6::200/128",
		"2001:d00::/24",   "2001:db8:5:0:8000::/65", "2001:db8:6::201/128",
	};
	int family = ref->family;
	const char *const *pool = family == AF_INET ? pool4 : pool6;
	struct rule rules[RACE_POOL];
	bool present[RACE_POOL] = { false };
	pthread_t th;

	t->quarantine_ms = 2;
	for (int i = 0; i < RACE_POOL; i++) {
		memset(&rules[i], 0, sizeof(rules[i]));
		assert_int_equal(cidr_parse(pool[i], &rules[i].prefix, NULL, NULL, 0), 0);
		rules[i].action = IPBLOCK_ACTION_DENY;
	}
	for (int i = 0; i < RACE_ADDRS; i++) {
		addr_in(&rules[1 + i % 8].prefix, rc->addrs[i]);
		if (i < 2)
			addr_edge(&rules[4 + i].prefix, false, rc->addrs[i]);
	}
	/*
	 * One address that only the widest rule covers, in another /16 block
	 * (IPv4): its block's summary flips between "no rule", mixed and the
	 * /8's verdict as that rule comes and goes.
	 */
	struct cidr wide;

	assert_int_equal(cidr_parse(family == AF_INET ? "10.200.1.0/24" : "2001:dff:1::/48", &wide,
				    NULL, NULL, 0),
			 0);
	addr_in(&wide, rc->addrs[2]);
	rc->t = t;
	assert_int_equal(pthread_create(&th, NULL, race_reader, rc), 0);
	while (!__atomic_load_n(&rc->started, __ATOMIC_ACQUIRE))
		sched_yield();

	for (uint64_t k = 1; k <= RACE_OPS; k++) {
		int i = (int)below(RACE_POOL);
		struct rule *e = &rules[i];
		uint32_t old_id = 0;
		enum { ADD, DEL, UPD } op;

		if (!present[i]) {
			op = ADD;
			assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
		} else if (below(3)) {
			op = DEL;
		} else {
			op = UPD;
			old_id = e->id;
			e->action ^= IPBLOCK_ACTION_ALLOW ^ IPBLOCK_ACTION_DENY;
			if (below(2))
				assert_int_equal(flat_ids_alloc(ids, e->prefix.len, &e->id), 0);
		}
		if (op == DEL)
			assert_int_equal(ref_remove(ref->rc, &e->prefix), 0);
		else
			assert_int_equal(ref_insert(ref->rc, e, NULL), 0);
		for (int a = 0; a < RACE_ADDRS; a++)
			__atomic_store_n(&rc->expect[k][a],
					 reference_entry(ref->rc, family, rc->addrs[a]),
					 __ATOMIC_RELAXED);
		__atomic_store_n(&rc->gen, 2 * k - 1, __ATOMIC_RELEASE);
		if (op == DEL)
			assert_int_equal(flat_delete(t, e), 0);
		else
			assert_int_equal(flat_add(t, e, old_id), 0);
		__atomic_store_n(&rc->gen, 2 * k, __ATOMIC_RELEASE);
		present[i] = op != DEL;
		/*
		 * A slow reader (a syscall per lookup) must still see most
		 * states; on a busy machine give up waiting after 100 us.
		 */
		uint64_t sw = __atomic_load_n(&rc->sweeps, __ATOMIC_ACQUIRE);
		double until = now_s() + 100e-6;

		while (__atomic_load_n(&rc->sweeps, __ATOMIC_ACQUIRE) == sw && now_s() < until)
			;
	}
	__atomic_store_n(&rc->done, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	printf("# %s: %zu concurrent lookups checked\n", family == AF_INET ? "v4" : "v6",
	       rc->checked);
	if (rc->violations)
		fail_msg("%zu lookups saw neither state: %s", rc->violations, rc->what);
	assert_true(rc->checked > 0);
}

static bool race_lookup_user(struct race *rc, int i, uint32_t *v)
{
	*v = flat_judge(rc->t, rc->addrs[i]);
	return true;
}

static void test_reader_sees_old_or_new_during_changes(void **state)
{
	(void)state;
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;
		struct race *rc = calloc(1, sizeof(*rc));
		struct flat_sizes sz;
		struct flat_ids ids;
		struct table tb;
		struct rules ref;

		assert_non_null(rc);
		rules_init(&ref, family);
		ids_new(&ids, 256);
		/* Few slots and ext records: dead slots and freed records get reused. */
		assert_int_equal(flat_sizes_geom(family, 64, 4, 256, 256, &sz), 0);
		table_new_sized(&tb, family, &sz, &ids, 0, ref.rc);
		rc->lookup = race_lookup_user;
		race_run(rc, &tb.t, &ids, &ref);
		table_free(&tb);
		free(ids.rules);
		rules_free(&ref);
		free(rc);
	}
}

static void test_ids_reserved_until_added_then_reclaimed(void **state)
{
	struct flat_ids ids;
	uint32_t x, y, z;
	(void)state;

	ids_new(&ids, 4);
	assert_int_equal(flat_ids_alloc(&ids, 24, &x), 0);
	assert_int_equal(flat_ids_alloc(&ids, 24, &y), 0);
	assert_int_equal(flat_ids_alloc(&ids, 24, &z), 0);
	assert_true(x != y && y != z && x != z && x && y && z);
	assert_int_equal(flat_ids_alloc(&ids, 24, &x), -ENOSPC);
	flat_ids_release(&ids, y);
	assert_int_equal(flat_ids_alloc(&ids, 16, &x), 0);
	assert_int_equal(x, y);
	assert_int_equal(ids.rules[x].prefixlen, 16);
	/* A CLI that died after alloc leaves reservations; reclaim frees them. */
	flat_ids_reclaim(&ids);
	assert_int_equal(flat_ids_alloc(&ids, 8, &x), 0);
	free(ids.rules);
}

static void test_bad_arguments_are_refused(void **state)
{
	struct flat_sizes sz;
	struct flat_ids ids;
	struct table tb;
	struct rules r;
	struct cidr v6 = { .family = AF_INET6, .len = 64 }, v4 = { .family = AF_INET, .len = 33 };
	(void)state;

	assert_int_equal(flat_sizes(AF_UNIX, 10, &sz), -EINVAL);
	assert_int_equal(flat_sizes(AF_INET, 0, &sz), -EINVAL);
	rules_init(&r, AF_INET);
	ids_new(&ids, 16);
	table_new(&tb, AF_INET, 4, &ids, 0, r.rc);
	assert_int_equal(put_prefix(&tb.t, &v6, 1, true, 0), -EINVAL);
	assert_int_equal(put_prefix(&tb.t, &v4, 1, true, 0), -EINVAL);
	v4.len = 8;
	assert_int_equal(put_prefix(&tb.t, &v4, 0, true, 0), -EINVAL);
	assert_int_equal(put_prefix(&tb.t, &v4, 99, true, 0), -EINVAL);
	assert_int_equal(drop_prefix(&tb.t, &v4, 3), -ENOENT);
	table_free(&tb);
	free(ids.rules);
	rules_free(&r);
}

/* --- BPF: the same tables read by the XDP reader ---------------------------------------------- */

struct bpf_env {
	struct flat_test_bpf *skel;
	struct flat_sizes sz[2];
	void *top[2], *data[2];
	struct flat_ids ids[2];
	struct flat t[2];
	int trie_fd[2];
};

static int fi(int family)
{
	return family == AF_INET6;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

/*
 * Load the test program with tables for max_rules (or the geometry in sz);
 * deletes find parents in the program's tries, as the tools will.
 */
static void bpf_env_open(struct bpf_env *b, uint32_t max_rules, const struct flat_sizes *sz,
			 uint32_t trie_cap)
{
	struct bpf_map *tops[2], *datas[2];

	memset(b, 0, sizeof(*b));
	libbpf_set_print(quiet);
	b->skel = flat_test_bpf__open();
	assert_non_null(b->skel);
	tops[0] = b->skel->maps.flat4_top;
	tops[1] = b->skel->maps.flat6_top;
	datas[0] = b->skel->maps.flat4_data;
	datas[1] = b->skel->maps.flat6_data;
	for (int f = 0; f < 2; f++) {
		if (sz)
			b->sz[f] = sz[f];
		else
			assert_int_equal(flat_sizes(f ? AF_INET6 : AF_INET, max_rules, &b->sz[f]),
					 0);
		assert_int_equal(bpf_map__set_max_entries(tops[f], b->sz[f].top_elems), 0);
		assert_int_equal(bpf_map__set_max_entries(datas[f], b->sz[f].data_elems), 0);
	}
	assert_int_equal(bpf_map__set_max_entries(b->skel->maps.trie4, trie_cap), 0);
	assert_int_equal(bpf_map__set_max_entries(b->skel->maps.trie6, trie_cap), 0);
	assert_int_equal(flat_test_bpf__load(b->skel), 0);
	b->trie_fd[0] = bpf_map__fd(b->skel->maps.trie4);
	b->trie_fd[1] = bpf_map__fd(b->skel->maps.trie6);
	for (int f = 0; f < 2; f++) {
		b->top[f] = tables_mmap(bpf_map__fd(tops[f]), b->sz[f].top_bytes);
		b->data[f] = tables_mmap(bpf_map__fd(datas[f]), b->sz[f].data_bytes);
		assert_non_null(b->top[f]);
		assert_non_null(b->data[f]);
		ids_new(&b->ids[f], b->sz[f].ids_elems);
		assert_int_equal(flat_attach(&b->t[f], f ? AF_INET6 : AF_INET, &b->sz[f], b->top[f],
					     b->data[f], &b->ids[f], 0, trie_parent,
					     &b->trie_fd[f]),
				 0);
		b->t[f].quarantine_ms = 0;
	}
}

static void bpf_env_close(struct bpf_env *b)
{
	for (int f = 0; f < 2; f++) {
		tables_munmap(b->top[f], b->sz[f].top_bytes);
		tables_munmap(b->data[f], b->sz[f].data_bytes);
		free(b->ids[f].rules);
	}
	flat_test_bpf__destroy(b->skel);
}

static void env_trie_put(struct bpf_env *b, const struct rule *e)
{
	struct ipblock_key_v6 key = { .prefixlen = e->prefix.len };
	struct ipblock_rule val = { .action = e->action,
				    .prefixlen = e->prefix.len,
				    .rule_id = e->id };

	memcpy(key.addr, e->prefix.addr, 16);
	assert_int_equal(bpf_map_update_elem(b->trie_fd[fi(e->prefix.family)], &key, &val, BPF_ANY),
			 0);
}

/* Rules into the trie and the flat table of their family. */
static void bpf_env_fill(struct bpf_env *b, struct rules *r)
{
	for (size_t i = 0; i < r->n; i++)
		env_trie_put(b, &r->v[i]);
	assert_int_equal(flat_build(&b->t[fi(r->family)], r->v, r->n), 0);
}

/* A minimal frame from addr; *len gets its length. */
static size_t frame_of(int family, const uint8_t *addr, uint8_t *buf, size_t buflen)
{
	struct frame_spec s = { .family = family, .payload = 18 };

	memcpy(s.src, addr, family == AF_INET ? 4 : 16);
	return frame_build(&s, buf, buflen);
}

static void bpf_check_addr(struct bpf_env *b, int prog_fd, const struct rulecache *rc, int family,
			   const uint8_t *addr, size_t *fell)
{
	uint8_t frame[256];
	size_t len = frame_of(family, addr, frame, sizeof(frame));
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (uint32_t)len,
		    .repeat = 1);
	uint32_t want = reference_entry(rc, family, addr), got;

	assert_true(len > 0);
	assert_int_equal(bpf_prog_test_run_opts(prog_fd, &o), 0);
	got = b->skel->bss->result_entry;
	*fell += b->skel->bss->result_fallback;
	if (got != want) {
		struct cidr c = { .family = (uint8_t)family, .len = (uint8_t)width_of(family) };
		char buf[CIDR_STRLEN];

		memcpy(c.addr, addr, 16);
		fail_msg("BPF: %s: got id %u/%u, reference id %u/%u",
			 cidr_format(&c, buf, sizeof(buf)), got >> 1, got & 1, want >> 1, want & 1);
	}
	assert_int_equal(o.retval, want & 1 ? XDP_DROP : XDP_PASS);
	/* The user-space twin agrees with the kernel's reader. */
	if (!b->skel->bss->result_fallback)
		assert_int_equal(flat_judge(&b->t[fi(family)], addr), got);
}

static void bpf_check_rules(struct bpf_env *b, struct rules *r, size_t nrandom, size_t *fell)
{
	int fd = bpf_program__fd(b->skel->progs.flat_xdp);
	struct cidr any = { .family = (uint8_t)r->family };
	uint8_t a[16];

	for (size_t i = 0; i < r->n; i++) {
		for (int last = 0; last < 2; last++) {
			addr_edge(&r->v[i].prefix, last, a);
			bpf_check_addr(b, fd, r->rc, r->family, a, fell);
			if (addr_step(a, width_of(r->family), last ? 1 : -1))
				bpf_check_addr(b, fd, r->rc, r->family, a, fell);
		}
	}
	for (size_t i = 0; i < nrandom; i++) {
		addr_in(below(2) ? &r->v[below((uint32_t)r->n)].prefix : &any, a);
		bpf_check_addr(b, fd, r->rc, r->family, a, fell);
	}
}

static void test_bpf_verdicts_match_reference(void **state)
{
	struct rules r[2];
	struct bpf_env b;
	struct rule e;
	size_t fell = 0;
	(void)state;

	rules_init(&r[0], AF_INET);
	rules_init(&r[1], AF_INET6);
	bpf_env_open(&b, 20000, NULL, 20000);
	for (int f = 0; f < 2; f++) {
		while (r[f].n < 3000 / SCALE)
			gen_rule(&r[f], &b.ids[f], &e);
		bpf_env_fill(&b, &r[f]);
		bpf_check_rules(&b, &r[f], 5000 / SCALE, &fell);
	}
	/* Incremental changes reach the reader through the mmap()ed maps. */
	for (int f = 0; f < 2; f++) {
		struct cidr touched;

		for (int i = 0; i < 500 / SCALE; i++) {
			random_step(&r[f], &b.ids[f], &b.t[f], &touched);
			if (!ref_find(r[f].rc, &touched, &e)) {
				env_trie_put(&b, &e);
			} else {
				struct ipblock_key_v6 key = { .prefixlen = touched.len };

				memcpy(key.addr, touched.addr, 16);
				assert_int_equal(bpf_map_delete_elem(b.trie_fd[f], &key), 0);
			}
		}
		bpf_check_rules(&b, &r[f], 5000 / SCALE, &fell);
	}
	/* Random nesting piles many IPv6 lengths into some regions. */
	printf("# BPF: %zu lookups went to the trie\n", fell);
	bpf_env_close(&b);
	rules_free(&r[0]);
	rules_free(&r[1]);
}

/* The kernel's reader walks a crowded region's tree (and the trie is never asked). */
static void test_bpf_crowded_region_walks_the_tree(void **state)
{
	struct flat_stats st;
	struct rules r;
	struct bpf_env b;
	size_t fell = 0;
	(void)state;

	rules_init(&r, AF_INET6);
	bpf_env_open(&b, 8192, NULL, 8192);
	while (r.n < 1500 / SCALE) {
		struct rule e = { .action = below(2) ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW };

		gen_crowded(&r, &e.prefix);
		assert_int_equal(flat_ids_alloc(&b.ids[1], e.prefix.len, &e.id), 0);
		assert_int_equal(ref_insert(r.rc, &e, NULL), 0);
		rules_push(&r, &e);
	}
	bpf_env_fill(&b, &r);
	flat_stats(&b.t[1], &st);
	assert_int_equal(st.split_regions, 1);
	bpf_check_rules(&b, &r, 5000 / SCALE, &fell);
	printf("# BPF: %zu rules in one region, %u nodes\n", r.n, st.nodes);
	for (int i = 0; i < 300 / SCALE; i++) {
		struct rule e;

		if (!crowded_step(&r, &b.ids[1], &b.t[1], &e)) {
			env_trie_put(&b, &e);
		} else {
			struct ipblock_key_v6 key = { .prefixlen = e.prefix.len };

			memcpy(key.addr, e.prefix.addr, 16);
			assert_int_equal(bpf_map_delete_elem(b.trie_fd[1], &key), 0);
		}
	}
	bpf_check_rules(&b, &r, 5000 / SCALE, &fell);
	flat_stats(&b.t[1], &st);
	assert_int_equal(st.fallback_regions, 0);
	assert_int_equal(fell, 0);
	bpf_env_close(&b);
	rules_free(&r);
}

/* Regions that fall back are judged by the trie inside the program. */
static void test_bpf_fallback_regions_ask_the_trie(void **state)
{
	struct flat_sizes sz[2];
	struct rules r[2];
	struct bpf_env b;
	struct rule e;
	size_t fell = 0;
	(void)state;

	rules_init(&r[0], AF_INET);
	rules_init(&r[1], AF_INET6);
	assert_int_equal(flat_sizes_geom(AF_INET, 64, 16, 8192, 8192, &sz[0]), 0);
	assert_int_equal(flat_sizes_geom(AF_INET6, 64, 16, 8192, 8192, &sz[1]), 0);
	bpf_env_open(&b, 0, sz, 8192);
	for (int f = 0; f < 2; f++) {
		struct flat_stats st;

		while (r[f].n < 2000)
			gen_rule(&r[f], &b.ids[f], &e);
		bpf_env_fill(&b, &r[f]);
		flat_stats(&b.t[f], &st);
		assert_true(st.fallback_regions > 0);
		bpf_check_rules(&b, &r[f], 3000, &fell);
	}
	assert_true(fell > 0);
	printf("# BPF: %zu lookups went to the trie\n", fell);
	bpf_env_close(&b);
	rules_free(&r[0]);
	rules_free(&r[1]);
}

/* The race above with the kernel's reader: BPF_PROG_RUN from the thread. */
static bool race_lookup_bpf(struct race *rc, int i, uint32_t *v)
{
	struct bpf_env *b = rc->ctx;
	int family = rc->t->width == 32 ? AF_INET : AF_INET6;
	uint8_t frame[256];
	size_t len = frame_of(family, rc->addrs[i], frame, sizeof(frame));
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (uint32_t)len,
		    .repeat = 1);

	if (bpf_prog_test_run_opts(bpf_program__fd(b->skel->progs.flat_xdp), &o))
		return false;
	*v = b->skel->bss->result_entry;
	/* The trie is not kept in step here: its answers prove nothing. */
	return !b->skel->bss->result_fallback;
}

static void test_bpf_reader_sees_old_or_new_during_changes(void **state)
{
	struct bpf_env b;
	(void)state;

	bpf_env_open(&b, 64, NULL, 64);
	for (int f = 0; f < 2; f++) {
		struct race *rc = calloc(1, sizeof(*rc));
		struct rules ref;

		assert_non_null(rc);
		rules_init(&ref, f ? AF_INET6 : AF_INET);
		b.t[f].parent = cache_parent;
		b.t[f].parent_ctx = ref.rc;
		rc->lookup = race_lookup_bpf;
		rc->ctx = &b;
		race_run(rc, &b.t[f], &b.ids[f], &ref);
		rules_free(&ref);
		free(rc);
	}
	bpf_env_close(&b);
}

/* --- measurements ----------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define BENCH_ADDRS  256
#define BENCH_REPEAT 2000
#define BENCH_ROUNDS 7

/*
 * BPF_PROG_RUN with repeat > 1 puts the program into the XDP dispatcher
 * and takes it out again, two RCU grace periods per call (~17 ms here).
 * A program attached to an interface stays in it, so each measured program
 * is attached (generic mode) to the loopback of a private netns for the
 * duration; the namespaces go away with their fds.
 */
struct pinned {
	int home, ns[3];
};

static void pin_progs(const int fds[3], struct pinned *pn)
{
	pn->home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	for (int p = 0; p < 3; p++) {
		pn->ns[p] = -1;
		if (pn->home < 0 || unshare(CLONE_NEWNET))
			continue;
		pn->ns[p] = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		if (bpf_xdp_attach(1, fds[p], XDP_FLAGS_SKB_MODE, NULL))
			printf("# could not attach to lo: measurements will be slow\n");
		setns(pn->home, CLONE_NEWNET);
	}
}

static void unpin_progs(struct pinned *pn)
{
	for (int p = 0; p < 3; p++) {
		if (pn->ns[p] < 0)
			continue;
		if (!setns(pn->ns[p], CLONE_NEWNET))
			bpf_xdp_detach(1, XDP_FLAGS_SKB_MODE, NULL);
		close(pn->ns[p]);
	}
	if (pn->home >= 0) {
		setns(pn->home, CLONE_NEWNET);
		close(pn->home);
	}
}

/* ns/packet of each program over the same frames: the median of rounds. */
static void bench_progs(struct bpf_env *b, int family, uint8_t (*addrs)[16], double out[3])
{
	int fds[3] = { bpf_program__fd(b->skel->progs.empty_xdp),
		       bpf_program__fd(b->skel->progs.flat_xdp),
		       bpf_program__fd(b->skel->progs.trie_xdp) };
	double rounds[3][BENCH_ROUNDS];
	static uint8_t frames[BENCH_ADDRS][256];
	struct pinned pn;
	size_t len = 0;

	for (int i = 0; i < BENCH_ADDRS; i++)
		len = frame_of(family, addrs[i], frames[i], sizeof(frames[i]));
	pin_progs(fds, &pn);
	for (int round = 0; round < BENCH_ROUNDS; round++) {
		for (int p = 0; p < 3; p++) {
			double sum = 0;

			for (int i = 0; i < BENCH_ADDRS; i++) {
				LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frames[i],
					    .data_size_in = (uint32_t)len, .repeat = BENCH_REPEAT);

				assert_int_equal(bpf_prog_test_run_opts(fds[p], &o), 0);
				sum += o.duration;
			}
			rounds[p][round] = sum / BENCH_ADDRS;
		}
	}
	unpin_progs(&pn);
	for (int p = 0; p < 3; p++) {
		qsort(rounds[p], BENCH_ROUNDS, sizeof(double), cmp_double);
		out[p] = rounds[p][BENCH_ROUNDS / 2];
	}
}

/* Length mix of the measurements: mostly hosts and ISP-sized blocks. */
static unsigned int bench_len(int family)
{
	uint32_t r = below(1000);

	if (family == AF_INET) {
		if (r < 1)
			return 8 + below(8);
		if (r < 60)
			return 16 + below(8);
		if (r < 200)
			return 24;
		if (r < 300)
			return 25 + below(7);
		return 32;
	}
	if (r < 50)
		return 32;
	if (r < 100)
		return 33 + below(15);
	if (r < 400)
		return 48;
	if (r < 500)
		return 56;
	if (r < 850)
		return 64;
	if (r < 900)
		return 65 + below(63);
	return 128;
}

/* n rules of the measurement mix, not nested on purpose, unique. */
static void bench_rules(struct rules *r, struct flat_ids *ids, size_t n)
{
	while (r->n < n) {
		struct rule e = { .action = IPBLOCK_ACTION_DENY };
		bool created;

		e.prefix.family = (uint8_t)r->family;
		for (int i = 0; i < 16; i++)
			e.prefix.addr[i] = (uint8_t)rnd();
		if (r->family == AF_INET)
			memset(e.prefix.addr + 4, 0, 12);
		else
			e.prefix.addr[0] = 0x20 | (e.prefix.addr[0] & 0x1f);
		e.prefix.len = (uint8_t)bench_len(r->family);
		cidr_clear_host_bits(&e.prefix);
		if (below(10) == 0)
			e.action = IPBLOCK_ACTION_ALLOW;
		assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
		assert_int_equal(ref_insert(r->rc, &e, &created), 0);
		if (!created) {
			flat_ids_release(ids, e.id);
			continue;
		}
		rules_push(r, &e);
	}
}

/* Time to add then delete a prefix of length len inside a full table. */
static void bench_update(struct flat *t, struct rules *r, struct flat_ids *ids, unsigned int len)
{
	struct rule e = { .action = IPBLOCK_ACTION_DENY };
	double t0, t1, t2;

	do {
		e.prefix = (struct cidr){ .family = (uint8_t)r->family, .len = (uint8_t)len };
		for (int i = 0; i < 16; i++)
			e.prefix.addr[i] = (uint8_t)rnd();
		if (r->family == AF_INET)
			memset(e.prefix.addr + 4, 0, 12);
		else
			e.prefix.addr[0] = 0x20 | (e.prefix.addr[0] & 0x1f);
		cidr_clear_host_bits(&e.prefix);
	} while (!ref_find(r->rc, &e.prefix, &(struct rule){ 0 }));
	assert_int_equal(flat_ids_alloc(ids, e.prefix.len, &e.id), 0);
	t0 = now_s();
	assert_int_equal(flat_add(t, &e, 0), 0);
	t1 = now_s();
	assert_int_equal(flat_delete(t, &e), 0);
	t2 = now_s();
	printf("#   update /%u: add %.1f us, delete %.1f us\n", len, (t1 - t0) * 1e6,
	       (t2 - t1) * 1e6);
}

/*
 * One measurement: n rules of one family in both the trie and the flat
 * table; ns/packet for hits (inside a rule), random addresses, and for IPv6
 * misses inside regions that hold rules (every listed length probed).
 */
static void bench_size(int family, size_t n, bool updates)
{
	uint32_t max_rules = n > 1000 ? (uint32_t)n : 1000;
	static uint8_t addrs[BENCH_ADDRS][16];
	struct flat_stats st;
	struct rules r;
	struct bpf_env b;
	double t0, build_s, trie_s, ns[3];
	int f = fi(family);

	rules_init(&r, family);
	bpf_env_open(&b, max_rules, NULL, max_rules);
	bench_rules(&r, &b.ids[f], n);
	t0 = now_s();
	for (size_t i = 0; i < r.n; i++)
		env_trie_put(&b, &r.v[i]);
	trie_s = now_s() - t0;
	t0 = now_s();
	assert_int_equal(flat_build(&b.t[f], r.v, r.n), 0);
	build_s = now_s() - t0;
	flat_stats(&b.t[f], &st);
	printf("# %s %zu rules: compile %.3f s (trie fill %.3f s), %u ext regions, %u fallback "
	       "regions, "
	       "%u rules without slot; maps %.1f MiB (top %.1f + data %.1f) + ids %.1f MiB\n",
	       family == AF_INET ? "IPv4" : "IPv6", n, build_s, trie_s, st.ext_regions,
	       st.fallback_regions, st.missing,
	       (b.sz[f].top_bytes + b.sz[f].data_bytes) / 1048576.0, b.sz[f].top_bytes / 1048576.0,
	       b.sz[f].data_bytes / 1048576.0, b.sz[f].ids_bytes / 1048576.0);

	for (int kind = 0; kind < (family == AF_INET ? 2 : 3); kind++) {
		static const char *const names[] = { "hit", "random", "region-miss" };
		struct cidr any = { .family = (uint8_t)family };

		if (kind != 1 && !r.n)
			continue;
		for (int i = 0; i < BENCH_ADDRS; i++) {
			if (kind == 0) {
				addr_in(&r.v[below((uint32_t)r.n)].prefix, addrs[i]);
			} else if (kind == 1) {
				addr_in(&any, addrs[i]);
				if (family == AF_INET6)
					addrs[i][0] = 0x20 | (addrs[i][0] & 0x1f);
			} else {
				struct cidr reg = r.v[below((uint32_t)r.n)].prefix;

				if (reg.len > FLAT_V6_TOP_BITS)
					reg.len = FLAT_V6_TOP_BITS;
				cidr_clear_host_bits(&reg);
				addr_in(&reg, addrs[i]);
			}
		}
		bench_progs(&b, family, addrs, ns);
		printf("#   %-11s empty %5.1f ns  flat %5.1f ns (+%4.1f)  trie %5.1f ns (+%5.1f)\n",
		       names[kind], ns[0], ns[1], ns[1] - ns[0], ns[2], ns[2] - ns[0]);
	}
	if (updates) {
		unsigned int lens4[] = { 8, 24, 32 }, lens6[] = { 32, 48, 64, 128 };

		for (int i = 0; i < (family == AF_INET ? 3 : 4); i++)
			bench_update(&b.t[f], &r, &b.ids[f],
				     family == AF_INET ? lens4[i] : lens6[i]);
	}
	bpf_env_close(&b);
	rules_free(&r);
}

static void test_bpf_cost_report(void **state)
{
	size_t sizes[] = { 0, 1000, 100000, 1000000 };
	bool full = getenv("FLAT_BENCH") != NULL;
	(void)state;

#ifdef __SANITIZE_ADDRESS__
	skip();
#endif
	for (int f = 0; f < 2; f++)
		for (int i = 0; i < (full ? 4 : 3); i++)
			bench_size(f ? AF_INET6 : AF_INET, sizes[i], full && i == 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nested_rules_longest_wins),
		cmocka_unit_test(test_block_summaries_follow_the_rules),
		cmocka_unit_test(test_killed_writer_leaves_summaries_safe),
		cmocka_unit_test(test_v4_random_rules_match_reference),
		cmocka_unit_test(test_v6_random_rules_match_reference),
		cmocka_unit_test(test_v4_incremental_changes_match_reference),
		cmocka_unit_test(test_v6_incremental_changes_match_reference),
		cmocka_unit_test(test_v4_exhausted_table_falls_back_then_recovers),
		cmocka_unit_test(test_v6_exhausted_table_falls_back_then_recovers),
		cmocka_unit_test(test_v6_crowded_region_gets_a_tree),
		cmocka_unit_test(test_dead_slot_not_reused_within_quarantine),
		cmocka_unit_test(test_reader_sees_old_or_new_during_changes),
		cmocka_unit_test(test_two_sets_sync_by_diff_copy_and_share_ids),
		cmocka_unit_test(test_ids_reserved_until_added_then_reclaimed),
		cmocka_unit_test(test_bad_arguments_are_refused),
		cmocka_unit_test(test_bpf_verdicts_match_reference),
		cmocka_unit_test(test_bpf_crowded_region_walks_the_tree),
		cmocka_unit_test(test_bpf_fallback_regions_ask_the_trie),
		cmocka_unit_test(test_bpf_reader_sees_old_or_new_during_changes),
		cmocka_unit_test(test_bpf_cost_report),
	};

	seed();
	if (getenv("FLAT_ONLY"))
		cmocka_set_test_filter(getenv("FLAT_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
