// SPDX-License-Identifier: GPL-2.0
/*
 * The operator-typed values of ipblock.conf and the command line: durations,
 * counts, booleans, listen addresses and names, with every refusal's reason.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "value.h"

#define DAY 86400ull

struct bad_case {
	const char *text, *why;
};

static void test_durations_in_every_accepted_spelling(void **state)
{
	static const struct {
		const char *text;
		uint64_t secs;
	} cases[] = {
		{ "0", 0 },
		{ "90", 90 },
		{ "90s", 90 },
		{ "30m", 1800 },
		{ "1h", 3600 },
		{ "2d", 2 * DAY },
		{ "1h30m", 5400 },
		{ "1d12h", DAY + 43200 },
		{ "1d1h1m1s", 90061 },
		{ "0s", 0 },
		{ "007m", 420 },
		{ "36h", 129600 },
		{ "3600", 3600 },
		{ "59m59s", 3599 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char why[VALUE_WHYLEN] = "";
		uint64_t secs = 12345;

		assert_int_equal(
			value_parse_duration(cases[i].text, 0, UINT64_MAX, &secs, why, sizeof(why)),
			0);
		assert_int_equal(secs, cases[i].secs);
		assert_string_equal(why, "");
	}
}

static void test_garbage_durations_are_refused_with_their_reason(void **state)
{
	static const struct bad_case cases[] = {
		{ "", "is empty" },
		{ "h", "expected a duration such as 90s, 30m, 1h, 2d or 1h30m" },
		{ "-5s", "expected a duration such as 90s, 30m, 1h, 2d or 1h30m" },
		{ "+5s", "expected a duration such as 90s, 30m, 1h, 2d or 1h30m" },
		{ " 5s", "expected a duration such as 90s, 30m, 1h, 2d or 1h30m" },
		{ "1.5h", "unknown unit '.'; use s, m, h or d" },
		{ "5x", "unknown unit 'x'; use s, m, h or d" },
		{ "5H", "unknown unit 'H'; use s, m, h or d" },
		{ "1w", "unknown unit 'w'; use s, m, h or d" },
		{ "5ms", "expected a duration such as 90s, 30m, 1h, 2d or 1h30m" },
		{ "5min", "expected a duration such as 90s, 30m, 1h, 2d or 1h30m" },
		{ "1h 30m", "expected a duration such as 90s, 30m, 1h, 2d or 1h30m" },
		{ "1h30", "a number without a unit may only stand alone (write 1h30m, not 1h30)" },
		{ "30m1h", "units go from largest to smallest, each once (e.g. 1d12h or 1h30m)" },
		{ "1h1h", "units go from largest to smallest, each once (e.g. 1d12h or 1h30m)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char why[VALUE_WHYLEN] = "";
		uint64_t secs = 777;

		assert_int_equal(
			value_parse_duration(cases[i].text, 0, UINT64_MAX, &secs, why, sizeof(why)),
			-EINVAL);
		assert_string_equal(why, cases[i].why);
		assert_int_equal(secs, 777); /* untouched on failure */
	}
}

static void test_duration_range_and_overflow_are_refused(void **state)
{
	char why[VALUE_WHYLEN];
	uint64_t secs = 0;

	(void)state;
	assert_int_equal(value_parse_duration("0", 1, 3600, &secs, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "must be from 1s to 1h");
	assert_int_equal(value_parse_duration("1h1s", 1, 3600, &secs, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "must be from 1s to 1h");
	assert_int_equal(value_parse_duration("31d", 0, 30 * DAY, &secs, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "must be at most 30d");
	assert_int_equal(value_parse_duration("1h", 1, 3600, &secs, why, sizeof(why)), 0);
	assert_int_equal(secs, 3600);

	/* Past 2^64 in the digits, in a unit's product and in the sum. */
	assert_int_equal(value_parse_duration("99999999999999999999999", 0, UINT64_MAX, &secs, why,
					      sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "must be at most 213503982334601d7h15s");
	assert_int_equal(
		value_parse_duration("213503982334602d", 0, UINT64_MAX, &secs, why, sizeof(why)),
		-EINVAL);
	assert_int_equal(value_parse_duration("213503982334601d7h15s", 0, UINT64_MAX, &secs, why,
					      sizeof(why)),
			 0);
	assert_int_equal(secs, UINT64_MAX);
	assert_int_equal(value_parse_duration("213503982334601d7h16s", 0, UINT64_MAX, &secs, why,
					      sizeof(why)),
			 -EINVAL);
	/* 2^32 seconds fits a uint64_t: it is the caller's bound that refuses it. */
	assert_int_equal(value_parse_duration("4294967296", 0, UINT32_MAX, &secs, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "must be at most 49710d6h28m15s");
}

static void test_duration_formats_back_to_what_parses(void **state)
{
	static const uint64_t secs[] = { 0,	  1,	 59,	   60,	       61,
					 3599,	  3600,	 5400,	   86399,      DAY,
					 DAY + 1, 90061, 30 * DAY, UINT32_MAX, UINT64_MAX };
	char buf[VALUE_DURATION_STRLEN];

	(void)state;
	assert_string_equal(value_format_duration(0, buf, sizeof(buf)), "0s");
	assert_string_equal(value_format_duration(5400, buf, sizeof(buf)), "1h30m");
	assert_string_equal(value_format_duration(DAY + 1, buf, sizeof(buf)), "1d1s");
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		uint64_t back = 0;

		value_format_duration(secs[i], buf, sizeof(buf));
		assert_int_equal(value_parse_duration(buf, 0, UINT64_MAX, &back, NULL, 0), 0);
		assert_int_equal(back, secs[i]);
	}
}

static void test_counts_take_k_and_m_suffixes(void **state)
{
	static const struct {
		const char *text;
		uint64_t v;
	} cases[] = {
		{ "0", 0 },	    { "1", 1 },	       { "100k", 100000 },
		{ "100K", 100000 }, { "1M", 1000000 }, { "100M", 100000000 },
		{ "0k", 0 },	    { "042", 42 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 99;

		assert_int_equal(value_parse_count(cases[i].text, 0, UINT64_MAX, &v, NULL, 0), 0);
		assert_int_equal(v, cases[i].v);
	}
}

static void test_bad_counts_are_refused_with_their_reason(void **state)
{
	static const char *const garbage[] = { "k",   "1m",  "1G",   "1.5k", "-1", "+1",
					       "1kk", "1 k", "0x10", " 1",   "1 ", "ten" };
	char why[VALUE_WHYLEN];
	uint64_t v = 5;

	(void)state;
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		assert_int_equal(value_parse_count(garbage[i], 0, UINT64_MAX, &v, why, sizeof(why)),
				 -EINVAL);
		assert_string_equal(
			why,
			"expected a whole number, optionally with k (thousand) or M (million)");
	}
	assert_int_equal(value_parse_count("", 0, 10, &v, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "is empty");
	assert_int_equal(value_parse_count("0", 1, 100000000, &v, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "must be from 1 to 100000000");
	assert_int_equal(value_parse_count("101M", 1, 100000000, &v, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "must be from 1 to 100000000");
	/* The suffix's product and the digits themselves overflowing. */
	assert_int_equal(
		value_parse_count("18446744073709552k", 0, UINT64_MAX, &v, why, sizeof(why)),
		-EINVAL);
	assert_int_equal(
		value_parse_count("18446744073709551616", 0, UINT64_MAX, &v, why, sizeof(why)),
		-EINVAL);
	assert_string_equal(why, "must be from 0 to 18446744073709551615");
	assert_int_equal(
		value_parse_count("18446744073709551615", 0, UINT64_MAX, &v, why, sizeof(why)), 0);
	assert_true(v == UINT64_MAX);
}

static void test_booleans_in_every_spelling(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "True", "on", "1" };
	static const char *const no[] = { "no", "No", "false", "FALSE", "off", "0" };
	static const char *const bad[] = { "y", "n", "2", "enabled", "", "yes please" };
	char why[VALUE_WHYLEN];
	bool b;

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		assert_int_equal(value_parse_bool(yes[i], &b, NULL, 0), 0);
		assert_true(b);
		assert_int_equal(value_parse_bool(no[i], &b, NULL, 0), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(value_parse_bool(bad[i], &b, why, sizeof(why)), -EINVAL);
		assert_string_equal(why, "expected yes or no (also true/false, on/off, 1/0)");
	}
}

static void test_listen_addresses_ipv4_and_bracketed_ipv6(void **state)
{
	struct value_hostport hp;
	char buf[VALUE_HOSTPORT_STRLEN];

	(void)state;
	assert_int_equal(value_parse_hostport("127.0.0.1:9657", &hp, NULL, 0), 0);
	assert_int_equal(hp.sa.sa_family, AF_INET);
	assert_int_equal(hp.len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(hp.in.sin_port), 9657);
	assert_int_equal(ntohl(hp.in.sin_addr.s_addr), 0x7f000001);
	assert_string_equal(value_format_hostport(&hp, buf, sizeof(buf)), "127.0.0.1:9657");

	assert_int_equal(value_parse_hostport("[::1]:9657", &hp, NULL, 0), 0);
	assert_int_equal(hp.sa.sa_family, AF_INET6);
	assert_int_equal(hp.len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(hp.in6.sin6_port), 9657);
	assert_true(IN6_IS_ADDR_LOOPBACK(&hp.in6.sin6_addr));
	assert_string_equal(value_format_hostport(&hp, buf, sizeof(buf)), "[::1]:9657");

	assert_int_equal(value_parse_hostport("0.0.0.0:1", &hp, NULL, 0), 0);
	assert_string_equal(value_format_hostport(&hp, buf, sizeof(buf)), "0.0.0.0:1");
	assert_int_equal(value_parse_hostport("[::]:65535", &hp, NULL, 0), 0);
	assert_string_equal(value_format_hostport(&hp, buf, sizeof(buf)), "[::]:65535");
	assert_int_equal(value_parse_hostport("[2001:DB8:0:0::7]:80", &hp, NULL, 0), 0);
	assert_string_equal(value_format_hostport(&hp, buf, sizeof(buf)), "[2001:db8::7]:80");
	assert_int_equal(value_parse_hostport("[::ffff:192.0.2.1]:80", &hp, NULL, 0), 0);
	assert_int_equal(hp.sa.sa_family, AF_INET6);
}

static void test_bad_listen_addresses_are_refused_with_their_reason(void **state)
{
	static const struct bad_case cases[] = {
		{ "", "expected ADDRESS:PORT, e.g. 127.0.0.1:9657 or [::1]:9657" },
		{ "9657", "expected ADDRESS:PORT, e.g. 127.0.0.1:9657 or [::1]:9657" },
		{ "127.0.0.1", "expected ADDRESS:PORT, e.g. 127.0.0.1:9657 or [::1]:9657" },
		{ ":9657", "the address is missing (0.0.0.0 or [::] listens on every address)" },
		{ "[]:9657", "the address is missing (0.0.0.0 or [::] listens on every address)" },
		{ "::1:9657", "an IPv6 address goes in brackets, e.g. [::1]:9657" },
		{ "[::1:9657", "the '[' of an IPv6 address has no ']'" },
		{ "[::1]", "expected [IPv6]:PORT, e.g. [::1]:9657" },
		{ "[::1]9657", "expected [IPv6]:PORT, e.g. [::1]:9657" },
		{ "127.0.0.1:", "the port must be a number from 1 to 65535" },
		{ "127.0.0.1:0", "the port must be a number from 1 to 65535" },
		{ "127.0.0.1:65536", "the port must be a number from 1 to 65535" },
		{ "127.0.0.1:9k", "the port must be a number from 1 to 65535" },
		{ "127.0.0.1:http", "the port must be a number from 1 to 65535" },
		{ "127.0.0.1:-1", "the port must be a number from 1 to 65535" },
		{ "[::1]:99999999999999999999999", "the port must be a number from 1 to 65535" },
		{ "localhost:9657", "the address is not an IPv4 address (names are not resolved; "
				    "IPv6 goes in brackets)" },
		{ "127.0.0.256:9657", "the address is not an IPv4 address (names are not resolved; "
				      "IPv6 goes in brackets)" },
		{ "127.1:9657", "the address is not an IPv4 address (names are not resolved; IPv6 "
				"goes in brackets)" },
		{ "[127.0.0.1]:9657", "the address in brackets is not an IPv6 address" },
		{ "[fe80::1%eth0]:9657", "the address in brackets is not an IPv6 address" },
		{ "[localhost]:9657", "the address in brackets is not an IPv6 address" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct value_hostport hp, before;
		char why[VALUE_WHYLEN] = "";

		memset(&hp, 0x5a, sizeof(hp));
		before = hp;
		assert_int_equal(value_parse_hostport(cases[i].text, &hp, why, sizeof(why)),
				 -EINVAL);
		assert_string_equal(why, cases[i].why);
		assert_memory_equal(&hp, &before, sizeof(hp)); /* untouched on failure */
	}
}

static void test_names_are_safe_tokens(void **state)
{
	static const char *const good[] = { "firehol_level1", "spamhaus-drop", "a", "9",
					    "list.v2",	      "A-b_c.d" };
	static const struct bad_case bad[] = {
		{ "", "is empty" },
		{ "-x", "may hold only letters, digits, '.', '_' and '-', and starts with a letter "
			"or digit" },
		{ ".hidden", "may hold only letters, digits, '.', '_' and '-', and starts with a "
			     "letter or digit" },
		{ "a b", "may hold only letters, digits, '.', '_' and '-', and starts with a "
			 "letter or digit" },
		{ "a/b", "may hold only letters, digits, '.', '_' and '-', and starts with a "
			 "letter or digit" },
		{ "caf\xc3\xa9", "may hold only letters, digits, '.', '_' and '-', and starts with "
				 "a letter or digit" },
		{ "abcdefghi", "is longer than 8 characters" },
	};
	char why[VALUE_WHYLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(value_check_name(good[i], 63, NULL, 0), 0);
	assert_int_equal(value_check_name("abcdefgh", 8, NULL, 0), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(value_check_name(bad[i].text, 8, why, sizeof(why)), -EINVAL);
		assert_string_equal(why, bad[i].why);
	}
}

static void test_a_short_reason_buffer_is_cut_not_overrun(void **state)
{
	char why[8];
	uint64_t v;

	(void)state;
	memset(why, 'x', sizeof(why));
	assert_int_equal(value_parse_count("z", 0, 1, &v, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "expecte");
	assert_int_equal(value_parse_count("z", 0, 1, &v, NULL, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations_in_every_accepted_spelling),
		cmocka_unit_test(test_garbage_durations_are_refused_with_their_reason),
		cmocka_unit_test(test_duration_range_and_overflow_are_refused),
		cmocka_unit_test(test_duration_formats_back_to_what_parses),
		cmocka_unit_test(test_counts_take_k_and_m_suffixes),
		cmocka_unit_test(test_bad_counts_are_refused_with_their_reason),
		cmocka_unit_test(test_booleans_in_every_spelling),
		cmocka_unit_test(test_listen_addresses_ipv4_and_bracketed_ipv6),
		cmocka_unit_test(test_bad_listen_addresses_are_refused_with_their_reason),
		cmocka_unit_test(test_names_are_safe_tokens),
		cmocka_unit_test(test_a_short_reason_buffer_is_cut_not_overrun),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
