// SPDX-License-Identifier: GPL-2.0
/*
 * The prefix parser is what stands between an operator's typing and a rule in
 * the kernel, so it is tested from three sides: hand-picked cases for every
 * accepted form and every rejection, RFC 5952 output, and random inputs
 * checked against glibc's inet_pton()/inet_ntop() as an independent oracle.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "cidr.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- a seeded PRNG, so a failure can be replayed -------------------------- */

static uint64_t rng_state;

static void rng_seed(void)
{
	const char *env = getenv("CIDR_TEST_SEED");

	rng_state = env ? strtoull(env, NULL, 0) : 0x1b5157bULL;
	/* Printed so that a failure can be replayed with CIDR_TEST_SEED=. */
	print_message("cidr random tests: seed %#llx (set CIDR_TEST_SEED to change)\n",
		      (unsigned long long)rng_state);
}

/* splitmix64: tiny, well distributed, and identical on every platform. */
static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int rnd(unsigned int n)
{
	return (unsigned int)(rng() % n);
}

/* --- helpers ---------------------------------------------------------------- */

static struct cidr make_v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t len)
{
	struct cidr p = { .family = AF_INET, .len = len, .addr = { a, b, c, d } };

	return p;
}

static struct cidr make_v6(const uint16_t g[8], uint8_t len)
{
	struct cidr p = { .family = AF_INET6, .len = len };

	for (int i = 0; i < 8; i++) {
		p.addr[2 * i] = (uint8_t)(g[i] >> 8);
		p.addr[2 * i + 1] = (uint8_t)g[i];
	}
	return p;
}

/* Bit i (from the top) of a byte string, written independently of cidr.c. */
static int bit(const uint8_t *a, unsigned int i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

/* Reference host-bit clearing, one bit at a time. */
static void ref_clear(struct cidr *p)
{
	for (unsigned int i = p->len; i < 128; i++)
		p->addr[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
}

static const char *fmt(const struct cidr *p, char *buf)
{
	return cidr_format(p, buf, CIDR_STRLEN);
}

/* in must parse, format as want, and report exactly want_notes. */
static void expect_prefix(const char *in, const char *want, unsigned int want_notes)
{
	char err[CIDR_ERRLEN] = "stale", buf[CIDR_STRLEN];
	unsigned int notes = 0xdead;
	struct cidr p;
	int ret;

	memset(&p, 0xa5, sizeof(p));
	ret = cidr_parse(in, &p, &notes, err, sizeof(err));
	if (ret)
		fail_msg("'%s' was rejected (%d): %s", in, ret, err);
	fmt(&p, buf);
	if (strcmp(buf, want))
		fail_msg("'%s' parsed as %s, expected %s", in, buf, want);
	if (notes != want_notes)
		fail_msg("'%s' reported notes %#x, expected %#x", in, notes, want_notes);
	if (err[0])
		fail_msg("'%s' was accepted but err still holds '%s'", in, err);
	/* The struct is normalised: nothing beyond the family's bytes. */
	for (unsigned int i = p.family == AF_INET ? 4 : 16; i < 16; i++)
		if (p.addr[i])
			fail_msg("'%s' left byte %u set past the IPv4 address", in, i);
}

/*
 * in must be refused with -EINVAL, leave *out and *notes clean, and explain
 * itself in one sentence that quotes shown (the input as echoed) and
 * contains what (the problem).
 */
static void expect_reject_shown(const char *in, const char *shown, const char *what)
{
	char err[CIDR_ERRLEN], quoted[CIDR_ERRLEN];
	unsigned int notes = 0xdead;
	struct cidr p, before;
	size_t n;
	int ret;

	memset(&p, 0xa5, sizeof(p));
	before = p;
	memset(err, 0, sizeof(err));
	ret = cidr_parse(in, &p, &notes, err, sizeof(err));
	if (ret != -EINVAL) {
		char buf[CIDR_STRLEN];

		fail_msg("'%s' returned %d, expected -EINVAL (parsed as %s)", shown, ret,
			 ret ? "nothing" : fmt(&p, buf));
	}
	if (memcmp(&p, &before, sizeof(p)))
		fail_msg("'%s' was rejected but *out was written", shown);
	if (notes != 0)
		fail_msg("'%s' was rejected but notes are %#x", shown, notes);
	snprintf(quoted, sizeof(quoted), "'%s' ", shown);
	if (strncmp(err, quoted, strlen(quoted)))
		fail_msg("error for '%s' does not start by naming it: %s", shown, err);
	if (!strstr(err + strlen(quoted), what))
		fail_msg("error for '%s' does not say '%s': %s", shown, what, err);
	n = strlen(err);
	if (n < 2 || err[n - 1] != '.')
		fail_msg("error for '%s' is not a whole sentence: %s", shown, err);
	/* One sentence: no full stop before the last (an ellipsis is no full stop). */
	for (const char *dot = err + strlen(quoted); (dot = strstr(dot, ". ")); dot++)
		if (dot[-1] != '.')
			fail_msg("error for '%s' is more than one sentence: %s", shown, err);
}

static void expect_reject(const char *in, const char *what)
{
	expect_reject_shown(in, in, what);
}

/* --- accepted forms ------------------------------------------------------- */

static void test_accepts_dotted_quad(void **state)
{
	(void)state;
	expect_prefix("0.0.0.0", "0.0.0.0/32", 0);
	expect_prefix("255.255.255.255", "255.255.255.255/32", 0);
	expect_prefix("192.0.2.1", "192.0.2.1/32", 0);
	expect_prefix("10.0.0.0/8", "10.0.0.0/8", 0);
	expect_prefix("0.0.0.0/0", "0.0.0.0/0", 0);
	expect_prefix("198.51.100.200/32", "198.51.100.200/32", 0);
	expect_prefix("100.64.0.0/10", "100.64.0.0/10", 0);
}

static void test_bare_address_is_host_prefix(void **state)
{
	struct cidr p;

	(void)state;
	assert_int_equal(cidr_parse("192.0.2.9", &p, NULL, NULL, 0), 0);
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.len, 32);
	assert_int_equal(cidr_parse("2001:db8::9", &p, NULL, NULL, 0), 0);
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(p.len, 128);
}

static void test_accepts_every_length_of_both_families(void **state)
{
	static const uint16_t ones[8] = { 0xffff, 0xffff, 0xffff, 0xffff,
					  0xffff, 0xffff, 0xffff, 0xffff };
	char in[64], want[64];
	struct cidr p;

	(void)state;
	for (unsigned int len = 0; len <= 32; len++) {
		snprintf(in, sizeof(in), "0.0.0.0/%u", len);
		expect_prefix(in, in, 0);
	}
	for (unsigned int len = 0; len <= 128; len++) {
		snprintf(in, sizeof(in), "::/%u", len);
		expect_prefix(in, in, 0);
		/* Every length cuts the all-ones address in a different place. */
		snprintf(in, sizeof(in), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/%u", len);
		p = make_v6(ones, (uint8_t)len);
		ref_clear(&p);
		fmt(&p, want);
		expect_prefix(in, want, len < 128 ? CIDR_NOTE_HOST_BITS : 0);
	}
}

static void test_accepts_length_with_leading_zeros(void **state)
{
	(void)state;
	/* Decimal digits only, and a prefix length is never read as octal. */
	expect_prefix("10.0.0.0/08", "10.0.0.0/8", 0);
	expect_prefix("2001:db8::/0032", "2001:db8::/32", 0);
	expect_prefix("0.0.0.0/00000000000000000000000", "0.0.0.0/0", 0);
}

static void test_accepts_full_ipv6_form(void **state)
{
	(void)state;
	expect_prefix("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329/128", 0);
	expect_prefix("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8/128", 0);
	expect_prefix("0:0:0:0:0:0:0:0", "::/128", 0);
	expect_prefix("0000:0000:0000:0000:0000:0000:0000:0001/128", "::1/128", 0);
	expect_prefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 0);
}

static void test_accepts_compression_anywhere(void **state)
{
	(void)state;
	expect_prefix("::", "::/128", 0);
	expect_prefix("::/0", "::/0", 0);
	expect_prefix("::1", "::1/128", 0);
	expect_prefix("1::", "1::/128", 0);
	expect_prefix("1::8", "1::8/128", 0);
	expect_prefix("1:2::7:8", "1:2::7:8/128", 0);
	expect_prefix("2001:db8::/32", "2001:db8::/32", 0);
	/* "::" may stand for a single zero group (RFC 4291), though 5952 never writes it. */
	expect_prefix("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0/128", 0);
	expect_prefix("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8/128", 0);
	expect_prefix("1:2:3::5:6:7:8", "1:2:3:0:5:6:7:8/128", 0);
	/* Compressing the shorter run still denotes the same address. */
	expect_prefix("1::4:0:0:0:8", "1:0:0:4::8/128", 0);
	expect_prefix("0::0", "::/128", 0);
}

static void test_accepts_upper_and_lower_hex(void **state)
{
	(void)state;
	expect_prefix("2001:DB8::ABCD", "2001:db8::abcd/128", 0);
	expect_prefix("2001:db8::abcd", "2001:db8::abcd/128", 0);
	expect_prefix("2001:Db8::aBcD", "2001:db8::abcd/128", 0);
	expect_prefix("FE80::/10", "fe80::/10", 0);
}

static void test_accepts_one_to_four_hex_digits_per_group(void **state)
{
	(void)state;
	expect_prefix("1:12:123:1234:0001:0012:0123:f", "1:12:123:1234:1:12:123:f/128", 0);
	expect_prefix("0000:000::00:0:1", "::1/128", 0);
	expect_prefix("2001:db8:0:0:a:0b:00c:000d", "2001:db8::a:b:c:d/128", 0);
}

static void test_accepts_embedded_ipv4_in_last_32_bits(void **state)
{
	(void)state;
	expect_prefix("64:ff9b::1.2.3.4", "64:ff9b::102:304/128", 0);
	expect_prefix("64:ff9b::192.0.2.33/120", "64:ff9b::c000:200/120", CIDR_NOTE_HOST_BITS);
	expect_prefix("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304/128", 0);
	expect_prefix("::1.2.3.4", "::102:304/128", 0);
	expect_prefix("::0.0.0.0", "::/128", 0);
	expect_prefix("1::255.255.255.255", "1::ffff:ffff/128", 0);
	expect_prefix("::ffff:1.2.3.4", "1.2.3.4/32", CIDR_NOTE_V4_MAPPED);
}

/* --- rejections ----------------------------------------------------------- */

static void test_rejects_octet_over_255(void **state)
{
	(void)state;
	expect_reject("300.1.1.1", "octet 300 is larger than 255");
	expect_reject("1.2.3.256", "octet 256 is larger than 255");
	expect_reject("1.2.99999999999.4", "is larger than 255");
	expect_reject("4294967297.1.1.1", "is larger than 255"); /* 2^32+1 must not wrap to 1 */
}

static void test_rejects_three_octets(void **state)
{
	(void)state;
	expect_reject("1.2.3", "3 octets");
	expect_reject("1", "1 octet");
	expect_reject("16909060", "1 octet"); /* inet_aton would take this as 1.2.3.4 */
}

static void test_rejects_five_octets(void **state)
{
	(void)state;
	expect_reject("1.2.3.4.5", "5 octets");
	expect_reject("1.2.3.4.5/8", "5 octets");
}

static void test_rejects_leading_zero_octet(void **state)
{
	(void)state;
	expect_reject("01.2.3.4", "octet '01' has a leading zero");
	expect_reject("1.2.3.00", "octet '00' has a leading zero");
	expect_reject("10.010.0.0/16", "octet '010' has a leading zero");
}

static void test_rejects_empty_octet(void **state)
{
	(void)state;
	expect_reject("1..2.3", "empty octet");
	expect_reject(".1.2.3", "empty octet");
	expect_reject("1.2.3.", "empty octet");
	expect_reject("1.2.3.4.", "5 octets");
}

static void test_rejects_non_digit_in_ipv4(void **state)
{
	(void)state;
	expect_reject("1.2.3.4a", "'a' is not a decimal digit");
	expect_reject("0x1.2.3.4", "'x' is not a decimal digit");
	expect_reject("example.com", "'e' is not a decimal digit");
}

static void test_rejects_ipv4_length_over_32(void **state)
{
	(void)state;
	expect_reject("1.2.3.4/33", "prefix length 33 is larger than 32");
	expect_reject("0.0.0.0/128", "prefix length 128 is larger than 32");
}

static void test_rejects_ipv6_length_over_128(void **state)
{
	(void)state;
	expect_reject("::/129", "prefix length 129 is larger than 128");
	/* The length is checked against IPv6 before a mapped address becomes IPv4. */
	expect_reject("::ffff:1.2.3.4/129", "larger than 128");
}

static void test_rejects_huge_lengths(void **state)
{
	(void)state;
	expect_reject("1.2.3.4/99999999999", "prefix length 99999999999 is larger than 32");
	expect_reject("::/99999999999999999999999", "is larger than 128");
	/* 2^32 + 32 and 2^32 would wrap to valid lengths in 32-bit arithmetic. */
	expect_reject("1.2.3.4/4294967328", "is larger than 32");
	expect_reject("1.2.3.4/4294967296", "is larger than 32");
	expect_reject("::/4294967424", "is larger than 128");
	expect_reject("1.2.3.4/256", "is larger than 32"); /* would wrap a uint8_t to 0 */
}

static void test_rejects_triple_colon(void **state)
{
	(void)state;
	expect_reject("2001:db8:::1", "':::'");
	expect_reject(":::", "':::'");
	expect_reject(":::1", "':::'");
	expect_reject("1:::", "':::'");
}

static void test_rejects_double_compression(void **state)
{
	(void)state;
	expect_reject("1::2::3", "'::' may appear only once");
	expect_reject("::1::", "'::' may appear only once");
	expect_reject("::1::2", "'::' may appear only once");
}

static void test_rejects_too_many_groups(void **state)
{
	(void)state;
	expect_reject("1:2:3:4:5:6:7:8:9", "more than 8 groups");
	expect_reject("1:2:3:4:5:6:7:8:9:a:b:c:d:e:f:0:1:2:3", "more than 8 groups");
	expect_reject("1:2:3:4:5:6:7:1.2.3.4", "more than 8 groups");
	expect_reject("1:2:3:4::5:6:7:8", "stand for none");
	expect_reject("::1:2:3:4:5:6:7:8", "stand for none");
	expect_reject("1:2:3:4:5:6:7:8::", "stand for none");
	expect_reject("1:2:3:4:5::6:1.2.3.4", "stand for none");
}

static void test_rejects_too_few_groups_without_compression(void **state)
{
	(void)state;
	expect_reject("1:2:3:4:5:6:7", "7 groups and no '::'");
	expect_reject("1:2", "2 groups and no '::'");
	expect_reject("1:2:3:4:5:1.2.3.4", "7 groups and no '::'");
}

static void test_rejects_group_of_five_hex_digits(void **state)
{
	(void)state;
	expect_reject("2001:db8::12345", "group '12345' has more than 4 hex digits");
	expect_reject("00000::1", "group '00000' has more than 4 hex digits");
	expect_reject("1:2:3:4:5:6:7:fffff", "more than 4 hex digits");
}

static void test_rejects_non_hex_in_ipv6(void **state)
{
	(void)state;
	expect_reject("2001:db8::g", "'g' is not a hex digit");
	expect_reject("2001:db8::-1", "'-' is not a hex digit");
	expect_reject("[2001:db8::1]", "'[' is not a hex digit");
}

static void test_rejects_single_colon_at_either_end(void **state)
{
	(void)state;
	expect_reject(":1::", "starts with a single ':'");
	expect_reject(":1:2:3:4:5:6:7:8", "starts with a single ':'");
	expect_reject("1::2:", "ends with a single ':'");
	expect_reject("1:2:3:4:5:6:7:8:", "ends with a single ':'");
}

static void test_rejects_embedded_ipv4_not_at_end(void **state)
{
	(void)state;
	expect_reject("1.2.3.4::", "last 32 bits");
	expect_reject("::1.2.3.4:1", "last 32 bits");
}

static void test_rejects_bad_embedded_ipv4(void **state)
{
	(void)state;
	expect_reject("::ffff:1.2.3", "embedded IPv4 part, it has 3 octets");
	expect_reject("::ffff:256.1.1.1", "embedded IPv4 part, octet 256");
	expect_reject("::ffff:01.2.3.4", "leading zero");
	expect_reject("::ffff:1a.2.3.4", "'a' is not a decimal digit");
}

static void test_rejects_words(void **state)
{
	(void)state;
	expect_reject("abc", "neither a dotted-quad IPv4 address nor an IPv6 address");
	expect_reject("localhost", "neither");
	expect_reject("any", "neither");
}

static void test_rejects_empty_string(void **state)
{
	(void)state;
	expect_reject("", "empty");
}

static void test_rejects_null_input(void **state)
{
	char err[CIDR_ERRLEN];
	struct cidr p;

	(void)state;
	assert_int_equal(cidr_parse(NULL, &p, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty"));
}

static void test_rejects_length_without_address(void **state)
{
	(void)state;
	expect_reject("/24", "no address before the '/'");
	expect_reject("/", "no address before the '/'");
}

static void test_rejects_slash_without_length(void **state)
{
	(void)state;
	expect_reject("1.2.3.4/", "prefix length after '/' is missing");
	expect_reject("::/", "prefix length after '/' is missing");
}

static void test_rejects_signed_length(void **state)
{
	(void)state;
	expect_reject("1.2.3.4/-1", "prefix length '-1' is not a plain decimal number");
	expect_reject("1.2.3.4/+8", "prefix length '+8' is not a plain decimal number");
	expect_reject("::/-0", "not a plain decimal number");
}

static void test_rejects_length_with_trailing_garbage(void **state)
{
	(void)state;
	expect_reject("1.2.3.4/8x", "prefix length '8x' is not a plain decimal number");
	expect_reject("1.2.3.4/0x8", "not a plain decimal number");
	expect_reject("1.2.3.4/8/8", "not a plain decimal number");
	expect_reject("1.2.3.4/8.0", "not a plain decimal number");
	expect_reject("1.2.3.4/255.0.0.0", "not a plain decimal number");
}

static void test_rejects_whitespace_anywhere(void **state)
{
	static const char *const valid[] = { "1.2.3.4/8", "2001:db8::1/64", "::" };
	static const char *const ws[][2] = {
		{ " ", " " }, { "\t", "\\t" }, { "\n", "\\n" }, { "\r", "\\r" }
	};
	char in[64], shown[64];

	(void)state;
	expect_reject("1.2.3.4/ 8", "whitespace");
	expect_reject(" 1.2.3.4", "whitespace");
	expect_reject("1.2.3.4 ", "whitespace");
	for (size_t v = 0; v < ARRAY_SIZE(valid); v++) {
		size_t n = strlen(valid[v]);

		for (size_t w = 0; w < ARRAY_SIZE(ws); w++) {
			for (size_t at = 0; at <= n; at++) {
				snprintf(in, sizeof(in), "%.*s%s%s", (int)at, valid[v], ws[w][0],
					 valid[v] + at);
				snprintf(shown, sizeof(shown), "%.*s%s%s", (int)at, valid[v],
					 ws[w][1], valid[v] + at);
				expect_reject_shown(in, shown, "whitespace");
			}
		}
	}
}

static void test_rejects_zone_ids(void **state)
{
	(void)state;
	expect_reject("fe80::1%eth0", "zone ids such as '%eth0' are not accepted");
	expect_reject("fe80::1%eth0/64", "zone ids such as '%eth0'");
	expect_reject("fe80::1%1", "zone ids");
	expect_reject("1.2.3.4%eth0", "zone ids");
}

static void test_error_escapes_control_bytes(void **state)
{
	(void)state;
	expect_reject_shown("1.2.3.4\x01", "1.2.3.4\\x01", "byte 0x01 is not a decimal digit");
	expect_reject_shown("::\xff", "::\\xff", "byte 0xff is not a hex digit");
}

static void test_error_for_long_input_is_cut_short_but_whole(void **state)
{
	char in[2000], err[CIDR_ERRLEN];
	size_t n;

	(void)state;
	memset(in, '1', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	assert_int_equal(cidr_parse(in, NULL, NULL, err, sizeof(err)), -EINVAL);
	n = strlen(err);
	assert_true(n < CIDR_ERRLEN - 1);  /* not cut by the buffer... */
	assert_int_equal(err[n - 1], '.'); /* ...and still a sentence */
	assert_int_equal(strncmp(err, "'1111111111", 11), 0);
	assert_non_null(strstr(err, "...' is not a valid address: "));

	/* The worst echo: every byte escaped to four characters. */
	memset(in, '\x01', sizeof(in) - 1);
	assert_int_equal(cidr_parse(in, NULL, NULL, err, sizeof(err)), -EINVAL);
	n = strlen(err);
	assert_true(n < CIDR_ERRLEN - 1);
	assert_int_equal(err[n - 1], '.');
}

static void test_error_respects_small_or_missing_buffer(void **state)
{
	char err[32];
	struct cidr p;

	(void)state;
	assert_int_equal(cidr_parse("300.1.1.1", &p, NULL, NULL, 0), -EINVAL);
	assert_int_equal(cidr_parse("300.1.1.1", &p, NULL, NULL, 100), -EINVAL);
	memset(err, 'X', sizeof(err));
	assert_int_equal(cidr_parse("300.1.1.1", &p, NULL, err, 10), -EINVAL);
	assert_string_equal(err, "'300.1.1.");
	for (size_t i = 10; i < sizeof(err); i++)
		assert_int_equal(err[i], 'X');
	memset(err, 'X', sizeof(err));
	assert_int_equal(cidr_parse("300.1.1.1", &p, NULL, err, 0), -EINVAL);
	assert_int_equal(err[0], 'X');
}

/* --- normalisation -------------------------------------------------------- */

static void test_clears_ipv4_host_bits_and_notes_it(void **state)
{
	(void)state;
	expect_prefix("198.51.100.7/24", "198.51.100.0/24", CIDR_NOTE_HOST_BITS);
	expect_prefix("255.255.255.255/0", "0.0.0.0/0", CIDR_NOTE_HOST_BITS);
	expect_prefix("1.2.3.5/31", "1.2.3.4/31", CIDR_NOTE_HOST_BITS);
	expect_prefix("10.255.0.0/9", "10.128.0.0/9", CIDR_NOTE_HOST_BITS);
}

static void test_no_host_bits_note_when_already_clean(void **state)
{
	(void)state;
	expect_prefix("198.51.100.0/24", "198.51.100.0/24", 0);
	expect_prefix("1.2.3.4/31", "1.2.3.4/31", 0);
	expect_prefix("2001:db8:8000::/33", "2001:db8:8000::/33", 0);
	expect_prefix("::1/128", "::1/128", 0);
}

static void test_clears_ipv6_host_bits_and_notes_it(void **state)
{
	(void)state;
	expect_prefix("2001:db8::1/64", "2001:db8::/64", CIDR_NOTE_HOST_BITS);
	expect_prefix("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/33", "2001:db8:8000::/33",
		      CIDR_NOTE_HOST_BITS);
	expect_prefix("::1/127", "::/127", CIDR_NOTE_HOST_BITS);
	expect_prefix("ffff::/0", "::/0", CIDR_NOTE_HOST_BITS);
}

static void test_notes_may_be_null_and_are_reset(void **state)
{
	unsigned int notes = ~0u;
	struct cidr p;

	(void)state;
	assert_int_equal(cidr_parse("198.51.100.7/24", &p, NULL, NULL, 0), 0);
	assert_int_equal(p.addr[3], 0);
	assert_int_equal(cidr_parse("198.51.100.0/24", &p, &notes, NULL, 0), 0);
	assert_int_equal(notes, 0);
}

/* --- IPv4-mapped IPv6 ----------------------------------------------------- */

static void test_v4_mapped_dotted_becomes_ipv4(void **state)
{
	(void)state;
	expect_prefix("::ffff:198.51.100.9/128", "198.51.100.9/32", CIDR_NOTE_V4_MAPPED);
	expect_prefix("::ffff:198.51.100.9", "198.51.100.9/32", CIDR_NOTE_V4_MAPPED);
	expect_prefix("0:0:0:0:0:ffff:198.51.100.9", "198.51.100.9/32", CIDR_NOTE_V4_MAPPED);
	expect_prefix("::FFFF:0.0.0.0/128", "0.0.0.0/32", CIDR_NOTE_V4_MAPPED);
}

static void test_v4_mapped_hex_becomes_ipv4(void **state)
{
	(void)state;
	expect_prefix("::ffff:c612:13", "198.18.0.19/32", CIDR_NOTE_V4_MAPPED);
	expect_prefix("::FFFF:C633:6409/128", "198.51.100.9/32", CIDR_NOTE_V4_MAPPED);
	expect_prefix("0000:0000:0000:0000:0000:ffff:ffff:ffff", "255.255.255.255/32",
		      CIDR_NOTE_V4_MAPPED);
}

static void test_v4_mapped_at_96_is_the_whole_ipv4_space(void **state)
{
	(void)state;
	expect_prefix("::ffff:0:0/96", "0.0.0.0/0", CIDR_NOTE_V4_MAPPED);
	expect_prefix("::ffff:0.0.0.0/96", "0.0.0.0/0", CIDR_NOTE_V4_MAPPED);
	/* Host bits are judged after mapping: everything past /0 goes. */
	expect_prefix("::ffff:198.51.100.9/96", "0.0.0.0/0",
		      CIDR_NOTE_V4_MAPPED | CIDR_NOTE_HOST_BITS);
}

static void test_v4_mapped_at_120_is_ipv4_slash_24(void **state)
{
	(void)state;
	expect_prefix("::ffff:198.51.100.0/120", "198.51.100.0/24", CIDR_NOTE_V4_MAPPED);
	expect_prefix("::ffff:198.51.100.9/120", "198.51.100.0/24",
		      CIDR_NOTE_V4_MAPPED | CIDR_NOTE_HOST_BITS);
	expect_prefix("::ffff:c633:6409/120", "198.51.100.0/24",
		      CIDR_NOTE_V4_MAPPED | CIDR_NOTE_HOST_BITS);
	expect_prefix("::ffff:198.51.100.9/127", "198.51.100.8/31",
		      CIDR_NOTE_V4_MAPPED | CIDR_NOTE_HOST_BITS);
}

static void test_v4_mapped_below_96_stays_ipv6(void **state)
{
	struct cidr p;

	(void)state;
	/* /95 reaches into the ffff group, so the last bit of it is a host bit. */
	expect_prefix("::ffff:198.51.100.9/95", "::fffe:0:0/95", CIDR_NOTE_HOST_BITS);
	expect_prefix("::ffff:0:0/95", "::fffe:0:0/95", CIDR_NOTE_HOST_BITS);
	expect_prefix("::fffe:0:0/95", "::fffe:0:0/95", 0);
	expect_prefix("::ffff:0:0/80", "::/80", CIDR_NOTE_HOST_BITS);
	assert_int_equal(cidr_parse("::ffff:198.51.100.9/95", &p, NULL, NULL, 0), 0);
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(p.len, 95);
}

static void test_only_exact_mapped_prefix_becomes_ipv4(void **state)
{
	(void)state;
	expect_prefix("::1.2.3.4", "::102:304/128", 0); /* IPv4-compatible, not mapped */
	expect_prefix("::fffe:1.2.3.4", "::fffe:102:304/128", 0);
	expect_prefix("1::ffff:1.2.3.4", "1::ffff:102:304/128", 0);
	expect_prefix("0:0:0:0:1:ffff:1.2.3.4", "::1:ffff:102:304/128", 0);
	expect_prefix("64:ff9b::198.51.100.9", "64:ff9b::c633:6409/128", 0);
}

/* --- formatting ----------------------------------------------------------- */

struct fmt_case {
	uint16_t g[8];
	uint8_t len;
	const char *want;
};

static void test_formats_ipv6_per_rfc5952(void **state)
{
	static const struct fmt_case cases[] = {
		/* 4.2.1 shorten as much as possible */
		{ { 0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 }, 128, "2001:db8::1/128" },
		/* 4.2.2 a single zero group is not compressed */
		{ { 0x2001, 0xdb8, 0, 1, 1, 1, 1, 1 }, 128, "2001:db8:0:1:1:1:1:1/128" },
		{ { 1, 0, 1, 0, 1, 0, 1, 0 }, 128, "1:0:1:0:1:0:1:0/128" },
		/* 4.2.3 the longest run, the first one on a tie */
		{ { 0x2001, 0, 0, 1, 0, 0, 0, 1 }, 128, "2001:0:0:1::1/128" },
		{ { 0x2001, 0xdb8, 0, 0, 1, 0, 0, 1 }, 128, "2001:db8::1:0:0:1/128" },
		{ { 0, 0, 1, 0, 0, 1, 0, 0 }, 128, "::1:0:0:1:0:0/128" },
		/* 4.1 no leading zeros; 4.3 lowercase */
		{ { 0x2001, 0x0db8, 0x00ab, 0x000c, 0xABCD, 0, 0, 0x0001 },
		  128,
		  "2001:db8:ab:c:abcd::1/128" },
		/* runs at either end, and everything */
		{ { 0, 0, 0, 0, 0, 0, 0, 0 }, 0, "::/0" },
		{ { 0, 0, 0, 0, 0, 0, 0, 1 }, 128, "::1/128" },
		{ { 1, 0, 0, 0, 0, 0, 0, 0 }, 16, "1::/16" },
		{ { 0, 1, 0, 0, 0, 0, 0, 0 }, 128, "0:1::/128" },
		{ { 0, 0, 0, 0, 0, 0, 0, 1 }, 127, "::1/127" }, /* format does not normalise */
		{ { 0xfe80, 0, 0, 0, 0, 0, 0, 0 }, 10, "fe80::/10" },
		{ { 0x2001, 0xdb8, 0, 0, 0, 0, 0, 0 }, 32, "2001:db8::/32" },
		{ { 0x2001, 0xdb8, 0, 0, 0, 0, 1, 0 }, 128, "2001:db8::1:0/128" },
		{ { 0, 0, 0, 0, 0, 0xffff, 0x102, 0x304 }, 95, "::ffff:102:304/95" },
		{ { 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff },
		  128,
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" },
	};
	char buf[CIDR_STRLEN];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cidr p = make_v6(cases[i].g, cases[i].len);

		assert_ptr_equal(cidr_format(&p, buf, sizeof(buf)), buf);
		assert_string_equal(buf, cases[i].want);
	}
}

static void test_formats_ipv4_as_dotted_quad(void **state)
{
	char buf[CIDR_STRLEN];
	struct cidr p;

	(void)state;
	p = make_v4(0, 0, 0, 0, 0);
	assert_string_equal(fmt(&p, buf), "0.0.0.0/0");
	p = make_v4(255, 255, 255, 255, 32);
	assert_string_equal(fmt(&p, buf), "255.255.255.255/32");
	p = make_v4(10, 0, 0, 0, 8);
	assert_string_equal(fmt(&p, buf), "10.0.0.0/8");
	p = make_v4(192, 0, 2, 128, 25);
	assert_string_equal(fmt(&p, buf), "192.0.2.128/25");
}

static void test_format_truncates_to_buffer(void **state)
{
	char buf[CIDR_STRLEN + 8];
	struct cidr p = make_v6((const uint16_t[8]){ 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
						     0xffff, 0xffff },
				128);

	(void)state;
	/* The longest text there is fits CIDR_STRLEN with its NUL. */
	memset(buf, 'X', sizeof(buf));
	cidr_format(&p, buf, CIDR_STRLEN);
	assert_true(strlen(buf) < CIDR_STRLEN);
	assert_string_equal(buf, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");

	memset(buf, 'X', sizeof(buf));
	assert_ptr_equal(cidr_format(&p, buf, 5), buf);
	assert_string_equal(buf, "ffff");
	assert_int_equal(buf[5], 'X');

	memset(buf, 'X', sizeof(buf));
	cidr_format(&p, buf, 0);
	assert_int_equal(buf[0], 'X');
}

/* inet_ntop() prints these with a dotted tail; cidr_format() never does. */
static bool ntop_uses_dotted_tail(const uint8_t *a)
{
	static const uint8_t zero[10];

	return !memcmp(a, zero, 10) &&
	       ((a[10] == 0 && a[11] == 0) || (a[10] == 0xff && a[11] == 0xff));
}

static void random_v6_addr(uint8_t *a)
{
	/* Zero groups are common so that runs of every length and place occur. */
	for (int g = 0; g < 8; g++) {
		static const uint16_t masks[] = { 0xf, 0xff, 0xfff, 0xffff };
		uint16_t v = rnd(3) == 0 ? 0 : (uint16_t)(rng() & masks[rnd(4)]);

		a[2 * g] = (uint8_t)(v >> 8);
		a[2 * g + 1] = (uint8_t)v;
	}
}

static void test_format_matches_inet_ntop_on_random_addresses(void **state)
{
	char buf[CIDR_STRLEN], ref[INET6_ADDRSTRLEN + 8];
	int compared = 0;

	(void)state;
	for (int i = 0; i < 5000; i++) {
		struct cidr p = { .family = AF_INET6, .len = 128 };

		random_v6_addr(p.addr);
		if (ntop_uses_dotted_tail(p.addr))
			continue;
		assert_non_null(inet_ntop(AF_INET6, p.addr, ref, sizeof(ref)));
		strcat(ref, "/128");
		fmt(&p, buf);
		if (strcmp(buf, ref))
			fail_msg("cidr_format gave %s, inet_ntop %s", buf, ref);
		compared++;
	}
	for (int i = 0; i < 1000; i++) {
		struct cidr p = { .family = AF_INET, .len = 32 };

		for (int b = 0; b < 4; b++)
			p.addr[b] = (uint8_t)rng();
		assert_non_null(inet_ntop(AF_INET, p.addr, ref, sizeof(ref)));
		strcat(ref, "/32");
		assert_string_equal(fmt(&p, buf), ref);
	}
	assert_true(compared > 4000);
}

/* --- round trip ----------------------------------------------------------- */

static void random_prefix(struct cidr *p, int family)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	do {
		memset(p, 0, sizeof(*p));
		p->family = (uint8_t)family;
		if (family == AF_INET) {
			for (int b = 0; b < 4; b++)
				p->addr[b] = (uint8_t)rng();
			p->len = (uint8_t)rnd(33);
		} else {
			random_v6_addr(p->addr);
			/* Now and then a mapped-looking prefix below /96 to stay IPv6. */
			if (rnd(20) == 0)
				memcpy(p->addr, mapped, sizeof(mapped));
			p->len = (uint8_t)rnd(129);
		}
		ref_clear(p);
		/* A mapped prefix at /96 or longer comes back as IPv4, by design. */
	} while (family == AF_INET6 && p->len >= 96 && !memcmp(p->addr, mapped, 12));
}

static void test_round_trip_of_random_normalised_prefixes(void **state)
{
	char text[CIDR_STRLEN], again[CIDR_STRLEN], err[CIDR_ERRLEN];
	int families[] = { AF_INET, AF_INET6 };

	(void)state;
	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		for (int i = 0; i < 400; i++) {
			unsigned int notes = ~0u;
			struct cidr p, q;

			random_prefix(&p, families[f]);
			fmt(&p, text);
			memset(&q, 0xa5, sizeof(q));
			if (cidr_parse(text, &q, &notes, err, sizeof(err)))
				fail_msg("format gave '%s' which parse rejects: %s", text, err);
			if (memcmp(&p, &q, sizeof(p)))
				fail_msg("'%s' parsed back as %s", text, fmt(&q, again));
			assert_int_equal(notes, 0);
			assert_string_equal(fmt(&q, again), text);
		}
	}
}

/* --- cross-check against inet_pton() -------------------------------------- */

/* Append one group with random case and 0-3 redundant leading zeros. */
static size_t put_group(char *s, uint16_t v)
{
	static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
	const char *digits = rnd(2) ? lower : upper;
	int ndig = 1, width;
	size_t n = 0;

	while (ndig < 4 && (v >> (4 * ndig)))
		ndig++;
	width = ndig + (int)rnd((unsigned int)(4 - ndig + 1));
	for (int d = width - 1; d >= 0; d--)
		s[n++] = digits[(v >> (4 * d)) & 0xf];
	return n;
}

/* Some valid text for a random address, in one of the many ways to write it. */
static void random_address_text(char *s, size_t size)
{
	int dotted, ngroups, zstart = -1, zlen = 0;
	uint8_t a[16];
	uint16_t g[8];
	size_t n = 0;

	if (rnd(3) == 0) {
		unsigned int o[4];

		for (int i = 0; i < 4; i++)
			o[i] = rnd(4) ? rnd(256) : rnd(10);
		snprintf(s, size, "%u.%u.%u.%u", o[0], o[1], o[2], o[3]);
		return;
	}

	dotted = rnd(4) == 0;
	ngroups = dotted ? 6 : 8;
	random_v6_addr(a);
	if (rnd(5) == 0) /* mapped, to exercise the IPv4 conversion */
		memcpy(a, (const uint8_t[12]){ [10] = 0xff, [11] = 0xff }, 12);
	for (int i = 0; i < 8; i++)
		g[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);

	/* Compress any run of zero groups, not only the one RFC 5952 would pick. */
	if (rnd(4)) {
		int starts[8], nstarts = 0;

		for (int i = 0; i < ngroups; i++)
			if (g[i] == 0)
				starts[nstarts++] = i;
		if (nstarts) {
			zstart = starts[rnd((unsigned int)nstarts)];
			zlen = 1;
			while (zstart + zlen < ngroups && g[zstart + zlen] == 0 && rnd(4))
				zlen++;
		}
	}
	for (int i = 0; i < ngroups; i++) {
		if (i == zstart) {
			s[n++] = ':';
			s[n++] = ':';
			i += zlen - 1;
			continue;
		}
		if (i > 0 && i != zstart + zlen)
			s[n++] = ':';
		n += put_group(s + n, g[i]);
	}
	if (dotted) {
		if (zstart < 0 || zstart + zlen != ngroups)
			s[n++] = ':';
		n += (size_t)snprintf(s + n, size - n, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
	}
	s[n] = '\0';
}

/* Small edits of the kind a typo makes, biased to the characters that matter. */
static void mutate(char *s, size_t size)
{
	static const char alphabet[] = "0123456789abcdefABCDEF::::....gxz%- 0";
	size_t n = strlen(s), at;

	switch (rnd(5)) {
	case 0: /* insert */
		if (n + 2 >= size)
			return;
		at = rnd((unsigned int)n + 1);
		memmove(s + at + 1, s + at, n - at + 1);
		s[at] = alphabet[rnd(sizeof(alphabet) - 1)];
		break;
	case 1: /* delete */
		if (!n)
			return;
		at = rnd((unsigned int)n);
		memmove(s + at, s + at + 1, n - at);
		break;
	case 2: /* replace */
		if (!n)
			return;
		s[rnd((unsigned int)n)] = alphabet[rnd(sizeof(alphabet) - 1)];
		break;
	case 3: { /* repeat a piece */
		size_t from = rnd((unsigned int)n + 1), len = rnd(6);

		if (from + len > n)
			len = n - from;
		if (n + len + 1 > size)
			return;
		memmove(s + from + len, s + from, n - from + 1);
		break;
	}
	default: /* cut the tail */
		s[rnd((unsigned int)n + 1)] = '\0';
		break;
	}
}

static void test_parser_agrees_with_inet_pton(void **state)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	int accepted = 0, rejected = 0, v4 = 0, v6 = 0, conv = 0;
	char s[128], err[CIDR_ERRLEN], buf[CIDR_STRLEN];

	(void)state;
	for (int i = 0; i < 40000; i++) {
		uint8_t b4[4], b6[16];
		unsigned int notes;
		struct cidr p;
		int ok4, ok6, ret;

		random_address_text(s, sizeof(s) - 16);
		for (unsigned int m = rnd(2) ? 0 : 1 + rnd(3); m; m--)
			mutate(s, sizeof(s));

		ok4 = inet_pton(AF_INET, s, b4) == 1;
		ok6 = inet_pton(AF_INET6, s, b6) == 1;
		ret = cidr_parse(s, &p, &notes, err, sizeof(err));
		if (ret && (ok4 || ok6))
			fail_msg("'%s' is an address to inet_pton but: %s", s, err);
		if (!ret && !ok4 && !ok6)
			fail_msg("'%s' is not an address to inet_pton but parsed as %s", s,
				 fmt(&p, buf));
		if (ret) {
			rejected++;
			continue;
		}
		accepted++;
		if (ok4) {
			v4++;
			assert_int_equal(p.family, AF_INET);
			assert_int_equal(p.len, 32);
			assert_memory_equal(p.addr, b4, 4);
			assert_int_equal(notes, 0);
		} else if (!memcmp(b6, mapped, 12)) {
			conv++;
			assert_int_equal(p.family, AF_INET);
			assert_int_equal(p.len, 32);
			assert_memory_equal(p.addr, b6 + 12, 4);
			assert_int_equal(notes, CIDR_NOTE_V4_MAPPED);
		} else {
			v6++;
			assert_int_equal(p.family, AF_INET6);
			assert_int_equal(p.len, 128);
			assert_memory_equal(p.addr, b6, 16);
			assert_int_equal(notes, 0);
		}
	}
	print_message("inet_pton cross-check: %d accepted (%d IPv4, %d IPv6, %d mapped), "
		      "%d rejected\n",
		      accepted, v4, v6, conv, rejected);
	/* Both sides must have been exercised for agreement to mean anything. */
	assert_true(v4 > 1000 && v6 > 1000 && conv > 100 && rejected > 5000);
}

/* --- ordering and containment --------------------------------------------- */

static int cmp_qsort(const void *a, const void *b)
{
	return cidr_compare(a, b);
}

static void test_compare_orders_ipv4_first_then_address_then_length(void **state)
{
	static const char *const sorted[] = {
		"0.0.0.0/0",
		"0.0.0.0/8",
		"0.0.0.0/32",
		"10.0.0.0/8",
		"10.0.0.0/16",
		"10.0.0.0/32",
		"10.0.0.1/32",
		"10.1.0.0/16",
		"192.168.0.0/16",
		"255.255.255.255/32",
		"::/0",
		"::/128",
		"::1/128",
		"::fffe:0:0/95",
		"2001:db8::/32",
		"2001:db8::/48",
		"2001:db8::1/128",
		"ff00::/8",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
	};
	struct cidr list[ARRAY_SIZE(sorted)];
	char buf[CIDR_STRLEN];
	size_t n = ARRAY_SIZE(sorted);

	(void)state;
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < n; i++)
			assert_int_equal(cidr_parse(sorted[i], &list[i], NULL, NULL, 0), 0);
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = rnd((unsigned int)i + 1);
			struct cidr t = list[i];

			list[i] = list[j];
			list[j] = t;
		}
		qsort(list, n, sizeof(list[0]), cmp_qsort);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(fmt(&list[i], buf), sorted[i]);
	}
}

static void test_compare_is_a_consistent_total_order(void **state)
{
	struct cidr set[300];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(set); i++) {
		random_prefix(&set[i], rnd(2) ? AF_INET : AF_INET6);
		/* Small values so that equal addresses and lengths actually meet. */
		if (rnd(2)) {
			memset(set[i].addr + 1, 0, 15);
			set[i].addr[0] &= 3;
			set[i].len = (uint8_t)rnd(3);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(set); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(set); j++) {
			int ab = cidr_compare(&set[i], &set[j]);
			int ba = cidr_compare(&set[j], &set[i]);
			bool same = !memcmp(&set[i], &set[j], sizeof(set[i]));

			assert_int_equal(ab > 0, ba < 0);
			assert_int_equal(ab == 0, same);
			if (set[i].family != set[j].family)
				assert_int_equal(ab < 0, set[i].family == AF_INET);
		}
	}
}

static void expect_contains(const char *prefix, const char *addr, bool want)
{
	uint8_t a[16] = { 0 };
	struct cidr p;

	assert_int_equal(cidr_parse(prefix, &p, NULL, NULL, 0), 0);
	assert_int_equal(inet_pton(p.family, addr, a), 1);
	if (cidr_contains(&p, a) != want)
		fail_msg("%s %s %s", prefix, want ? "should contain" : "should not contain", addr);
}

static void test_contains_first_and_last_address_only(void **state)
{
	(void)state;
	expect_contains("10.0.0.0/8", "10.0.0.0", true);
	expect_contains("10.0.0.0/8", "10.255.255.255", true);
	expect_contains("10.0.0.0/8", "9.255.255.255", false);
	expect_contains("10.0.0.0/8", "11.0.0.0", false);
	expect_contains("192.0.2.128/25", "192.0.2.128", true);
	expect_contains("192.0.2.128/25", "192.0.2.255", true);
	expect_contains("192.0.2.128/25", "192.0.2.127", false);
	expect_contains("192.0.2.4/31", "192.0.2.5", true);
	expect_contains("192.0.2.4/31", "192.0.2.6", false);
	expect_contains("2001:db8::/32", "2001:db8::", true);
	expect_contains("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true);
	expect_contains("2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false);
	expect_contains("2001:db8::/32", "2001:db9::", false);
	expect_contains("2001:db8::/65", "2001:db8::7fff:ffff:ffff:ffff", true);
	expect_contains("2001:db8::/65", "2001:db8::8000:0:0:0", false);
}

static void test_contains_zero_length_covers_everything(void **state)
{
	(void)state;
	expect_contains("0.0.0.0/0", "0.0.0.0", true);
	expect_contains("0.0.0.0/0", "255.255.255.255", true);
	expect_contains("0.0.0.0/0", "198.51.100.9", true);
	expect_contains("::/0", "::", true);
	expect_contains("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true);
	expect_contains("::/0", "2001:db8::1", true);
}

static void test_contains_full_length_is_one_address(void **state)
{
	(void)state;
	expect_contains("198.51.100.9/32", "198.51.100.9", true);
	expect_contains("198.51.100.9/32", "198.51.100.8", false);
	expect_contains("198.51.100.9/32", "198.51.100.10", false);
	expect_contains("198.51.100.9/32", "199.51.100.9", false);
	expect_contains("2001:db8::1/128", "2001:db8::1", true);
	expect_contains("2001:db8::1/128", "2001:db8::", false);
	expect_contains("2001:db8::1/128", "2001:db8::2", false);
	expect_contains("2001:db8::1/128", "3001:db8::1", false);
	expect_contains("::/128", "::", true);
	expect_contains("::/128", "::1", false);
}

static void test_contains_agrees_with_bitwise_reference(void **state)
{
	(void)state;
	for (int i = 0; i < 20000; i++) {
		int family = rnd(2) ? AF_INET : AF_INET6;
		unsigned int max = family == AF_INET ? 32 : 128, nbytes = max / 8, diff;
		uint8_t a[16] = { 0 };
		bool want = true;
		struct cidr p;

		random_prefix(&p, family);
		/* An address near the prefix: flip one bit, or none. */
		memcpy(a, p.addr, nbytes);
		for (unsigned int b = p.len; b < max; b++)
			if (rnd(2))
				a[b / 8] ^= (uint8_t)(0x80 >> (b % 8));
		diff = rnd(max + 1);
		if (diff < max)
			a[diff / 8] ^= (uint8_t)(0x80 >> (diff % 8));
		for (unsigned int b = 0; b < p.len; b++)
			if (bit(a, b) != bit(p.addr, b))
				want = false;
		assert_int_equal(cidr_contains(&p, a), want);
	}
}

static void test_clear_host_bits_reports_and_clears(void **state)
{
	(void)state;
	for (int family = 0; family < 2; family++) {
		unsigned int max = family ? 128 : 32;

		for (unsigned int len = 0; len <= max; len++) {
			struct cidr p = { .family = family ? AF_INET6 : AF_INET,
					  .len = (uint8_t)len };
			struct cidr want;

			memset(p.addr, 0xff, max / 8);
			want = p;
			ref_clear(&want);
			assert_int_equal(cidr_clear_host_bits(&p), len < max);
			assert_memory_equal(&p, &want, sizeof(p));
			/* Idempotent: nothing left to clear the second time. */
			assert_false(cidr_clear_host_bits(&p));
			assert_memory_equal(&p, &want, sizeof(p));
		}
	}
}

static void test_clear_host_bits_keeps_network_bits(void **state)
{
	struct cidr p = make_v4(198, 51, 100, 7, 24);
	char buf[CIDR_STRLEN];

	(void)state;
	assert_true(cidr_clear_host_bits(&p));
	assert_string_equal(fmt(&p, buf), "198.51.100.0/24");
	p = make_v4(10, 128, 0, 0, 9);
	assert_false(cidr_clear_host_bits(&p));
	assert_string_equal(fmt(&p, buf), "10.128.0.0/9");
	/* Stray bytes past an IPv4 address are host bits too. */
	p = make_v4(10, 0, 0, 0, 32);
	p.addr[4] = 1;
	assert_true(cidr_clear_host_bits(&p));
	assert_int_equal(p.addr[4], 0);
	assert_int_equal(p.addr[0], 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_dotted_quad),
		cmocka_unit_test(test_bare_address_is_host_prefix),
		cmocka_unit_test(test_accepts_every_length_of_both_families),
		cmocka_unit_test(test_accepts_length_with_leading_zeros),
		cmocka_unit_test(test_accepts_full_ipv6_form),
		cmocka_unit_test(test_accepts_compression_anywhere),
		cmocka_unit_test(test_accepts_upper_and_lower_hex),
		cmocka_unit_test(test_accepts_one_to_four_hex_digits_per_group),
		cmocka_unit_test(test_accepts_embedded_ipv4_in_last_32_bits),
		cmocka_unit_test(test_rejects_octet_over_255),
		cmocka_unit_test(test_rejects_three_octets),
		cmocka_unit_test(test_rejects_five_octets),
		cmocka_unit_test(test_rejects_leading_zero_octet),
		cmocka_unit_test(test_rejects_empty_octet),
		cmocka_unit_test(test_rejects_non_digit_in_ipv4),
		cmocka_unit_test(test_rejects_ipv4_length_over_32),
		cmocka_unit_test(test_rejects_ipv6_length_over_128),
		cmocka_unit_test(test_rejects_huge_lengths),
		cmocka_unit_test(test_rejects_triple_colon),
		cmocka_unit_test(test_rejects_double_compression),
		cmocka_unit_test(test_rejects_too_many_groups),
		cmocka_unit_test(test_rejects_too_few_groups_without_compression),
		cmocka_unit_test(test_rejects_group_of_five_hex_digits),
		cmocka_unit_test(test_rejects_non_hex_in_ipv6),
		cmocka_unit_test(test_rejects_single_colon_at_either_end),
		cmocka_unit_test(test_rejects_embedded_ipv4_not_at_end),
		cmocka_unit_test(test_rejects_bad_embedded_ipv4),
		cmocka_unit_test(test_rejects_words),
		cmocka_unit_test(test_rejects_empty_string),
		cmocka_unit_test(test_rejects_null_input),
		cmocka_unit_test(test_rejects_length_without_address),
		cmocka_unit_test(test_rejects_slash_without_length),
		cmocka_unit_test(test_rejects_signed_length),
		cmocka_unit_test(test_rejects_length_with_trailing_garbage),
		cmocka_unit_test(test_rejects_whitespace_anywhere),
		cmocka_unit_test(test_rejects_zone_ids),
		cmocka_unit_test(test_error_escapes_control_bytes),
		cmocka_unit_test(test_error_for_long_input_is_cut_short_but_whole),
		cmocka_unit_test(test_error_respects_small_or_missing_buffer),
		cmocka_unit_test(test_clears_ipv4_host_bits_and_notes_it),
		cmocka_unit_test(test_no_host_bits_note_when_already_clean),
		cmocka_unit_test(test_clears_ipv6_host_bits_and_notes_it),
		cmocka_unit_test(test_notes_may_be_null_and_are_reset),
		cmocka_unit_test(test_v4_mapped_dotted_becomes_ipv4),
		cmocka_unit_test(test_v4_mapped_hex_becomes_ipv4),
		cmocka_unit_test(test_v4_mapped_at_96_is_the_whole_ipv4_space),
		cmocka_unit_test(test_v4_mapped_at_120_is_ipv4_slash_24),
		cmocka_unit_test(test_v4_mapped_below_96_stays_ipv6),
		cmocka_unit_test(test_only_exact_mapped_prefix_becomes_ipv4),
		cmocka_unit_test(test_formats_ipv6_per_rfc5952),
		cmocka_unit_test(test_formats_ipv4_as_dotted_quad),
		cmocka_unit_test(test_format_truncates_to_buffer),
		cmocka_unit_test(test_format_matches_inet_ntop_on_random_addresses),
		cmocka_unit_test(test_round_trip_of_random_normalised_prefixes),
		cmocka_unit_test(test_parser_agrees_with_inet_pton),
		cmocka_unit_test(test_compare_orders_ipv4_first_then_address_then_length),
		cmocka_unit_test(test_compare_is_a_consistent_total_order),
		cmocka_unit_test(test_contains_first_and_last_address_only),
		cmocka_unit_test(test_contains_zero_length_covers_everything),
		cmocka_unit_test(test_contains_full_length_is_one_address),
		cmocka_unit_test(test_contains_agrees_with_bitwise_reference),
		cmocka_unit_test(test_clear_host_bits_reports_and_clears),
		cmocka_unit_test(test_clear_host_bits_keeps_network_bits),
	};

	rng_seed();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
