// SPDX-License-Identifier: GPL-2.0
/*
 * Rule arrays: the sort order (cidr_compare(), IPv4 first, stable), the
 * input check of a change, search, the diff and its materialised form, the
 * merge of an import, and the action names.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ruleset.h"

static uint64_t rng_state = 20261124;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static struct rule rule_of(const char *text, uint8_t action, uint32_t id)
{
	struct rule r = { .action = action, .id = id };

	assert_int_equal(cidr_parse(text, &r.prefix, NULL, NULL, 0), 0);
	return r;
}

/* A random rule of either family, from a small space so prefixes repeat. */
static struct rule random_rule(void)
{
	struct rule r = { .action = rnd() % 2 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW };

	r.prefix.family = rnd() % 3 ? AF_INET : AF_INET6;
	r.prefix.addr[0] = (uint8_t)(rnd() % 4);
	r.prefix.addr[1] = (uint8_t)rnd();
	r.prefix.addr[2] = (uint8_t)rnd();
	r.prefix.len = (uint8_t)(rnd() % (cidr_max_len(&r.prefix) + 1));
	cidr_clear_host_bits(&r.prefix);
	return r;
}

static void test_sort_is_cidr_order_ipv4_first_and_stable(void **state)
{
	enum { N = 5000 };
	struct rule *r = malloc(N * sizeof(*r));
	uint32_t *tags = malloc(N * sizeof(*tags));

	(void)state;
	assert_non_null(r);
	assert_non_null(tags);
	for (uint32_t i = 0; i < N; i++) {
		r[i] = random_rule();
		r[i].id = i;
		tags[i] = i;
	}
	assert_int_equal(ruleset_sort(r, tags, N), 0);
	for (uint32_t i = 0; i < N; i++) {
		/* The tag moved with its rule. */
		assert_int_equal(tags[i], r[i].id);
		if (!i)
			continue;
		int c = cidr_compare(&r[i - 1].prefix, &r[i].prefix);

		assert_true(c <= 0);
		/* Equal prefixes keep their input order. */
		if (!c)
			assert_true(r[i - 1].id < r[i].id);
	}
	assert_int_equal(r[0].prefix.family, AF_INET);
	assert_int_equal(r[N - 1].prefix.family, AF_INET6);
	free(r);
	free(tags);
}

/* Records that start with a rule, as the rule cache's entries do. */
struct record {
	struct rule rule;
	uint64_t extra;
};

static void test_order_reads_records_with_a_stride(void **state)
{
	enum { N = 1000 };
	struct record *v = calloc(N, sizeof(*v));
	uint32_t *perm;

	(void)state;
	assert_non_null(v);
	for (uint32_t i = 0; i < N; i++) {
		v[i].rule = random_rule();
		v[i].extra = i;
	}
	assert_int_equal(ruleset_order(&v[0].rule, sizeof(*v), N, &perm), 0);
	for (uint32_t i = 1; i < N; i++)
		assert_true(cidr_compare(&v[perm[i - 1]].rule.prefix, &v[perm[i]].rule.prefix) <=
			    0);
	free(perm);
	free(v);
}

static void test_sorted_accepts_sorted_sorts_the_rest_and_refuses_repeats(void **state)
{
	struct rule in[3] = { rule_of("2001:db8::/32", IPBLOCK_ACTION_DENY, 0),
			      rule_of("198.51.100.0/24", IPBLOCK_ACTION_DENY, 0),
			      rule_of("192.0.2.0/24", IPBLOCK_ACTION_ALLOW, 0) };
	struct ruleset copy;

	(void)state;
	/* Out of order: a sorted copy. */
	assert_int_equal(ruleset_sorted(in, 3, &copy), 0);
	assert_non_null(copy.r);
	assert_int_equal(copy.n, 3);
	assert_int_equal(cidr_compare(&copy.r[0].prefix, &in[2].prefix), 0);
	assert_int_equal(cidr_compare(&copy.r[2].prefix, &in[0].prefix), 0);
	/* Already sorted: no copy. */
	struct ruleset again;

	assert_int_equal(ruleset_sorted(copy.r, copy.n, &again), 0);
	assert_null(again.r);
	ruleset_free(&copy);

	/* The same prefix twice, or a length past the family's, is refused. */
	in[1] = in[0];
	assert_int_equal(ruleset_sorted(in, 3, &copy), -EINVAL);
	assert_null(copy.r);
	in[1] = rule_of("198.51.100.0/24", IPBLOCK_ACTION_DENY, 0);
	in[1].prefix.len = 33;
	assert_int_equal(ruleset_sorted(in, 3, &copy), -EINVAL);
	assert_int_equal(ruleset_sorted(NULL, 0, &copy), 0);
}

static void test_search_and_family_split(void **state)
{
	struct rule r[4] = { rule_of("10.0.0.0/8", IPBLOCK_ACTION_DENY, 1),
			     rule_of("10.1.0.0/16", IPBLOCK_ACTION_ALLOW, 2),
			     rule_of("2001:db8::/32", IPBLOCK_ACTION_DENY, 3),
			     rule_of("2001:db8:1::/48", IPBLOCK_ACTION_ALLOW, 4) };
	struct cidr p = rule_of("10.1.0.0/16", 0, 0).prefix;
	const struct rule *part;
	size_t n, v4, v6;

	(void)state;
	assert_int_equal(ruleset_lower_bound(r, 4, &p), 1);
	p.len = 12;
	assert_int_equal(ruleset_lower_bound(r, 4, &p), 1);
	ruleset_family(r, 4, AF_INET, &part, &n);
	assert_ptr_equal(part, r);
	assert_int_equal(n, 2);
	ruleset_family(r, 4, AF_INET6, &part, &n);
	assert_ptr_equal(part, r + 2);
	assert_int_equal(n, 2);
	ruleset_family(r, 2, AF_INET6, &part, &n);
	assert_int_equal(n, 0);
	ruleset_count(r, 4, &v4, &v6);
	assert_int_equal(v4, 2);
	assert_int_equal(v6, 2);
}

static int count_gone(const struct rule *old, void *ctx)
{
	(void)old;
	((size_t *)ctx)[0]++;
	return 0;
}

static int count_added(const struct rule *new, void *ctx)
{
	(void)new;
	((size_t *)ctx)[1]++;
	return 0;
}

static int count_changed(const struct rule *old, const struct rule *new, void *ctx)
{
	assert_int_equal(cidr_compare(&old->prefix, &new->prefix), 0);
	((size_t *)ctx)[2]++;
	return 0;
}

static void test_diff_names_each_prefix_once_and_an_id_change_is_a_change(void **state)
{
	static const struct ruleset_diff hooks = { count_gone, count_added, count_changed };
	struct rule have[4] = { rule_of("10.0.0.0/8", IPBLOCK_ACTION_DENY, 1),
				rule_of("10.1.0.0/16", IPBLOCK_ACTION_ALLOW, 2),
				rule_of("10.2.0.0/16", IPBLOCK_ACTION_ALLOW, 3),
				rule_of("2001:db8::/32", IPBLOCK_ACTION_DENY, 4) };
	struct rule want[4] = { rule_of("10.0.0.0/8", IPBLOCK_ACTION_DENY, 1),
				rule_of("10.1.0.0/16", IPBLOCK_ACTION_DENY, 2),
				rule_of("10.2.0.0/16", IPBLOCK_ACTION_ALLOW, 9),
				rule_of("2001:db8:1::/48", IPBLOCK_ACTION_DENY, 5) };
	struct ruleset_changes c = {};
	size_t n[3] = { 0 };

	(void)state;
	assert_int_equal(ruleset_diff(have, 4, want, 4, &hooks, n), 0);
	assert_int_equal(n[0], 1); /* 2001:db8::/32 */
	assert_int_equal(n[1], 1); /* 2001:db8:1::/48 */
	assert_int_equal(n[2], 2); /* an action, an id */
	struct ruleset_delta d;

	ruleset_delta(have, 4, want, 4, &d);
	assert_int_equal(d.gone, 1);
	assert_int_equal(d.added, 1);
	assert_int_equal(d.changed, 2);
	assert_false(ruleset_equal(have, 4, want, 4));
	assert_true(ruleset_equal(have, 4, have, 4));

	/* The same diff as pairs pointing into both arrays, in prefix order. */
	assert_int_equal(ruleset_changes(have, 4, want, 4, &c), 0);
	assert_int_equal(c.n, 4);
	assert_ptr_equal(c.c[0].old, &have[1]);
	assert_ptr_equal(c.c[0].new, &want[1]);
	assert_ptr_equal(c.c[2].old, &have[3]);
	assert_null(c.c[2].new);
	assert_null(c.c[3].old);
	assert_ptr_equal(c.c[3].new, &want[3]);
	ruleset_changes_free(&c);
	assert_int_equal(c.n, 0);
}

static void test_merge_takes_the_second_rule_of_a_shared_prefix(void **state)
{
	struct rule x[2] = { rule_of("10.0.0.0/8", IPBLOCK_ACTION_DENY, 1),
			     rule_of("10.1.0.0/16", IPBLOCK_ACTION_ALLOW, 2) };
	struct rule y[2] = { rule_of("10.1.0.0/16", IPBLOCK_ACTION_DENY, 0),
			     rule_of("2001:db8::/32", IPBLOCK_ACTION_DENY, 0) };
	struct ruleset out = {};

	(void)state;
	assert_int_equal(ruleset_merge(x, 2, y, 2, &out), 0);
	assert_int_equal(out.n, 3);
	assert_int_equal(out.r[0].id, 1);
	assert_int_equal(out.r[1].action, IPBLOCK_ACTION_DENY);
	assert_int_equal(out.r[2].prefix.family, AF_INET6);
	assert_int_equal(ruleset_merge(NULL, 0, NULL, 0, &out), 0);
	assert_int_equal(out.n, 0);
	ruleset_free(&out);
}

static void test_common_keeps_the_first_rule_of_each_shared_prefix(void **state)
{
	struct rule x[4] = { rule_of("10.0.0.0/8", IPBLOCK_ACTION_DENY, 1),
			     rule_of("10.1.0.0/16", IPBLOCK_ACTION_ALLOW, 2),
			     rule_of("10.1.0.0/24", IPBLOCK_ACTION_DENY, 3),
			     rule_of("2001:db8::/32", IPBLOCK_ACTION_DENY, 4) };
	struct rule y[3] = { rule_of("10.1.0.0/16", IPBLOCK_ACTION_DENY, 2),
			     rule_of("10.2.0.0/16", IPBLOCK_ACTION_DENY, 0),
			     rule_of("2001:db8::/32", IPBLOCK_ACTION_DENY, 4) };
	struct ruleset out = {};

	(void)state;
	assert_int_equal(ruleset_common(x, 4, y, 3, &out), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.r[0].id, 2);
	assert_int_equal(out.r[0].action, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(out.r[1].id, 4);
	assert_int_equal(ruleset_common(x, 4, NULL, 0, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(ruleset_common(NULL, 0, y, 3, &out), 0);
	assert_int_equal(out.n, 0);
	ruleset_free(&out);
}

static void test_action_names_round_trip(void **state)
{
	uint8_t a = 0;

	(void)state;
	assert_string_equal(ruleset_action_name(IPBLOCK_ACTION_ALLOW), "allow");
	assert_string_equal(ruleset_action_name(IPBLOCK_ACTION_DENY), "deny");
	assert_string_equal(ruleset_action_name(0), "?");
	assert_int_equal(ruleset_action_parse("deny", &a), 0);
	assert_int_equal(a, IPBLOCK_ACTION_DENY);
	assert_int_equal(ruleset_action_parse("allow", &a), 0);
	assert_int_equal(a, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(ruleset_action_parse("drop", &a), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sort_is_cidr_order_ipv4_first_and_stable),
		cmocka_unit_test(test_order_reads_records_with_a_stride),
		cmocka_unit_test(test_sorted_accepts_sorted_sorts_the_rest_and_refuses_repeats),
		cmocka_unit_test(test_search_and_family_split),
		cmocka_unit_test(test_diff_names_each_prefix_once_and_an_id_change_is_a_change),
		cmocka_unit_test(test_merge_takes_the_second_rule_of_a_shared_prefix),
		cmocka_unit_test(test_common_keeps_the_first_rule_of_each_shared_prefix),
		cmocka_unit_test(test_action_names_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
