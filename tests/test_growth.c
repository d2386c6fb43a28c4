// SPDX-License-Identifier: GPL-2.0
/*
 * Memory that follows the rules: the rule set grows from nothing to a
 * million prefixes and shrinks back, in steps (whole replaces and single
 * changes), through the product's protocol.  The tables must grow their
 * slot hash at least twice and shrink it at least once; at every step the
 * program's verdicts (BPF_PROG_RUN) match the reference LPM; and a thread
 * judging frames the whole time never sees a wrong verdict, across every
 * growth, shrink and switch of the rule set.
 *
 * GROWTH_SEED=n repeats a run; GROWTH_MAX=n sets the top of the climb (the
 * kernel matrix's emulated guests use a smaller one).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/bpf.h>

#include "cidr.h"
#include "harness.h"
#include "maps.h"
#include "reference.h"
#include "rng.h"
#include "rulecache.h"
#include "tables.h"
#include "trie.h"

#ifdef __SANITIZE_ADDRESS__
#define DEFAULT_MAX 150000
#else
#define DEFAULT_MAX 1000000
#endif

/*
 * Rules that stay through every step, and sources they judge: the traffic
 * thread's frames, whose verdicts must never change.  Nested, so a region
 * half-rebuilt would show: the /32 deny inside the /24 allow inside the /16
 * deny (IPv6 alike), in blocks that the random rules also fill.
 */
static const struct {
	const char *prefix;
	uint8_t action;
} keep[] = {
	{ "198.18.0.0/16", IPBLOCK_ACTION_DENY },    { "198.18.7.0/24", IPBLOCK_ACTION_ALLOW },
	{ "198.18.7.7/32", IPBLOCK_ACTION_DENY },    { "2001:db8::/32", IPBLOCK_ACTION_DENY },
	{ "2001:db8:7::/48", IPBLOCK_ACTION_ALLOW }, { "2001:db8:7::7/128", IPBLOCK_ACTION_DENY },
};

static const struct {
	const char *addr;
	int verdict;
} sources[] = {
	{ "198.18.1.1", XDP_DROP },    { "198.18.7.1", XDP_PASS },    { "198.18.7.7", XDP_DROP },
	{ "198.19.0.1", XDP_PASS },    { "2001:db8:1::1", XDP_DROP }, { "2001:db8:7::1", XDP_PASS },
	{ "2001:db8:7::7", XDP_DROP }, { "2001:db9::1", XDP_PASS },
};

#define N_SOURCES (sizeof(sources) / sizeof(sources[0]))

static struct harness h;

struct traffic {
	atomic_bool stop;
	uint8_t frame[N_SOURCES][256];
	size_t len[N_SOURCES];
	uint64_t runs, wrong, errors;
	char first_wrong[160];
};

static void *traffic_run(void *arg)
{
	struct traffic *t = arg;
	time_t deadline = time(NULL) + 900;

	/* Bounded: the stop flag, or fifteen minutes at most. */
	for (uint64_t i = 0; !atomic_load(&t->stop) && i < 2000000000ull; i++) {
		size_t s = i % N_SOURCES;
		int verdict;

		if ((i & 0xfff) == 0 && time(NULL) > deadline)
			break;
		if (harness_run(&h, t->frame[s], t->len[s], &verdict)) {
			t->errors++;
			continue;
		}
		t->runs++;
		if (verdict != sources[s].verdict && !t->wrong++)
			snprintf(t->first_wrong, sizeof(t->first_wrong), "%s judged %d, want %d",
				 sources[s].addr, verdict, sources[s].verdict);
	}
	return NULL;
}

static void traffic_frames(struct traffic *t)
{
	for (size_t s = 0; s < N_SOURCES; s++) {
		struct frame_spec f = { 0 };
		struct cidr c;

		assert_int_equal(cidr_parse(sources[s].addr, &c, NULL, NULL, 0), 0);
		f.family = c.family;
		memcpy(f.src, c.addr, 16);
		f.payload = 16;
		t->len[s] = frame_build(&f, t->frame[s], sizeof(t->frame[s]));
		assert_true(t->len[s] > 0);
	}
}

/* --- the rule set ------------------------------------------------------------------ */

/* The random rules in the order they were made; a step keeps a prefix of it. */
struct pool {
	struct rule *r;
	size_t n, cap;
	struct rulecache *seen; /* prefixes made so far, to make each once */
};

/*
 * A new random prefix: half nested inside one made before, IPv4 among
 * 11.0.0.0-99.255.255.255 and IPv6 in 2400::/6 (where real lists are),
 * lengths weighted as lists are (many /24 and /32, IPv6 /48 to /128).
 */
static void random_prefix(const struct pool *p, int family, struct cidr *c)
{
	memset(c, 0, sizeof(*c));
	c->family = (uint8_t)family;
	if (p->n && below(2)) {
		const struct cidr *q = &p->r[below((uint32_t)p->n)].prefix;

		if (q->family == family) {
			*c = *q;
			for (unsigned int b = q->len; b < (family == AF_INET ? 32u : 128u); b++)
				if (rnd() & 1)
					c->addr[b / 8] |= (uint8_t)(0x80 >> (b % 8));
		}
	}
	if (!c->addr[0]) {
		for (int i = 0; i < 16; i++)
			c->addr[i] = (uint8_t)rnd();
		if (family == AF_INET)
			c->addr[0] = (uint8_t)(11 + below(89));
		else
			c->addr[0] = (uint8_t)(0x24 | (c->addr[0] & 3));
	}
	if (family == AF_INET) {
		uint32_t k = below(100);

		memset(c->addr + 4, 0, 12);
		c->len = (uint8_t)(k < 10   ? 8 + below(16)
				   : k < 45 ? 24
				   : k < 60 ? 25 + below(7)
					    : 32);
	} else {
		uint32_t k = below(100);

		c->len = (uint8_t)(k < 10   ? 20 + below(28)
				   : k < 50 ? 48
				   : k < 70 ? 49 + below(79)
					    : 128);
	}
	cidr_clear_host_bits(c);
}

static void pool_fill(struct pool *p, size_t n)
{
	while (p->n < n) {
		struct rulecache_entry e = { 0 };
		bool created = false;

		random_prefix(p, p->n % 2 ? AF_INET6 : AF_INET, &e.rule.prefix);
		e.rule.action = below(100) < 60 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
		assert_int_equal(rulecache_insert(p->seen, &e, &created), 0);
		if (!created)
			continue;
		if (p->n == p->cap) {
			p->cap = p->cap ? 2 * p->cap : 65536;
			p->r = realloc(p->r, p->cap * sizeof(*p->r));
			assert_non_null(p->r);
		}
		p->r[p->n++] = e.rule;
	}
}

/* The reference and the rule array of a step: the kept rules and the pool's first n. */
static void step_rules(const struct pool *p, size_t n, struct rulecache *ref, struct rule **out,
		       size_t *nout)
{
	size_t k = 0, nkeep = sizeof(keep) / sizeof(keep[0]);
	struct rule *r = calloc(n + nkeep, sizeof(*r));

	assert_non_null(r);
	rulecache_clear(ref);
	for (size_t i = 0; i < nkeep; i++) {
		assert_int_equal(cidr_parse(keep[i].prefix, &r[k].prefix, NULL, NULL, 0), 0);
		r[k++].action = keep[i].action;
	}
	for (size_t i = 0; i < n; i++) {
		/* A random rule may hit a kept prefix: the kept one stays as it is. */
		if (rulecache_find(ref, &p->r[i].prefix, NULL) == 0)
			continue;
		r[k++] = p->r[i];
	}
	for (size_t i = 0; i < k; i++)
		assert_int_equal(
			rulecache_insert(ref, &(struct rulecache_entry){ .rule = r[i] }, NULL), 0);
	*out = r;
	*nout = k;
}

/* --- checks ------------------------------------------------------------------------- */

/* The program's verdict for addr against the reference's; counts mismatches. */
static void probe(const struct rulecache *ref, int family, const uint8_t *a, size_t *bad)
{
	struct rulecache_entry e;
	bool deny =
		reference_lookup(ref, family, a, &e) == 0 && e.rule.action == IPBLOCK_ACTION_DENY;
	int got = -1;

	assert_int_equal(harness_verdict_src(&h, family, a, &got), 0);
	if (got != (deny ? XDP_DROP : XDP_PASS) && (*bad)++ < 5) {
		struct cidr c = { .family = (uint8_t)family, .len = family == AF_INET ? 32 : 128 };
		char buf[CIDR_STRLEN];

		memcpy(c.addr, a, 16);
		print_error("%s judged %s, the reference says %s\n",
			    cidr_format(&c, buf, sizeof(buf)), got == XDP_DROP ? "DROP" : "PASS",
			    deny ? "DROP" : "PASS");
	}
}

/* Edges of n random rules of r and n random addresses: 0 mismatches. */
static void check_verdicts(const struct rulecache *ref, const struct rule *r, size_t nr, size_t n,
			   const char *step)
{
	size_t bad = 0;

	for (size_t i = 0; i < n && nr; i++) {
		const struct cidr *p = &r[below((uint32_t)nr)].prefix;
		unsigned int w = p->family == AF_INET ? 32 : 128;
		uint8_t a[16];

		memcpy(a, p->addr, 16);
		probe(ref, p->family, a, &bad);
		for (unsigned int b = p->len; b < w; b++)
			a[b / 8] |= (uint8_t)(0x80 >> (b % 8));
		probe(ref, p->family, a, &bad);
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t a[16];
		int family = i % 2 ? AF_INET6 : AF_INET;

		for (int k = 0; k < 16; k++)
			a[k] = (uint8_t)rnd();
		if (family == AF_INET6)
			a[0] = (uint8_t)(0x24 | (a[0] & 3));
		probe(ref, family, a, &bad);
	}
	if (bad)
		fail_msg("%s: %zu verdicts differ from the reference", step, bad);
}

/* Slot bits of each family's active table, and how often they rose and fell. */
struct sizes {
	uint32_t slots[2];
	int grew, shrank;
	int grew_live, shrank_live; /* by single changes */
};

static void track_sizes(struct sizes *z, const char *step, size_t rules)
{
	struct tables_memory mem;
	uint32_t active = 0;

	assert_int_equal(pins_active_set(&h.pins, &active), 0);
	assert_int_equal(tables_memory(&h.pins, &mem), 0);
	for (int f = 0; f < 2; f++) {
		struct tables_info in = { 0 };
		int ret = tables_info(&h.maps.tables, &h.pins, f ? AF_INET6 : AF_INET, (int)active,
				      &in);

		/* A family without rules has no table, and no slots. */
		assert_true(ret == 0 || ret == -ENOENT);
		if (in.slots > z->slots[f])
			z->grew += !!z->slots[f];
		else if (in.slots < z->slots[f])
			z->shrank++;
		z->slots[f] = in.slots;
	}
	print_message("%-34s %8zu rules: slots %7u IPv4 %7u IPv6, %7.1f MiB\n", step, rules,
		      z->slots[0], z->slots[1], mem.total / 1048576.0);
}

/* Host rules 10.h.h.h/32 (never among the random or kept rules): how many, and the i-th. */
#define HOSTS 40000

static struct rule host(uint32_t i)
{
	struct rule r = { .prefix = { .family = AF_INET, .len = 32 },
			  .action = IPBLOCK_ACTION_DENY };

	r.prefix.addr[0] = 10;
	r.prefix.addr[1] = (uint8_t)(i >> 16);
	r.prefix.addr[2] = (uint8_t)(i >> 8);
	r.prefix.addr[3] = (uint8_t)i;
	return r;
}

/*
 * Add (in) or delete the hosts one at a time, through the single-rule
 * path; the IPv4 table must change size on the way (counted as live).
 */
static void hosts_one_by_one(struct rulecache *ref, struct sizes *z, bool in)
{
	int grew = z->grew, shrank = z->shrank;
	uint32_t before = z->slots[0];

	for (uint32_t i = 0; i < HOSTS; i++) {
		struct rule r = host(i);

		if (in) {
			assert_int_equal(maps_rule_set(&h.maps, &r), 0);
			assert_int_equal(
				rulecache_insert(ref, &(struct rulecache_entry){ .rule = r }, NULL),
				0);
		} else {
			assert_int_equal(maps_rule_delete(&h.maps, &r.prefix), 0);
			assert_int_equal(rulecache_remove(ref, &r.prefix), 0);
		}
	}
	track_sizes(z, in ? "hosts added one at a time" : "hosts deleted one at a time",
		    rulecache_count(ref, AF_UNSPEC));
	if (in)
		z->grew_live += z->slots[0] > before && z->grew > grew;
	else
		z->shrank_live += z->slots[0] < before && z->shrank > shrank;
	check_verdicts(ref, NULL, 0, 3000, in ? "hosts added" : "hosts deleted");
}

/* The kept rules and the hosts, by a replace (the table sized for them). */
static void hosts_replace(struct rulecache *ref, struct sizes *z)
{
	size_t nkeep = sizeof(keep) / sizeof(keep[0]), n = 0;
	struct rule *r = calloc(nkeep + HOSTS, sizeof(*r));

	assert_non_null(r);
	rulecache_clear(ref);
	for (size_t i = 0; i < nkeep; i++) {
		assert_int_equal(cidr_parse(keep[i].prefix, &r[n].prefix, NULL, NULL, 0), 0);
		r[n++].action = keep[i].action;
	}
	for (uint32_t i = 0; i < HOSTS; i++)
		r[n++] = host(i);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(
			rulecache_insert(ref, &(struct rulecache_entry){ .rule = r[i] }, NULL), 0);
	assert_int_equal(maps_replace_rules(&h.maps, r, n, NULL), 0);
	track_sizes(z, "hosts by a replace", n);
	free(r);
}

/* --- the test ----------------------------------------------------------------------- */

static void test_rules_grow_to_a_million_and_back_judged_throughout(void **state)
{
	const char *m = getenv("GROWTH_MAX");
	size_t top = m ? strtoul(m, NULL, 0) : DEFAULT_MAX;
	const double up[] = { 0.02, 0.1, 0.4, 1.0 }, down[] = { 0.4, 0.1, 0.01, 0 };
	struct pool p = { .seen = rulecache_new() };
	struct rulecache *ref = rulecache_new();
	struct traffic t = { 0 };
	struct sizes z = { 0 };
	pthread_t tid;
	struct rule *r = NULL;
	size_t nr = 0;
	char step[64];

	(void)state;
	assert_non_null(p.seen);
	assert_non_null(ref);
	pool_fill(&p, top);
	traffic_frames(&t);
	step_rules(&p, 0, ref, &r, &nr);
	assert_int_equal(maps_replace_rules(&h.maps, r, nr, NULL), 0);
	free(r);
	track_sizes(&z, "the kept rules", nr);
	assert_int_equal(pthread_create(&tid, NULL, traffic_run, &t), 0);

	/* One host at a time: the live table's slots fill to half and it grows by a switch. */
	hosts_one_by_one(ref, &z, true);
	for (size_t i = 0; i < sizeof(up) / sizeof(up[0]); i++) {
		size_t n = (size_t)(up[i] * (double)top);

		step_rules(&p, n, ref, &r, &nr);
		assert_int_equal(maps_replace_rules(&h.maps, r, nr, NULL), 0);
		snprintf(step, sizeof(step), "up: replace");
		track_sizes(&z, step, nr);
		check_verdicts(ref, r, nr, 3000, step);
		free(r);
	}
	for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
		size_t n = (size_t)(down[i] * (double)top);

		step_rules(&p, n, ref, &r, &nr);
		assert_int_equal(maps_replace_rules(&h.maps, r, nr, NULL), 0);
		track_sizes(&z, "down: replace", nr);
		check_verdicts(ref, r, nr, 3000, "down");
		free(r);
	}
	/* Hosts in, then out one at a time: the table shrinks by a switch when nearly empty. */
	hosts_replace(ref, &z);
	hosts_one_by_one(ref, &z, false);
	atomic_store(&t.stop, true);
	pthread_join(tid, NULL);
	print_message("traffic: %llu frames judged during the steps, %llu wrong, %llu errors\n",
		      (unsigned long long)t.runs, (unsigned long long)t.wrong,
		      (unsigned long long)t.errors);
	if (t.wrong)
		fail_msg("a frame was misjudged during a step: %s", t.first_wrong);
	assert_int_equal(t.errors, 0);
	assert_true(t.runs > 1000);
	assert_true(z.grew >= 2);
	assert_true(z.shrank >= 1);
	assert_true(z.grew_live >= 1);
	assert_true(z.shrank_live >= 1);
	free(p.r);
	rulecache_free(p.seen);
	rulecache_free(ref);
}

static int setup(void **state)
{
	(void)state;
	rng_seed("GROWTH_SEED");
	return harness_open_capacity(&h, 2000000) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_close(&h);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_grow_to_a_million_and_back_judged_throughout),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
