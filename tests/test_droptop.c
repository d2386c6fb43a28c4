// SPDX-License-Identifier: GPL-2.0
/*
 * The drop log's report published for the live view (common/droptop): the
 * path named after the pin directory, a report written by dropagg and read
 * back with its top sources, missing and broken files told apart.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dropagg.h"
#include "droptop.h"

static char dir[] = "/tmp/test_droptop.XXXXXX";

static void test_path_named_after_the_pin_dir(void **state)
{
	char buf[256];

	(void)state;
	assert_int_equal(droptop_path("/sys/fs/bpf/ipblock", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/ipblock/droplog-sys-fs-bpf-ipblock.json");
	assert_int_equal(droptop_path("/sys/fs/bpf/ipblock/", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/ipblock/droplog-sys-fs-bpf-ipblock.json");
	assert_int_equal(droptop_path("/sys/fs/bpf/x", buf, 20), -ENAMETOOLONG);
}

static bool rule_name(int family, uint32_t id, char *buf, size_t len, void *ctx)
{
	(void)ctx;
	snprintf(buf, len, family == AF_INET ? "198.18.%u.0/24" : "2001:db8:%u::/48", id);
	return true;
}

static void add(struct dropagg *a, const char *addr, uint32_t rule, int times)
{
	struct dropagg_event e = { .rule_id = rule, .frame_len = 60, .l4_proto = 17 };

	e.source.family = AF_INET;
	e.source.len = 32;
	assert_int_equal(inet_pton(AF_INET, addr, e.source.addr), 1);
	for (int i = 0; i < times; i++)
		dropagg_add(a, &e);
}

static void test_report_published_and_read_back(void **state)
{
	struct dropagg *a = dropagg_new(64);
	struct dropagg_report r;
	char path[128], text[DROPAGG_TEXT_MAX];
	struct droptop t;
	size_t n;

	(void)state;
	assert_non_null(a);
	add(a, "198.18.0.1", 0, 7);
	add(a, "198.18.1.9", 1, 3);
	assert_int_equal(dropagg_report(a, 2.0, 5, &r), 0);
	n = dropagg_format_json(&r, time(NULL), rule_name, NULL, text, sizeof(text));
	snprintf(path, sizeof(path), "%s/top.json", dir);
	assert_int_equal(droptop_publish(path, text, n), 0);
	assert_int_equal(droptop_read(path, &t), 0);
	assert_int_equal(t.drops, 10);
	assert_true(t.seconds > 1.99 && t.seconds < 2.01);
	assert_true(t.age >= -1 && t.age < 5);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.src[0].source, "198.18.0.1");
	assert_string_equal(t.src[0].rule, "198.18.0.0/24");
	assert_int_equal(t.src[0].drops, 7);
	assert_string_equal(t.src[1].source, "198.18.1.9");
	assert_int_equal(t.src[1].drops, 3);
	dropagg_report_free(&r);

	/* A quiet window replaces it: no sources, not the old ones. */
	assert_int_equal(dropagg_report(a, 1.0, 5, &r), 0);
	n = dropagg_format_json(&r, time(NULL), rule_name, NULL, text, sizeof(text));
	assert_int_equal(droptop_publish(path, text, n), 0);
	assert_int_equal(droptop_read(path, &t), 0);
	assert_int_equal(t.drops, 0);
	assert_int_equal(t.n, 0);
	dropagg_report_free(&r);
	dropagg_free(a);
	unlink(path);
}

static void test_missing_and_broken_reports_told_apart(void **state)
{
	char path[128];
	struct droptop t;

	(void)state;
	snprintf(path, sizeof(path), "%s/none.json", dir);
	assert_int_equal(droptop_read(path, &t), -ENOENT);
	snprintf(path, sizeof(path), "%s/broken.json", dir);
	assert_int_equal(droptop_publish(path, "{\"drops\":", 9), 0);
	assert_int_equal(droptop_read(path, &t), -EINVAL);
	assert_int_equal(droptop_publish(path, "[1,2]", 5), 0);
	assert_int_equal(droptop_read(path, &t), -EINVAL);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_named_after_the_pin_dir),
		cmocka_unit_test(test_report_published_and_read_back),
		cmocka_unit_test(test_missing_and_broken_reports_told_apart),
	};
	int ret;

	if (!mkdtemp(dir))
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return ret;
}
