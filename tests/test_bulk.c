// SPDX-License-Identifier: GPL-2.0
/*
 * Bulk rule sets against the real XDP program (BPF_PROG_RUN on private
 * maps): save/replace round trips, a 100k-rule import cross-checked against
 * the rule cache's reference lookup, capacity refusals that change nothing,
 * and the A/B switch judged by a thread that keeps sending frames while
 * the rule set flips between two lists.
 *
 * BULK_ONLY=pattern runs only the matching tests (the kernel matrix's
 * guests run the atomic switch alone: each test here loads the program,
 * which costs seconds under qemu's TCG).
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

#include <bpf/bpf.h>
#include <cmocka.h>
#include <linux/bpf.h>

#include "cidr.h"
#include "harness.h"
#include "trie.h"
#include "reference.h"
#include "rulecache.h"
#include "rulefile.h"

static struct harness h;

static int setup(void **state)
{
	(void)state;
	return harness_open(&h) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_close(&h);
	return 0;
}

/* Deterministic generator: every run tests the same lists. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static struct rule make_rule(const char *text, uint8_t action)
{
	struct rule r = { .action = action };
	char err[CIDR_ERRLEN];

	if (cidr_parse(text, &r.prefix, NULL, err, sizeof(err)))
		fail_msg("bad prefix in test: %s", err);
	return r;
}

static void assert_same_rules(const struct rule *a, size_t na, const struct rule *b, size_t nb)
{
	char x[CIDR_STRLEN], y[CIDR_STRLEN];

	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		if (cidr_compare(&a[i].prefix, &b[i].prefix) || a[i].action != b[i].action)
			fail_msg("rule %zu differs: %s %s vs %s %s", i,
				 cidr_format(&a[i].prefix, x, sizeof(x)),
				 ruleset_action_name(a[i].action),
				 cidr_format(&b[i].prefix, y, sizeof(y)),
				 ruleset_action_name(b[i].action));
	}
}

/*
 * At rest the active set's trie holds exactly want[0..n); the other one
 * holds no prefix want lacks, each with want's id (its action may lag:
 * the next replace diffs against it).
 */
static void assert_at_rest(const struct pins *p, const struct rule *want, size_t n)
{
	struct ruleset a = {}, r = {};
	uint32_t active = 0;
	char x[CIDR_STRLEN];
	size_t j = 0;

	assert_int_equal(pins_active_set(p, &active), 0);
	assert_int_equal(trie_read_set(p, (int)active, &a), 0);
	assert_same_rules(a.r, a.n, want, n);
	assert_int_equal(trie_read_set(p, !active, &r), 0);
	for (size_t i = 0; i < r.n; i++) {
		while (j < a.n && cidr_compare(&a.r[j].prefix, &r.r[i].prefix) < 0)
			j++;
		if (j == a.n || cidr_compare(&a.r[j].prefix, &r.r[i].prefix))
			fail_msg("the inactive set holds %s, which the active one lacks",
				 cidr_format(&r.r[i].prefix, x, sizeof(x)));
		if (r.r[i].id != a.r[j].id)
			fail_msg("%s: id %u in the inactive set, %u in the active one",
				 cidr_format(&r.r[i].prefix, x, sizeof(x)), r.r[i].id, a.r[j].id);
	}
	ruleset_free(&a);
	ruleset_free(&r);
}

static void parse_list(struct rulefile *rf, const char *text)
{
	struct rulefile_opts o = { .name = "test" };

	if (rulefile_parse_text(rf, &o, text, strlen(text)))
		fail_msg("test list refused: %s", rf->error);
}

static void test_save_replace_save_is_identical(void **state)
{
	struct maps_replace_stats st;
	struct ruleset r1 = {}, r2 = {};
	struct rulefile rf;

	(void)state;
	parse_list(&rf, "198.18.0.0/15 allow\n198.18.1.0/24 deny\n198.18.1.7 allow\n"
			"2001:db8::/32 deny\n2001:db8:1::/48 allow\n0.0.0.0/0 deny\n::/0 allow\n");
	assert_int_equal(maps_replace_rules(&h.maps, rf.rules, rf.n, &st), 0);
	assert_int_equal(st.added, 7);
	assert_int_equal(trie_read(&h.pins, &r1), 0);
	assert_same_rules(r1.r, r1.n, rf.rules, rf.n);

	/* Restoring what was saved changes nothing and reads back the same. */
	assert_int_equal(maps_replace_rules(&h.maps, r1.r, r1.n, &st), 0);
	assert_int_equal(st.added + st.updated + st.deleted, 0);
	assert_int_equal(trie_read(&h.pins, &r2), 0);
	assert_same_rules(r2.r, r2.n, r1.r, r1.n);
	assert_at_rest(&h.pins, r1.r, r1.n);
	ruleset_free(&r1);
	ruleset_free(&r2);
	rulefile_free(&rf);
}

static void test_replace_counts_changes_against_the_old_set(void **state)
{
	struct maps_replace_stats st;
	struct rulefile a, b;

	(void)state;
	parse_list(&a, "198.18.1.0/24 deny\n198.18.2.0/24 allow\n198.18.3.0/24 deny\n");
	parse_list(&b, "198.18.1.0/24 allow\n198.18.3.0/24 deny\n2001:db8::/32 deny\n");
	assert_int_equal(maps_replace_rules(&h.maps, a.rules, a.n, &st), 0);
	assert_int_equal(maps_replace_rules(&h.maps, b.rules, b.n, &st), 0);
	assert_int_equal(st.added, 1);
	assert_int_equal(st.updated, 1);
	assert_int_equal(st.deleted, 1);
	assert_int_equal(st.v4, 2);
	assert_int_equal(st.v6, 1);
	assert_at_rest(&h.pins, b.rules, b.n);
	rulefile_free(&a);
	rulefile_free(&b);
}

static void test_import_adds_and_updates_and_keeps_the_rest(void **state)
{
	struct maps_replace_stats st;
	struct rulefile a, b, want;

	(void)state;
	parse_list(&a, "198.18.1.0/24 deny\n198.18.2.0/24 allow\n");
	parse_list(&b, "198.18.2.0/24 deny\n198.18.9.0/24 allow\n");
	parse_list(&want, "198.18.1.0/24 deny\n198.18.2.0/24 deny\n198.18.9.0/24 allow\n");
	assert_int_equal(maps_replace_rules(&h.maps, a.rules, a.n, &st), 0);
	assert_int_equal(maps_import_rules(&h.maps, b.rules, b.n, &st), 0);
	assert_int_equal(st.added, 1);
	assert_int_equal(st.updated, 1);
	assert_int_equal(st.deleted, 0);
	assert_at_rest(&h.pins, want.rules, want.n);
	rulefile_free(&a);
	rulefile_free(&b);
	rulefile_free(&want);
}

static void test_unsorted_input_is_sorted_and_repeats_are_refused(void **state)
{
	struct rule in[3] = {
		make_rule("2001:db8::/32", IPBLOCK_ACTION_DENY),
		make_rule("198.18.2.0/24", IPBLOCK_ACTION_ALLOW),
		make_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY),
	};
	struct rule sorted[3] = { in[2], in[1], in[0] };

	(void)state;
	assert_int_equal(maps_replace_rules(&h.maps, in, 3, NULL), 0);
	assert_at_rest(&h.pins, sorted, 3);
	in[0] = in[1];
	assert_int_equal(maps_replace_rules(&h.maps, in, 3, NULL), -EINVAL);
	assert_int_equal(maps_import_rules(&h.maps, in, 3, NULL), -EINVAL);
	assert_at_rest(&h.pins, sorted, 3);
}

/*
 * A random address inside r (or anywhere, half the time), so that most
 * probes land on rules and their nested exceptions.
 */
static void probe_address(const struct rule *rules, size_t n, int *family, uint8_t addr[16])
{
	uint64_t hi = rng(), lo = rng();

	memcpy(addr, &hi, 8);
	memcpy(addr + 8, &lo, 8);
	*family = rng() % 4 ? AF_INET : AF_INET6;
	if (rng() % 2) {
		const struct cidr *p = &rules[rng() % n].prefix;
		unsigned int full = p->len / 8, rem = p->len % 8;

		*family = p->family;
		memcpy(addr, p->addr, full);
		if (rem)
			addr[full] = (uint8_t)((p->addr[full] & (0xff << (8 - rem))) |
					       (addr[full] & (0xff >> rem)));
	}
	if (*family == AF_INET)
		memset(addr + 4, 0, 12);
}

/* A random prefix: a fresh one, or (often) one nested inside an earlier rule. */
static struct cidr random_prefix(const struct rule *have, size_t n)
{
	struct cidr c = {};
	uint64_t hi = rng(), lo = rng();

	memcpy(c.addr, &hi, 8);
	memcpy(c.addr + 8, &lo, 8);
	if (n && rng() % 3 == 0) {
		/* Nest: keep an earlier rule's bits, make it longer. */
		const struct cidr *p = &have[rng() % n].prefix;
		unsigned int max = cidr_max_len(p);

		if (p->len < max) {
			struct cidr parent = *p;

			c.family = p->family;
			c.len = (uint8_t)(p->len + 1 + rng() % (max - p->len));
			for (unsigned int i = 0; i < p->len; i++) {
				uint8_t bit = (uint8_t)(0x80 >> (i % 8));

				c.addr[i / 8] = (uint8_t)((c.addr[i / 8] & ~bit) |
							  (parent.addr[i / 8] & bit));
			}
			cidr_clear_host_bits(&c);
			return c;
		}
	}
	c.family = rng() % 10 < 7 ? AF_INET : AF_INET6;
	c.len = c.family == AF_INET ? (uint8_t)(8 + rng() % 25) : (uint8_t)(16 + rng() % 113);
	if (c.family == AF_INET)
		memset(c.addr + 4, 0, 12);
	cidr_clear_host_bits(&c);
	return c;
}

static void test_import_100k_verdicts_match_the_reference_lookup(void **state)
{
	const size_t n_rules = 100000, n_probes = 20000;
	struct rule *gen = calloc(n_rules, sizeof(*gen));
	size_t cap = n_rules * 56, len = 0, n = 0, mismatches = 0, hits = 0;
	char *text = malloc(cap), ptext[CIDR_STRLEN];
	struct rulecache *ref = rulecache_new();
	struct maps_replace_stats st;
	struct ruleset back = {};
	struct rulefile rf;

	(void)state;
	assert_non_null(gen);
	assert_non_null(text);
	assert_non_null(ref);
	while (n < n_rules) {
		struct rule r = { .prefix = random_prefix(gen, n) };

		r.action = rng() % 2 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
		if (!rulecache_find(ref, &r.prefix, NULL))
			continue; /* one action per prefix */
		assert_int_equal(
			rulecache_insert(ref, &(struct rulecache_entry){ .rule = r }, NULL), 0);
		gen[n++] = r;
		len += (size_t)snprintf(text + len, cap - len, "%s %s\n",
					cidr_format(&r.prefix, ptext, sizeof(ptext)),
					ruleset_action_name(r.action));
	}
	/* Through the text path the CLI uses. */
	parse_list(&rf, text);
	free(text);
	assert_int_equal(rf.n, n_rules);
	assert_int_equal(maps_import_rules(&h.maps, rf.rules, rf.n, &st), 0);
	assert_int_equal(st.added, n_rules);
	assert_int_equal(st.v4 + st.v6, n_rules);
	assert_int_equal(trie_read(&h.pins, &back), 0);
	assert_same_rules(back.r, back.n, rf.rules, rf.n);
	ruleset_free(&back);

	for (size_t i = 0; i < n_probes; i++) {
		struct rulecache_entry e;
		uint8_t addr[16];
		int family, verdict = -1, want;

		probe_address(gen, n_rules, &family, addr);
		if (reference_lookup(ref, family, addr, &e) == 0) {
			want = e.rule.action == IPBLOCK_ACTION_DENY ? XDP_DROP : XDP_PASS;
			hits++;
		} else {
			want = XDP_PASS;
		}
		assert_int_equal(harness_verdict_src(&h, family, addr, &verdict), 0);
		if (verdict != want && mismatches++ < 5) {
			struct cidr a = { .family = (uint8_t)family,
					  .len = (uint8_t)(family == AF_INET ? 32 : 128) };

			memcpy(a.addr, addr, 16);
			print_error("verdict %d for %s, reference says %d\n", verdict,
				    cidr_format(&a, ptext, sizeof(ptext)), want);
		}
	}
	print_message("%zu probes, %zu inside some rule, %zu mismatches\n", n_probes, hits,
		      mismatches);
	assert_int_equal(mismatches, 0);
	assert_true(hits > n_probes / 3);
	rulefile_free(&rf);
	rulecache_free(ref);
	free(gen);
}

static void test_over_capacity_changes_nothing(void **state)
{
	struct rule first[600], more[500], other[1000];
	struct ruleset a0 = {}, a = {};
	struct maps_replace_stats st;
	struct harness small;
	char text[CIDR_STRLEN];
	int verdict;
	uint8_t probe[16] = { 10, 0, 0, 1 };

	(void)state;
	assert_int_equal(harness_open_capacity(&small, 1000), 0);
	for (int i = 0; i < 600; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.0/24", i / 256, i % 256);
		first[i] = make_rule(text, IPBLOCK_ACTION_DENY);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.0/24", 100 + i / 256, i % 256);
		more[i] = make_rule(text, IPBLOCK_ACTION_ALLOW);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(text, sizeof(text), "172.%d.%d.0/24", 16 + i / 256, i % 256);
		other[i] = make_rule(text, IPBLOCK_ACTION_DENY);
	}
	assert_int_equal(maps_import_rules(&small.maps, first, 600, &st), 0);
	assert_int_equal(trie_read(&small.pins, &a0), 0);
	assert_int_equal(a0.n, 600);

	/* 600 + 500 > 1000: refused, and the message has what it needs. */
	assert_int_equal(maps_import_rules(&small.maps, more, 500, &st), -ENOSPC);
	assert_int_equal(st.v4, 1100);
	assert_int_equal(st.cap_v4, 1000);
	assert_at_rest(&small.pins, a0.r, a0.n);
	assert_int_equal(harness_verdict_src(&small, AF_INET, probe, &verdict), 0);
	assert_int_equal(verdict, XDP_DROP);

	/* A replace one over capacity: refused too. */
	struct rule *big = malloc(1001 * sizeof(*big));

	assert_non_null(big);
	memcpy(big, other, sizeof(other));
	big[1000] = make_rule("192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_int_equal(maps_replace_rules(&small.maps, big, 1001, &st), -ENOSPC);
	assert_int_equal(st.v4, 1001);
	assert_at_rest(&small.pins, a0.r, a0.n);

	/*
	 * 1000 all-new rules over 600 old ones fit in 1000 only because the
	 * deletes go first; a full set replaced by another full set works.
	 */
	assert_int_equal(maps_replace_rules(&small.maps, other, 1000, &st), 0);
	assert_int_equal(st.deleted, 600);
	assert_int_equal(st.added, 1000);
	assert_int_equal(trie_read(&small.pins, &a), 0);
	assert_int_equal(a.n, 1000);
	ruleset_free(&a);
	ruleset_free(&a0);
	free(big);
	harness_close(&small);
}

static void test_replace_repairs_a_set_b_left_active(void **state)
{
	struct rule x = make_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY);
	struct rule y = make_rule("198.18.2.0/24", IPBLOCK_ACTION_DENY);
	struct rule z[2] = { make_rule("198.18.3.0/24", IPBLOCK_ACTION_DENY),
			     make_rule("2001:db8::/32", IPBLOCK_ACTION_ALLOW) };
	/* A replace dies with its changes half-made: the dirty mark stays. */
	struct ipblock_config cfg = { .active_set = 1, .flags = IPBLOCK_CONFIG_DIRTY };
	struct maps_replace_stats st;
	__u32 zero = 0;

	(void)state;
	/* What a replace killed after its switch leaves: B active, A behind. */
	assert_int_equal(trie_put(&h.pins, 1, &x), 0);
	assert_int_equal(maps_rule_set(&h.maps, &y), 0);
	assert_int_equal(trie_delete(&h.pins, 1, &y.prefix), 0);
	assert_int_equal(bpf_map_update_elem(h.pins.fd[IPBLOCK_MAP_CONFIG], &zero, &cfg, BPF_ANY),
			 0);

	assert_int_equal(maps_replace_rules(&h.maps, z, 2, &st), 0);
	/* Counted against B, the set packets were judged by. */
	assert_int_equal(st.deleted, 1);
	assert_int_equal(st.added, 2);
	assert_at_rest(&h.pins, z, 2);
	assert_int_equal(bpf_map_lookup_elem(h.pins.fd[IPBLOCK_MAP_CONFIG], &zero, &cfg), 0);
	assert_int_equal(cfg.flags, 0);
}

static void test_flush_empties_both_sets(void **state)
{
	struct rulefile rf;
	size_t removed = 0, v4 = 1, v6 = 1;

	(void)state;
	parse_list(&rf, "198.18.1.0/24 deny\n2001:db8::/32 allow\n198.18.0.0/15 allow\n");
	assert_int_equal(maps_replace_rules(&h.maps, rf.rules, rf.n, NULL), 0);
	assert_int_equal(trie_count(&h.pins, &v4, &v6), 0);
	assert_int_equal(v4, 2);
	assert_int_equal(v6, 1);
	assert_int_equal(maps_flush(&h.maps, &removed), 0);
	assert_int_equal(removed, 3);
	assert_at_rest(&h.pins, NULL, 0);
	rulefile_free(&rf);
}

static void test_replace_with_a_rule_cache_reports_changes(void **state)
{
	struct rulecache *rc = rulecache_new();
	struct rulecache_entry e = { .rule = make_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY) };
	struct maps_replace_stats st;
	struct ruleset r = {};

	(void)state;
	assert_non_null(rc);
	assert_int_equal(rulecache_insert(rc, &e, NULL), 0);
	e.rule = make_rule("2001:db8::/32", IPBLOCK_ACTION_DENY);
	assert_int_equal(rulecache_insert(rc, &e, NULL), 0);
	/* The cache's rules, sorted, are what a replace takes. */
	assert_int_equal(rulecache_rules(rc, &r), 0);
	assert_int_equal(maps_replace_rules(&h.maps, r.r, r.n, &st), 0);
	assert_int_equal(st.added + st.updated + st.deleted, 2);
	assert_int_equal(maps_replace_rules(&h.maps, r.r, r.n, &st), 0);
	assert_int_equal(st.added + st.updated + st.deleted, 0);
	ruleset_free(&r);
	rulecache_free(rc);
}

static void test_per_rule_fallback_gives_the_same_results(void **state)
{
	struct maps_replace_stats st;
	struct rulefile a, b;
	struct ruleset r = {};
	size_t removed = 0;
	char *text = malloc(40 * 20000);
	size_t len = 0;

	(void)state;
	assert_non_null(text);
	/* More than one batch's worth, so chunking is exercised too. */
	for (int i = 0; i < 20000; i++)
		len += (size_t)snprintf(text + len, 40, "10.%d.%d.0/24 %s\n", i / 256, i % 256,
					i % 3 ? "deny" : "allow");
	parse_list(&a, text);
	free(text);
	parse_list(&b, "198.18.1.0/24 deny\n2001:db8::/32 allow\n");
	h.pins.per_rule = true;
	assert_int_equal(maps_replace_rules(&h.maps, a.rules, a.n, &st), 0);
	assert_int_equal(st.added, 20000);
	assert_at_rest(&h.pins, a.rules, a.n);
	assert_int_equal(trie_read(&h.pins, &r), 0);
	assert_same_rules(r.r, r.n, a.rules, a.n);
	ruleset_free(&r);
	assert_int_equal(maps_replace_rules(&h.maps, b.rules, b.n, &st), 0);
	assert_int_equal(st.deleted, 20000);
	assert_at_rest(&h.pins, b.rules, b.n);
	assert_int_equal(maps_flush(&h.maps, &removed), 0);
	assert_int_equal(removed, 2);
	h.pins.per_rule = false;
	assert_at_rest(&h.pins, NULL, 0);
	rulefile_free(&a);
	rulefile_free(&b);
}

/* --- atomicity under traffic ------------------------------------------------ */

enum kind { ALWAYS_DENY, ALWAYS_ALLOW, FLIPPING, KINDS };

struct source {
	const char *addr;
	enum kind kind;
	uint8_t frame[256];
	size_t len;
	int family;
};

/*
 * Sources and why each catches a different mistake:
 *  198.18.3.1, .4.1  same rule in both lists: a replace that empties the
 *                    active set and refills it lets them through / drops them.
 *  198.19.6.1        denied by /24 in X and by /25 in Y, outside the /16
 *                    below: a set caught between deleting X's rule and
 *                    adding Y's has no rule for it and passes it.
 *  198.18.7.1        allowed the same way under a 198.18.0.0/16 deny: caught
 *                    half-way it falls to the /16 and is dropped.
 *  2001:db8:3::1     the IPv6 form of 198.19.6.1.
 *  198.18.1.1, .2.1  X and Y give opposite verdicts: both must be seen.
 */
static struct source sources[] = {
	{ .addr = "198.18.3.1", .kind = ALWAYS_DENY },
	{ .addr = "198.19.6.1", .kind = ALWAYS_DENY },
	{ .addr = "2001:db8:3::1", .kind = ALWAYS_DENY },
	{ .addr = "198.18.4.1", .kind = ALWAYS_ALLOW },
	{ .addr = "198.18.7.1", .kind = ALWAYS_ALLOW },
	{ .addr = "198.18.1.1", .kind = FLIPPING },
	{ .addr = "198.18.2.1", .kind = FLIPPING },
};

#define N_SOURCES (sizeof(sources) / sizeof(sources[0]))

struct traffic {
	atomic_bool stop;
	uint64_t runs[N_SOURCES], passed[N_SOURCES], dropped[N_SOURCES], errors;
};

static void *traffic_run(void *arg)
{
	struct traffic *t = arg;
	time_t deadline = time(NULL) + 120;

	/* Bounded: the main thread's stop flag, or two minutes at most. */
	for (uint64_t i = 0; !atomic_load(&t->stop) && i < 100000000ull; i++) {
		size_t s = i % N_SOURCES;
		int verdict;

		if ((i & 0xfff) == 0 && time(NULL) > deadline)
			break;
		if (harness_run(&h, sources[s].frame, sources[s].len, &verdict)) {
			t->errors++;
			continue;
		}
		t->runs[s]++;
		if (verdict == XDP_DROP)
			t->dropped[s]++;
		else
			t->passed[s]++;
	}
	return NULL;
}

/* List X or Y: the shared and the flipping rules, plus fillers that make each switch work. */
static struct rule *make_list(bool y, size_t fillers, size_t *n)
{
	struct rule *r = calloc(fillers + 16, sizeof(*r));
	const uint8_t D = IPBLOCK_ACTION_DENY, A = IPBLOCK_ACTION_ALLOW;
	char text[CIDR_STRLEN];
	size_t k = 0;

	assert_non_null(r);
	r[k++] = make_rule("198.18.0.0/16", D);
	r[k++] = make_rule("198.18.1.0/24", y ? A : D);
	r[k++] = make_rule("198.18.2.0/24", y ? D : A);
	r[k++] = make_rule("198.18.3.0/24", D);
	r[k++] = make_rule("198.18.4.0/24", A);
	r[k++] = make_rule(y ? "198.19.6.0/25" : "198.19.6.0/24", D);
	r[k++] = make_rule(y ? "198.18.7.0/25" : "198.18.7.0/24", A);
	r[k++] = make_rule(y ? "2001:db8:3::/64" : "2001:db8:3::/48", D);
	for (size_t i = 0; i < fillers; i++) {
		/* X's fillers in 10.0.0.0/9, Y's in 10.128.0.0/9: all change each time. */
		size_t v = i + (y ? 1u << 15 : 0);

		snprintf(text, sizeof(text), "10.%zu.%zu.0/24", v >> 8, v & 0xff);
		r[k++] = make_rule(text, i % 2 ? A : D);
	}
	*n = k;
	assert_int_equal(ruleset_sort(r, NULL, k), 0);
	return r;
}

static void test_replace_is_atomic_under_concurrent_traffic(void **state)
{
	const size_t fillers = 20000, replaces = 30;
	struct traffic *t = calloc(1, sizeof(*t));
	struct rule *x, *y;
	struct timespec t0, t1;
	size_t nx, ny;
	pthread_t tid;

	(void)state;
	assert_non_null(t);
	for (size_t s = 0; s < N_SOURCES; s++) {
		struct frame_spec spec = { .payload = 18 };
		struct cidr c;

		assert_int_equal(cidr_parse(sources[s].addr, &c, NULL, NULL, 0), 0);
		spec.family = c.family;
		memcpy(spec.src, c.addr, 16);
		sources[s].family = c.family;
		sources[s].len = frame_build(&spec, sources[s].frame, sizeof(sources[s].frame));
		assert_true(sources[s].len > 0);
	}
	x = make_list(false, fillers, &nx);
	y = make_list(true, fillers, &ny);
	assert_int_equal(maps_replace_rules(&h.maps, x, nx, NULL), 0);

	assert_int_equal(pthread_create(&tid, NULL, traffic_run, t), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < replaces; i++) {
		struct maps_replace_stats st;
		bool to_y = i % 2 == 0;

		assert_int_equal(maps_replace_rules(&h.maps, to_y ? y : x, to_y ? ny : nx, &st), 0);
		assert_int_equal(st.added, fillers + 3);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	atomic_store(&t->stop, true);
	pthread_join(tid, NULL);

	double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	print_message("%zu replaces of %zu rules in %.2f s (%.0f ms each); frames judged:\n",
		      replaces, nx, secs, 1000 * secs / (double)replaces);
	for (size_t s = 0; s < N_SOURCES; s++) {
		print_message("  %-14s %-12s %8llu runs %8llu passed %8llu dropped\n",
			      sources[s].addr,
			      sources[s].kind == ALWAYS_DENY	? "always-deny"
			      : sources[s].kind == ALWAYS_ALLOW ? "always-allow"
								: "flipping",
			      (unsigned long long)t->runs[s], (unsigned long long)t->passed[s],
			      (unsigned long long)t->dropped[s]);
	}
	assert_int_equal(t->errors, 0);
	for (size_t s = 0; s < N_SOURCES; s++) {
		assert_true(t->runs[s] > 100);
		if (sources[s].kind == ALWAYS_DENY)
			assert_int_equal(t->passed[s], 0);
		else if (sources[s].kind == ALWAYS_ALLOW)
			assert_int_equal(t->dropped[s], 0);
		else
			assert_true(t->passed[s] > 0 && t->dropped[s] > 0);
	}
	/* An even number of replaces from X ends on X. */
	assert_at_rest(&h.pins, replaces % 2 ? y : x, replaces % 2 ? ny : nx);
	free(x);
	free(y);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_replace_save_is_identical, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replace_counts_changes_against_the_old_set,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_adds_and_updates_and_keeps_the_rest,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_unsorted_input_is_sorted_and_repeats_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_import_100k_verdicts_match_the_reference_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_over_capacity_changes_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replace_repairs_a_set_b_left_active, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush_empties_both_sets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_with_a_rule_cache_reports_changes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_per_rule_fallback_gives_the_same_results,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_is_atomic_under_concurrent_traffic,
						setup, teardown),
	};

	if (getenv("BULK_ONLY"))
		cmocka_set_test_filter(getenv("BULK_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
