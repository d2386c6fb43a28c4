// SPDX-License-Identifier: GPL-2.0
/*
 * The rule-list parser: every accepted format, every refusal with its line
 * number, duplicates, conflicts, --skip-invalid and the normalisation notes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cidr.h"
#include "rulefile.h"

static struct rulefile rf;

static int teardown(void **state)
{
	(void)state;
	rulefile_free(&rf);
	return 0;
}

/* Parse text as file "f.txt" with the given -p action (0: none). */
static int parse(const char *text, uint8_t action, bool skip)
{
	struct rulefile_opts o = { .name = "f.txt", .action = action, .skip_invalid = skip };

	rulefile_free(&rf);
	return rulefile_parse_text(&rf, &o, text, strlen(text));
}

static void assert_rule(size_t i, const char *prefix, uint8_t action)
{
	char text[CIDR_STRLEN];

	assert_true(i < rf.n);
	assert_string_equal(cidr_format(&rf.rules[i].prefix, text, sizeof(text)), prefix);
	assert_int_equal(rf.rules[i].action, action);
}

/* The note that starts with prefix, or NULL. */
static const char *find_note(const char *prefix)
{
	for (size_t i = 0; i < rf.n_notes; i++)
		if (!strncmp(rf.notes[i], prefix, strlen(prefix)))
			return rf.notes[i];
	return NULL;
}

static void test_bare_addresses_and_prefixes_take_the_policy(void **state)
{
	(void)state;
	assert_int_equal(parse("198.51.100.0/24\n192.0.2.7\n2001:db8::/32\n2001:db8::1\n",
			       IPBLOCK_ACTION_DENY, false),
			 0);
	assert_int_equal(rf.n, 4);
	assert_int_equal(rf.v4, 2);
	assert_int_equal(rf.v6, 2);
	assert_int_equal(rf.lines, 4);
	/* Sorted: IPv4 first, by address. */
	assert_rule(0, "192.0.2.7/32", IPBLOCK_ACTION_DENY);
	assert_rule(1, "198.51.100.0/24", IPBLOCK_ACTION_DENY);
	assert_rule(2, "2001:db8::/32", IPBLOCK_ACTION_DENY);
	assert_rule(3, "2001:db8::1/128", IPBLOCK_ACTION_DENY);
	assert_int_equal(rf.n_notes, 0);
}

static void test_hash_and_semicolon_comments_whole_and_trailing(void **state)
{
	(void)state;
	assert_int_equal(parse("# a comment\n"
			       "; another\n"
			       "192.0.2.0/24 # trailing hash\n"
			       "198.51.100.0/24; trailing semicolon, no space\n"
			       "203.0.113.0/24#tight\n"
			       "#192.0.2.99 commented out\n",
			       IPBLOCK_ACTION_ALLOW, false),
			 0);
	assert_int_equal(rf.n, 3);
	assert_int_equal(rf.lines, 6);
	assert_rule(0, "192.0.2.0/24", IPBLOCK_ACTION_ALLOW);
	assert_rule(1, "198.51.100.0/24", IPBLOCK_ACTION_ALLOW);
	assert_rule(2, "203.0.113.0/24", IPBLOCK_ACTION_ALLOW);
}

static void test_blank_lines_crlf_and_surrounding_spaces(void **state)
{
	(void)state;
	assert_int_equal(parse("\r\n"
			       "   \n"
			       "\t\t\r\n"
			       "  192.0.2.0/24  \r\n"
			       "\t2001:db8::/48\t deny \r\n"
			       "\n",
			       IPBLOCK_ACTION_DENY, false),
			 0);
	assert_int_equal(rf.n, 2);
	assert_int_equal(rf.lines, 6);
	assert_rule(0, "192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_rule(1, "2001:db8::/48", IPBLOCK_ACTION_DENY);
}

static void test_spamhaus_drop_format(void **state)
{
	(void)state;
	/* The DROP layout: ';' header lines, then "PREFIX ; SBL id". */
	assert_int_equal(parse("; Example DROP-style list\n"
			       "; Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\n"
			       "; Expires: Mon, 01 Jan 2024 01:00:00 GMT\n"
			       "192.0.2.0/24 ; SBL000001\n"
			       "198.51.100.0/22 ; SBL000002\n"
			       "203.0.113.128/25 ; SBL000003\n",
			       IPBLOCK_ACTION_DENY, false),
			 0);
	assert_int_equal(rf.n, 3);
	assert_rule(0, "192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_rule(1, "198.51.100.0/22", IPBLOCK_ACTION_DENY);
	assert_rule(2, "203.0.113.128/25", IPBLOCK_ACTION_DENY);
}

static void test_firehol_netset_format(void **state)
{
	(void)state;
	assert_int_equal(parse("#\n"
			       "# example_level1\n"
			       "#\n"
			       "# ipv4 hash:net ipset\n"
			       "#\n"
			       "# Source: made up for this test\n"
			       "#\n"
			       "0.0.0.0/8\n"
			       "192.0.2.0/24\n"
			       "198.18.0.0/15\n"
			       "224.0.0.0/3\n",
			       IPBLOCK_ACTION_DENY, false),
			 0);
	assert_int_equal(rf.n, 4);
	assert_rule(0, "0.0.0.0/8", IPBLOCK_ACTION_DENY);
	assert_rule(3, "224.0.0.0/3", IPBLOCK_ACTION_DENY);
}

static void test_save_format_lines_carry_their_action(void **state)
{
	(void)state;
	assert_int_equal(parse("# ipblock rule set saved 2024-01-01T00:00:00Z: 3 rules\n"
			       "192.0.2.0/24 deny\n"
			       "192.0.2.7/32 allow\n"
			       "2001:db8::/32 allow\n",
			       0, false),
			 0);
	assert_int_equal(rf.n, 3);
	assert_rule(0, "192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_rule(1, "192.0.2.7/32", IPBLOCK_ACTION_ALLOW);
	assert_rule(2, "2001:db8::/32", IPBLOCK_ACTION_ALLOW);
}

static void test_policy_overrides_every_line_action(void **state)
{
	(void)state;
	assert_int_equal(parse("192.0.2.0/24 allow\n198.51.100.0/24\n", IPBLOCK_ACTION_DENY, false),
			 0);
	assert_rule(0, "192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_rule(1, "198.51.100.0/24", IPBLOCK_ACTION_DENY);
}

static void test_line_without_action_and_without_policy_is_named(void **state)
{
	(void)state;
	assert_int_equal(parse("192.0.2.0/24 deny\n# x\n198.51.100.0/24\n", 0, false), -EINVAL);
	assert_string_equal(rf.error, "f.txt:3: '198.51.100.0/24' has no action: write allow or "
				      "deny after it, or give -p.");
}

static void test_bad_prefix_reports_line_and_parser_sentence(void **state)
{
	char expect[RULEFILE_MSGLEN], why[CIDR_ERRLEN];
	struct cidr c;

	(void)state;
	assert_int_equal(cidr_parse("192.0.2.300/24", &c, NULL, why, sizeof(why)), -EINVAL);
	snprintf(expect, sizeof(expect), "f.txt:4: %s", why);
	assert_int_equal(parse("192.0.2.0/24\n\n# c\n192.0.2.300/24 ; bad octet\n10.0.0.0/8\n",
			       IPBLOCK_ACTION_DENY, false),
			 -EINVAL);
	assert_string_equal(rf.error, expect);
	assert_int_equal(rf.n_notes, 0);
}

static void test_each_kind_of_bad_line_names_its_line(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "192.0.2.0/24 drop\n", "f.txt:1: 'drop' is not an action: use allow or deny." },
		{ "192.0.2.0/24 deny extra\n",
		  "f.txt:1: unexpected 'extra' after the action; a rule line is CIDR "
		  "[allow|deny] [source=NAME] [timeout=DURATION|expires=TIME]." },
		{ "\n192.0.2.0/33\n",
		  "f.txt:2: '192.0.2.0/33' is not a valid prefix: the prefix length 33 is larger "
		  "than 32." },
		{ "# x\n\n2001:db8:::1\n",
		  "f.txt:3: '2001:db8:::1' is not a valid address: it contains ':::'." },
		{ "192.0.2.0/24\nlocalhost\n",
		  "f.txt:2: 'localhost' is not a valid address: it is neither a dotted-quad IPv4 "
		  "address nor an IPv6 address." },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].text, IPBLOCK_ACTION_DENY, false), -EINVAL);
		assert_string_equal(rf.error, cases[i].error);
	}
}

static void test_nul_byte_is_refused(void **state)
{
	static const char text[] = "192.0.2.0/24\n198.51\0.100.0/24\n";
	struct rulefile_opts o = { .name = "f.txt", .action = IPBLOCK_ACTION_DENY };

	(void)state;
	rulefile_free(&rf);
	assert_int_equal(rulefile_parse_text(&rf, &o, text, sizeof(text) - 1), -EINVAL);
	assert_string_equal(rf.error,
			    "f.txt:2: the line contains a NUL byte; is this a text file?");
}

static void test_duplicates_collapse_with_one_note(void **state)
{
	(void)state;
	assert_int_equal(parse("192.0.2.0/24\n198.51.100.0/24\n192.0.2.0/24\n192.0.2.0/24\n",
			       IPBLOCK_ACTION_DENY, false),
			 0);
	assert_int_equal(rf.n, 2);
	assert_int_equal(rf.duplicates, 2);
	assert_non_null(find_note("2 duplicate lines were collapsed"));
	assert_string_equal(find_note("2 duplicate"),
			    "2 duplicate lines were collapsed (first: f.txt:3 repeats "
			    "192.0.2.0/24 from line 1).");
}

static void test_same_prefix_after_normalisation_is_a_duplicate(void **state)
{
	(void)state;
	assert_int_equal(parse("192.0.2.0/24 deny\n192.0.2.77/24 deny\n", 0, false), 0);
	assert_int_equal(rf.n, 1);
	assert_int_equal(rf.duplicates, 1);
	assert_int_equal(rf.host_bits, 1);
}

static void test_conflicting_duplicates_name_both_lines(void **state)
{
	(void)state;
	assert_int_equal(parse("192.0.2.0/24 deny\n198.51.100.0/24 deny\n# x\n192.0.2.9/24 allow\n",
			       0, false),
			 -EINVAL);
	assert_string_equal(rf.error, "f.txt:4: 192.0.2.0/24 is allow here but deny on line 1.");
}

static void test_skip_invalid_applies_the_rest_and_counts(void **state)
{
	const char *head;

	(void)state;
	assert_int_equal(parse("192.0.2.0/24 deny\n"
			       "bad1\n"
			       "198.51.100.0/24 allow\n"
			       "192.0.2.0/33 deny\n"
			       "203.0.113.0/24\n"
			       "203.0.113.0/24 maybe\n"
			       "2001:db8::/32 deny\n"
			       "bad2 deny\n",
			       0, true),
			 0);
	assert_int_equal(rf.n, 3);
	assert_int_equal(rf.skipped, 5);
	assert_int_equal(rf.lines, 8);
	head = find_note("skipped ");
	assert_non_null(head);
	assert_string_equal(head, "skipped 5 invalid lines of f.txt:");
	/* Only the first few are named, in line order. */
	assert_non_null(find_note("  f.txt:2: 'bad1' is not a valid address"));
	assert_non_null(find_note("  f.txt:4: '192.0.2.0/33' is not a valid prefix"));
	assert_non_null(find_note("  f.txt:5: '203.0.113.0/24' has no action"));
	assert_null(find_note("  f.txt:6:"));
	assert_null(find_note("  f.txt:8:"));
}

static void test_skip_invalid_drops_a_conflicting_prefix_entirely(void **state)
{
	(void)state;
	assert_int_equal(
		parse("192.0.2.0/24 deny\n198.51.100.0/24 deny\n192.0.2.0/24 allow\n", 0, true), 0);
	assert_int_equal(rf.n, 1);
	assert_rule(0, "198.51.100.0/24", IPBLOCK_ACTION_DENY);
	assert_int_equal(rf.skipped, 2);
	assert_non_null(find_note("  f.txt:1: 192.0.2.0/24 appears with both actions (lines 1 "
				  "and 3)."));
}

static void test_skip_invalid_with_nothing_valid_is_an_error(void **state)
{
	(void)state;
	assert_int_equal(parse("# only junk\nfoo\nbar\n", IPBLOCK_ACTION_DENY, true), -EINVAL);
	assert_string_equal(rf.error, "f.txt:2: 'foo' is not a valid address: it is neither a "
				      "dotted-quad IPv4 address nor an IPv6 address; all 2 rule "
				      "lines are invalid, so nothing was changed.");
}

static void test_normalisation_is_summarised_not_repeated(void **state)
{
	size_t len = 0, cap = 64 * 1024;
	char *text = malloc(cap);

	(void)state;
	assert_non_null(text);
	/* 1000 prefixes with host bits, then 3 IPv4-mapped ones. */
	for (int i = 0; i < 1000; i++)
		len += (size_t)snprintf(text + len, cap - len, "10.%d.%d.1/24\n", i / 256, i % 256);
	for (int i = 0; i < 3; i++)
		len += (size_t)snprintf(text + len, cap - len, "::ffff:192.0.2.%d\n", i);
	assert_int_equal(parse(text, IPBLOCK_ACTION_DENY, false), 0);
	free(text);
	assert_int_equal(rf.n, 1003);
	assert_int_equal(rf.host_bits, 1000);
	assert_int_equal(rf.v4_mapped, 3);
	assert_int_equal(rf.n_notes, 2);
	assert_string_equal(find_note("1000 "), "1000 prefixes had host bits set and were "
						"normalised (first: f.txt:1 10.0.0.1/24 -> "
						"10.0.0.0/24).");
	assert_string_equal(find_note("3 "), "3 IPv4-mapped IPv6 prefixes are stored as IPv4 "
					     "(first: f.txt:1001 ::ffff:192.0.2.0 -> "
					     "192.0.2.0/32).");
}

static void test_lines_cut_across_chunks_parse_the_same(void **state)
{
	static const char text[] = "# header\r\n192.0.2.0/24 deny ; c\r\n\r\n2001:db8::/32 allow\n"
				   "198.51.100.7 deny";
	struct rulefile_opts o = { .name = "f.txt" };
	struct rulefile one;

	(void)state;
	assert_int_equal(rulefile_parse_text(&one, &o, text, strlen(text)), 0);
	rulefile_free(&rf);
	rulefile_init(&rf, &o);
	for (size_t i = 0; i < strlen(text); i++)
		assert_int_equal(rulefile_feed(&rf, text + i, 1), 0);
	assert_int_equal(rulefile_finish(&rf), 0);
	assert_int_equal(rf.n, 3);
	assert_int_equal(rf.n, one.n);
	assert_int_equal(rf.lines, 5);
	assert_memory_equal(rf.rules, one.rules, rf.n * sizeof(*rf.rules));
	/* The last line had no newline and still counts. */
	assert_rule(1, "198.51.100.7/32", IPBLOCK_ACTION_DENY);
	rulefile_free(&one);
}

static void test_utf8_byte_order_mark_is_ignored(void **state)
{
	(void)state;
	assert_int_equal(parse("\xef\xbb\xbf"
			       "192.0.2.0/24\n",
			       IPBLOCK_ACTION_DENY, false),
			 0);
	assert_int_equal(rf.n, 1);
}

static void test_overlong_line_is_refused(void **state)
{
	size_t n = RULEFILE_MAX_LINE + 100;
	char *text = malloc(n + 32);

	(void)state;
	assert_non_null(text);
	strcpy(text, "192.0.2.0/24\n");
	memset(text + 13, ' ', n);
	strcpy(text + 13 + n, "\n");
	assert_int_equal(parse(text, IPBLOCK_ACTION_DENY, false), -EINVAL);
	assert_string_equal(rf.error, "f.txt:2: the line is longer than 65536 bytes.");
	free(text);
}

static void test_read_from_a_file_and_a_missing_file(void **state)
{
	char path[] = "/tmp/ipblock-rulefile-XXXXXX";
	struct rulefile_opts o = { .action = IPBLOCK_ACTION_ALLOW };
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "192.0.2.0/24\nbad\n", 17), 17);
	close(fd);
	rulefile_free(&rf);
	assert_int_equal(rulefile_read(&rf, &o, path), -EINVAL);
	/* Messages name the path as given. */
	assert_int_equal(strncmp(rf.error, path, strlen(path)), 0);
	assert_string_equal(rf.error + strlen(path),
			    ":2: 'bad' is not a valid address: it is neither a dotted-quad IPv4 "
			    "address nor an IPv6 address.");
	rulefile_free(&rf);
	unlink(path);
	assert_int_equal(rulefile_read(&rf, &o, path), -ENOENT);
	assert_non_null(strstr(rf.error, "cannot open"));
}

static void test_parse_line_alone(void **state)
{
	struct rule r;
	char err[RULEFILE_WHYLEN];
	unsigned int notes = 0;

	(void)state;
	assert_int_equal(rulefile_parse_line("  # nothing", 11, 0, &r, NULL, err, sizeof(err)), 0);
	assert_int_equal(
		rulefile_parse_line("192.0.2.1/24 allow;x", 20, 0, &r, &notes, err, sizeof(err)),
		1);
	assert_int_equal(r.action, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(r.prefix.len, 24);
	assert_true(notes & CIDR_NOTE_HOST_BITS);
	/* The length is what counts, not a NUL: "192.0.2.1" then junk past len. */
	assert_int_equal(rulefile_parse_line("192.0.2.1XYZ", 9, IPBLOCK_ACTION_DENY, &r, NULL, err,
					     sizeof(err)),
			 1);
	assert_int_equal(r.prefix.len, 32);
}

/* A big list with repeats comes out sorted, unique, with the repeats counted. */
static void test_timeout_and_expires_columns_give_each_rule_its_deadline(void **state)
{
	static const char text[] = "2001:db8::/32 deny\n"
				   "192.0.2.9 allow expires=2026-12-06T04:00:00Z\n"
				   "192.0.2.0/24 deny timeout=1h # a ban\n"
				   "198.51.100.1 timeout=90s\n";
	struct rulefile_opts o = { .name = "f.txt", .action = IPBLOCK_ACTION_DENY, .now = 1000 };

	(void)state;
	rulefile_free(&rf);
	assert_int_equal(rulefile_parse_text(&rf, &o, text, strlen(text)), 0);
	assert_int_equal(rf.n, 4);
	assert_non_null(rf.deadline);
	/* Sorted: each deadline moved with its rule; -p overrides the line's action. */
	assert_rule(0, "192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_int_equal(rf.deadline[0], 1000 + 3600);
	assert_rule(1, "192.0.2.9/32", IPBLOCK_ACTION_DENY);
	assert_int_equal(rf.deadline[1], 1796529600);
	assert_rule(2, "198.51.100.1/32", IPBLOCK_ACTION_DENY);
	assert_int_equal(rf.deadline[2], 1000 + 90);
	assert_rule(3, "2001:db8::/32", IPBLOCK_ACTION_DENY);
	assert_int_equal(rf.deadline[3], 0);

	/* Without a deadline on any line there is no array. */
	assert_int_equal(parse("192.0.2.0/24 deny\n", 0, false), 0);
	assert_null(rf.deadline);
}

static void test_bad_deadline_columns_name_their_line(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "192.0.2.0/24 deny timeout=soon\n", "f.txt:1: bad timeout 'soon': " },
		{ "192.0.2.0/24 deny expires=tomorrow\n",
		  "f.txt:1: bad expiry 'tomorrow': write expires=YYYY-MM-DDTHH:MM:SSZ (UTC)." },
		{ "192.0.2.0/24 deny timeout=1h expires=2026-12-06T04:00:00Z\n",
		  "f.txt:1: 'expires=2026-12-06T04:00:00Z': give one timeout= or expires= a line." },
		{ "192.0.2.0/24 deny timeout=1h extra\n",
		  "f.txt:1: unexpected 'extra' after the action; a rule line is CIDR "
		  "[allow|deny] [source=NAME] [timeout=DURATION|expires=TIME]." },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].text, 0, false), -EINVAL);
		assert_memory_equal(rf.error, cases[i].error, strlen(cases[i].error));
	}
}

static void test_source_column_keeps_a_prefix_once_per_source(void **state)
{
	static const char text[] = "192.0.2.0/24 deny source=crowdsec\n"
				   "192.0.2.0/24 allow\n"
				   "192.0.2.0/24 deny source=fail2ban-sshd expires=2026-12-06T04:00:00Z\n"
				   "192.0.2.0/24 deny source=crowdsec\n";

	(void)state;
	assert_int_equal(parse(text, 0, false), 0);
	assert_int_equal(rf.n, 3);
	assert_int_equal(rf.duplicates, 1);
	assert_non_null(rf.source);
	assert_int_equal(rf.n_source_names, 2);
	/* Equal prefixes stay in line order: crowdsec, (none), fail2ban-sshd. */
	assert_rule(0, "192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_string_equal(rf.source_names[rf.source[0] - 1], "crowdsec");
	assert_rule(1, "192.0.2.0/24", IPBLOCK_ACTION_ALLOW);
	assert_int_equal(rf.source[1], 0);
	assert_rule(2, "192.0.2.0/24", IPBLOCK_ACTION_DENY);
	assert_string_equal(rf.source_names[rf.source[2] - 1], "fail2ban-sshd");
	assert_int_equal(rf.deadline[2], 1796529600);
	assert_int_equal(rf.deadline[0], 0);

	/* One source giving both actions is still a conflict, naming both lines. */
	assert_int_equal(parse("192.0.2.0/24 deny source=a\n192.0.2.0/24 deny source=b\n"
			       "192.0.2.0/24 allow source=a\n",
			       0, false),
			 -EINVAL);
	assert_string_equal(rf.error, "f.txt:3: 192.0.2.0/24 is allow here but deny on line 1.");
	assert_int_equal(parse("192.0.2.0/24 deny source=bad/name\n", 0, false), -EINVAL);
	assert_memory_equal(rf.error, "f.txt:1: bad source 'bad/name': it may hold only", 46);
}

static void test_large_list_is_sorted_and_unique(void **state)
{
	size_t n = 100000, len = 0, cap = n * 24;
	char *text = malloc(cap);
	unsigned int seed = 12345;

	(void)state;
	assert_non_null(text);
	for (size_t i = 0; i < n; i++) {
		/* Draw from a small space so that repeats are common. */
		unsigned int a = (unsigned int)rand_r(&seed) % 60000;

		len += (size_t)snprintf(text + len, cap - len, "10.%u.%u.0/24\n", a / 256, a % 256);
	}
	assert_int_equal(parse(text, IPBLOCK_ACTION_DENY, false), 0);
	free(text);
	assert_int_equal(rf.n + rf.duplicates, n);
	for (size_t i = 1; i < rf.n; i++)
		assert_true(cidr_compare(&rf.rules[i - 1].prefix, &rf.rules[i].prefix) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bare_addresses_and_prefixes_take_the_policy,
					  teardown),
		cmocka_unit_test_teardown(test_hash_and_semicolon_comments_whole_and_trailing,
					  teardown),
		cmocka_unit_test_teardown(test_blank_lines_crlf_and_surrounding_spaces, teardown),
		cmocka_unit_test_teardown(test_spamhaus_drop_format, teardown),
		cmocka_unit_test_teardown(test_firehol_netset_format, teardown),
		cmocka_unit_test_teardown(test_save_format_lines_carry_their_action, teardown),
		cmocka_unit_test_teardown(test_policy_overrides_every_line_action, teardown),
		cmocka_unit_test_teardown(test_line_without_action_and_without_policy_is_named,
					  teardown),
		cmocka_unit_test_teardown(test_bad_prefix_reports_line_and_parser_sentence,
					  teardown),
		cmocka_unit_test_teardown(test_each_kind_of_bad_line_names_its_line, teardown),
		cmocka_unit_test_teardown(test_nul_byte_is_refused, teardown),
		cmocka_unit_test_teardown(test_duplicates_collapse_with_one_note, teardown),
		cmocka_unit_test_teardown(test_same_prefix_after_normalisation_is_a_duplicate,
					  teardown),
		cmocka_unit_test_teardown(test_conflicting_duplicates_name_both_lines, teardown),
		cmocka_unit_test_teardown(test_skip_invalid_applies_the_rest_and_counts, teardown),
		cmocka_unit_test_teardown(test_skip_invalid_drops_a_conflicting_prefix_entirely,
					  teardown),
		cmocka_unit_test_teardown(test_skip_invalid_with_nothing_valid_is_an_error,
					  teardown),
		cmocka_unit_test_teardown(test_normalisation_is_summarised_not_repeated, teardown),
		cmocka_unit_test_teardown(test_lines_cut_across_chunks_parse_the_same, teardown),
		cmocka_unit_test_teardown(test_utf8_byte_order_mark_is_ignored, teardown),
		cmocka_unit_test_teardown(test_overlong_line_is_refused, teardown),
		cmocka_unit_test_teardown(test_read_from_a_file_and_a_missing_file, teardown),
		cmocka_unit_test_teardown(test_parse_line_alone, teardown),
		cmocka_unit_test_teardown(test_timeout_and_expires_columns_give_each_rule_its_deadline,
					  teardown),
		cmocka_unit_test_teardown(test_bad_deadline_columns_name_their_line, teardown),
		cmocka_unit_test_teardown(test_source_column_keeps_a_prefix_once_per_source,
					  teardown),
		cmocka_unit_test_teardown(test_large_list_is_sorted_and_unique, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
