// SPDX-License-Identifier: GPL-2.0
/*
 * The JSON that -l --json prints: a rule with its claims (deadline as UTC
 * time and seconds left), a rule nobody claims, the summary; read back by
 * json-c's own parser, so what is checked is what a script gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "jsonout.h"

static struct owners_sources src;

static struct rule rule(const char *s, uint8_t action)
{
	struct rule r = { .action = action };

	assert_int_equal(cidr_parse(s, &r.prefix, NULL, NULL, 0), 0);
	return r;
}

/* o as the one line jsonout_print() writes (o is freed). */
static void printed(struct json_object *o, char *buf, size_t len)
{
	FILE *f = fmemopen(buf, len, "w");

	assert_non_null(f);
	assert_int_equal(jsonout_print(f, o), 0);
	fclose(f);
}

static void test_a_rule_lists_its_claims_with_time_left(void **state)
{
	struct rule r = rule("198.51.100.0/24", IPBLOCK_ACTION_ALLOW);
	struct owner_claim c[2] = {
		{ .prefix = r.prefix, .source = 0, .action = IPBLOCK_ACTION_ALLOW },
		{ .prefix = r.prefix,
		  .source = 7,
		  .action = IPBLOCK_ACTION_DENY,
		  .deadline = 1796529600 },
	};
	char buf[1024];

	(void)state;
	snprintf(src.name[0], sizeof(src.name[0]), "static");
	snprintf(src.name[7], sizeof(src.name[7]), "fail2ban-sshd");
	printed(jsonout_rule(&r, c, 2, &src, 1796529600 - 59, NULL), buf, sizeof(buf));
	assert_string_equal(buf,
			    "{\"type\":\"rule\",\"prefix\":\"198.51.100.0/24\",\"family\":4,"
			    "\"action\":\"allow\",\"claims\":[{\"source\":\"static\","
			    "\"action\":\"allow\"},{\"source\":\"fail2ban-sshd\",\"action\":"
			    "\"deny\",\"expires\":\"2026-12-06T04:00:00Z\",\"seconds_left\":59}"
			    "]}\n");

	/* Past its deadline (not yet expired): 0 left, never negative. */
	printed(jsonout_rule(&r, &c[1], 1, &src, 1796529600 + 5, NULL), buf, sizeof(buf));
	struct json_object *o = json_tokener_parse(buf), *claims, *x;

	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "claims", &claims));
	x = json_object_array_get_idx(claims, 0);
	assert_true(json_object_object_get_ex(x, "seconds_left", &x));
	assert_int_equal(json_object_get_int64(x), 0);
	json_object_put(o);
}

static void test_an_unclaimed_ipv6_rule_has_an_empty_claim_list(void **state)
{
	struct rule r = rule("2001:db8::/32", IPBLOCK_ACTION_DENY);
	char buf[512];

	(void)state;
	printed(jsonout_rule(&r, NULL, 0, &src, 0, NULL), buf, sizeof(buf));
	assert_string_equal(buf, "{\"type\":\"rule\",\"prefix\":\"2001:db8::/32\",\"family\":6,"
				 "\"action\":\"deny\",\"claims\":[]}\n");
}

static void test_a_rule_shows_its_counters_and_last_hit_in_utc(void **state)
{
	struct rule r = rule("198.51.100.7/32", IPBLOCK_ACTION_DENY);
	struct hits_total never = {}, h = { .packets = 3, .bytes = 180 };
	struct json_object *o, *x, *v;
	struct timespec mono;
	time_t before = time(NULL), at;
	char buf[512];

	(void)state;
	printed(jsonout_rule(&r, NULL, 0, &src, 0, &never), buf, sizeof(buf));
	assert_string_equal(buf, "{\"type\":\"rule\",\"prefix\":\"198.51.100.7/32\",\"family\":4,"
				 "\"action\":\"deny\",\"claims\":[],\"hits\":{\"packets\":0,"
				 "\"bytes\":0}}\n");

	/* A hit one second ago on the monotonic clock is one second ago in UTC. */
	clock_gettime(CLOCK_MONOTONIC, &mono);
	h.last_ns = (uint64_t)(mono.tv_sec - 1) * 1000000000 + (uint64_t)mono.tv_nsec;
	printed(jsonout_rule(&r, NULL, 0, &src, 0, &h), buf, sizeof(buf));
	o = json_tokener_parse(buf);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "hits", &x));
	assert_true(json_object_object_get_ex(x, "packets", &v));
	assert_int_equal(json_object_get_int64(v), 3);
	assert_true(json_object_object_get_ex(x, "bytes", &v));
	assert_int_equal(json_object_get_int64(v), 180);
	assert_true(json_object_object_get_ex(x, "last", &v));
	struct tm tm = {};

	assert_non_null(strptime(json_object_get_string(v), "%Y-%m-%dT%H:%M:%SZ", &tm));
	at = timegm(&tm);
	assert_true(at >= before - 2 && at <= time(NULL));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_rule_lists_its_claims_with_time_left),
		cmocka_unit_test(test_an_unclaimed_ipv6_rule_has_an_empty_claim_list),
		cmocka_unit_test(test_a_rule_shows_its_counters_and_last_hit_in_utc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
