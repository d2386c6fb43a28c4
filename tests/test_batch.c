// SPDX-License-Identifier: GPL-2.0
/*
 * Batches of changes as text (ipblock-rule -b): add and del lines with
 * their sources and deadlines, in order; a bad line refuses the batch,
 * naming its line.
 */
#include <errno.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "batch.h"

#define NOW 2000000000ull

static int parse(struct batch *b, const char *text)
{
	return batch_parse_text(b, "batch", text, strlen(text), NOW);
}

static void test_adds_and_dels_keep_their_order_and_fields(void **state)
{
	struct batch b;

	(void)state;
	assert_int_equal(parse(&b, "# fail2ban, one poll\n"
				   "add 198.18.0.7 deny source=fail2ban-sshd timeout=600\n"
				   "\n"
				   "  del 198.18.0.7/32   source=fail2ban-sshd ; unban\r\n"
				   "add 2001:db8::/48 allow\n"
				   "del 198.18.9.0/24"),
			 0);
	assert_int_equal(b.n, 4);
	assert_int_equal(b.adds, 2);
	assert_int_equal(b.dels, 2);
	assert_false(b.c[0].del);
	assert_int_equal(b.c[0].rule.action, IPBLOCK_ACTION_DENY);
	assert_int_equal(b.c[0].rule.prefix.len, 32);
	assert_int_equal(b.c[0].deadline, NOW + 600);
	assert_string_equal(b.c[0].source, "fail2ban-sshd");
	assert_int_equal(b.c[0].line, 2);
	assert_true(b.c[1].del);
	assert_string_equal(b.c[1].source, "fail2ban-sshd");
	assert_int_equal(b.c[1].line, 4);
	assert_int_equal(b.c[2].rule.action, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(b.c[2].rule.prefix.family, AF_INET6);
	assert_int_equal(b.c[2].deadline, 0);
	assert_string_equal(b.c[2].source, "");
	assert_true(b.c[3].del);
	assert_int_equal(b.c[3].rule.prefix.len, 24);
	batch_free(&b);
}

static void test_a_bad_line_refuses_the_batch_naming_it(void **state)
{
	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "add 198.18.0.1 deny\nban 198.18.0.2\n", "batch:2: 'ban' is not a change" },
		{ "add 198.18.0.1\n", "batch:1: '198.18.0.1' has no action" },
		{ "add\n", "batch:1: add needs a CIDR" },
		{ "del\n", "batch:1: del needs a CIDR" },
		{ "del 198.18.0.1 deny\n", "batch:1: unexpected 'deny'" },
		{ "del 198.18.0.1 source=bad/name\n", "batch:1: bad source name" },
		{ "del 198.18.0.1 source=a x\n", "batch:1: a deletion is" },
		{ "add 198.18.0.300 deny\n", "batch:1:" },
		{ "add 198.18.0.1 deny timeout=soon\n", "batch:1:" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct batch b;

		assert_int_equal(parse(&b, bad[i].text), -EINVAL);
		if (strncmp(b.error, bad[i].error, strlen(bad[i].error)))
			fail_msg("%s: got '%s'", bad[i].text, b.error);
		batch_free(&b);
	}
}

static void test_an_empty_batch_is_no_change(void **state)
{
	struct batch b;

	(void)state;
	assert_int_equal(parse(&b, "# nothing\n\n"), 0);
	assert_int_equal(b.n, 0);
	batch_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adds_and_dels_keep_their_order_and_fields),
		cmocka_unit_test(test_a_bad_line_refuses_the_batch_naming_it),
		cmocka_unit_test(test_an_empty_batch_is_no_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
