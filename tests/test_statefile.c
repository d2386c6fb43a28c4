// SPDX-License-Identifier: GPL-2.0
/*
 * The service's state file: what is saved reads back (sources, actions,
 * deadlines); every truncation and every changed byte is refused with a
 * sentence naming the file and a line; writing keeps the copy before and
 * leaves no temporary file; a write that fails leaves the copies as they
 * were.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cidr.h"
#include "statefile.h"

#define NOW 1796000000ull

/* Three sources, one with deadlines, one prefix held by two, and a rule no source claims. */
static void sample(char **text, size_t *len)
{
	static struct owners_sources src;
	struct owner_claims cl = {};
	struct ruleset r = {};
	const struct {
		const char *prefix;
		uint16_t source;
		uint8_t action;
		uint64_t deadline;
	} in[] = {
		{ "198.18.0.3/32", 0, IPBLOCK_ACTION_DENY, 0 },
		{ "198.18.0.4/32", 2, IPBLOCK_ACTION_DENY, 0 },
		{ "198.18.0.6/32", 1, IPBLOCK_ACTION_DENY, NOW + 3600 },
		{ "198.18.0.6/32", 2, IPBLOCK_ACTION_ALLOW, 0 },
		{ "2001:db8::3/128", 0, IPBLOCK_ACTION_DENY, 0 },
	};

	memset(&src, 0, sizeof(src));
	strcpy(src.name[0], IPBLOCK_SOURCE_DEFAULT);
	strcpy(src.name[1], "fail2ban-sshd");
	strcpy(src.name[2], "blk");
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct owner_claim c = { .source = in[i].source,
					 .action = in[i].action,
					 .deadline = in[i].deadline };

		assert_int_equal(cidr_parse(in[i].prefix, &c.prefix, NULL, NULL, 0), 0);
		assert_int_equal(owners_claims_push(&cl, &c), 0);
	}
	owners_claims_sort(cl.c, cl.n);
	/* The verdicts: one per prefix, plus 198.18.9.0/24 that nobody claims. */
	const char *rules[] = { "198.18.0.3/32", "198.18.0.4/32", "198.18.0.6/32", "198.18.9.0/24",
				"2001:db8::3/128" };
	const uint8_t act[] = { IPBLOCK_ACTION_DENY, IPBLOCK_ACTION_DENY, IPBLOCK_ACTION_ALLOW,
				IPBLOCK_ACTION_DENY, IPBLOCK_ACTION_DENY };
	for (size_t i = 0; i < 5; i++) {
		struct rule x = { .action = act[i] };

		assert_int_equal(cidr_parse(rules[i], &x.prefix, NULL, NULL, 0), 0);
		assert_int_equal(ruleset_push(&r, &x), 0);
	}
	assert_int_equal(ruleset_sort(r.r, NULL, r.n), 0);
	assert_int_equal(statefile_format(&src, r.r, r.n, &cl, text, len), 0);
	ruleset_free(&r);
	owners_claims_free(&cl);
}

static void test_saved_state_reads_back_with_sources_and_deadlines(void **state)
{
	char err[STATEFILE_ERRLEN] = "", *text;
	struct rulefile rf;
	size_t len, timed = 0, named = 0;

	(void)state;
	sample(&text, &len);
	assert_int_equal(statefile_parse("s", text, len, NOW, &rf, err, sizeof(err)), 0);
	/* 5 claims and the unclaimed rule, as the default source's. */
	assert_int_equal(rf.n, 6);
	for (size_t i = 0; i < rf.n; i++) {
		timed += rf.deadline && rf.deadline[i] == NOW + 3600;
		named += rf.source && rf.source[i];
	}
	assert_int_equal(timed, 1);
	assert_int_equal(named, 3); /* fail2ban-sshd once, blk twice */
	assert_non_null(strstr(text, "198.18.0.6/32 deny source=fail2ban-sshd expires="));
	assert_non_null(strstr(text, "198.18.9.0/24 deny\n"));
	rulefile_free(&rf);
	free(text);
}

static void test_every_truncation_is_refused_naming_a_line(void **state)
{
	char err[STATEFILE_ERRLEN], *text;
	struct rulefile rf;
	size_t len;

	(void)state;
	sample(&text, &len);
	for (size_t cut = 0; cut < len; cut++) {
		err[0] = '\0';
		assert_int_equal(
			statefile_parse("rules.state", text, cut, NOW, &rf, err, sizeof(err)),
			-EINVAL);
		/* "rules.state:N: ...; refused." */
		assert_int_equal(strncmp(err, "rules.state:", 12), 0);
		assert_true(err[12] >= '1' && err[12] <= '9');
		assert_non_null(strstr(err, "refused."));
	}
	free(text);
}

static void test_every_changed_byte_is_refused(void **state)
{
	char err[STATEFILE_ERRLEN], *text;
	struct rulefile rf;
	size_t len;

	(void)state;
	sample(&text, &len);
	for (size_t at = 0; at < len; at++) {
		text[at] ^= 0x01;
		err[0] = '\0';
		assert_int_equal(
			statefile_parse("rules.state", text, len, NOW, &rf, err, sizeof(err)),
			-EINVAL);
		assert_int_equal(strncmp(err, "rules.state:", 12), 0);
		text[at] ^= 0x01;
	}
	assert_int_equal(statefile_parse("rules.state", text, len, NOW, &rf, err, sizeof(err)), 0);
	rulefile_free(&rf);
	free(text);
}

static void test_a_well_formed_file_without_its_end_line_is_truncated(void **state)
{
	const char *t = STATEFILE_HEADER "\n198.18.0.3/32 deny\n";
	char err[STATEFILE_ERRLEN];
	struct rulefile rf;

	(void)state;
	assert_int_equal(statefile_parse("x", t, strlen(t), NOW, &rf, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "x:2: the file ends without its end line ('# end: N lines, crc32 "
				 "X'): it is truncated; refused.");
}

static char dir[] = "/tmp/test_statefile.XXXXXX";

static char *slurp(const char *name)
{
	char path[256], *buf = calloc(1, 65536);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f) {
		free(buf);
		return NULL;
	}
	assert_true(fread(buf, 1, 65535, f) < 65535);
	fclose(f);
	return buf;
}

static void test_write_keeps_the_copy_before_and_no_temporary(void **state)
{
	char err[STATEFILE_ERRLEN], *a, *b, *got;
	size_t la, lb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	sample(&a, &la);
	b = strdup(STATEFILE_HEADER "\n# end: 1 lines, crc32 00000000\n");
	lb = strlen(b);
	assert_int_equal(statefile_write(dir, a, la, err, sizeof(err)), 0);
	got = slurp(STATEFILE_PREV);
	assert_null(got);
	assert_int_equal(statefile_write(dir, b, lb, err, sizeof(err)), 0);
	got = slurp(STATEFILE_NAME);
	assert_string_equal(got, b);
	free(got);
	got = slurp(STATEFILE_PREV);
	assert_string_equal(got, a);
	free(got);
	assert_null(slurp(STATEFILE_TMP));

	/* A directory that cannot be written to: one sentence, the copies stay. */
	char ro[300];

	snprintf(ro, sizeof(ro), "%s/missing", dir);
	assert_int_equal(statefile_write(ro, a, la, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot write the rule state "));
	assert_non_null(strstr(err, "/missing/rules.state: No such file or directory"));

	char path[300];

	snprintf(path, sizeof(path), "%s/%s", dir, STATEFILE_NAME);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", dir, STATEFILE_PREV);
	unlink(path);
	rmdir(dir);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_saved_state_reads_back_with_sources_and_deadlines),
		cmocka_unit_test(test_every_truncation_is_refused_naming_a_line),
		cmocka_unit_test(test_every_changed_byte_is_refused),
		cmocka_unit_test(test_a_well_formed_file_without_its_end_line_is_truncated),
		cmocka_unit_test(test_write_keeps_the_copy_before_and_no_temporary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
