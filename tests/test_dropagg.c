// SPDX-License-Identifier: GPL-2.0
/*
 * The drop log's aggregation (common/dropagg) and its pipe between threads
 * (common/droppipe): packing into queue items, top sources per rule and
 * per /24 or /48, the window's totals and losses, the text and JSON
 * reports; then readers and a consumer on real threads (run under TSan
 * too), a full queue counting lost events instead of blocking.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "dropagg.h"
#include "droppipe.h"

static struct droplog_event ev_of(const char *addr, uint32_t rule_id, uint32_t len)
{
	struct droplog_event ev = { .rule_id = rule_id, .frame_len = len, .l4_proto = 17 };

	if (strchr(addr, ':')) {
		ev.source.family = AF_INET6;
		ev.source.len = 128;
		assert_int_equal(inet_pton(AF_INET6, addr, ev.source.addr), 1);
	} else {
		ev.source.family = AF_INET;
		ev.source.len = 32;
		assert_int_equal(inet_pton(AF_INET, addr, ev.source.addr), 1);
	}
	return ev;
}

static void add(struct dropagg *a, const char *addr, uint32_t rule_id, uint32_t len, int times)
{
	struct droplog_event ev = ev_of(addr, rule_id, len);
	struct dropagg_event e;
	struct lfq_item it;

	dropagg_pack(&ev, &it);
	dropagg_unpack(&it, &e);
	for (int i = 0; i < times; i++)
		dropagg_add(a, &e);
}

static const char *text(const struct cidr *c)
{
	static char buf[4][CIDR_STRLEN];
	static int i;

	i = (i + 1) % 4;
	return cidr_format(c, buf[i], sizeof(buf[i]));
}

static void test_queue_item_keeps_ipv4_source_and_rule(void **state)
{
	struct droplog_event ev = ev_of("198.18.7.9", 4000123, 70000);
	struct dropagg_event e;
	struct lfq_item it;

	(void)state;
	dropagg_pack(&ev, &it);
	dropagg_unpack(&it, &e);
	assert_string_equal(text(&e.source), "198.18.7.9/32");
	assert_int_equal(e.rule_id, 4000123);
	assert_int_equal(e.frame_len, 0xffff); /* clamped, not wrapped */
	assert_int_equal(e.l4_proto, 17);
}

static void test_queue_item_keeps_ipv6_source_as_its_64(void **state)
{
	struct droplog_event ev = ev_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 7, 98);
	struct dropagg_event e;
	struct lfq_item it;

	(void)state;
	dropagg_pack(&ev, &it);
	dropagg_unpack(&it, &e);
	assert_string_equal(text(&e.source), "2001:db8:1:2::/64");
	assert_int_equal(e.rule_id, 7);
	assert_int_equal(e.frame_len, 98);
}

static void test_top_sources_most_drops_first_per_rule(void **state)
{
	struct dropagg *a = dropagg_new(64);
	struct dropagg_report r;

	(void)state;
	add(a, "198.18.0.1", 1, 100, 5);
	add(a, "198.18.0.2", 1, 100, 9);
	add(a, "198.18.0.2", 2, 100, 1); /* same source, another rule: its own row */
	add(a, "198.18.1.3", 3, 60, 7);
	assert_int_equal(dropagg_report(a, 1.0, 3, &r), 0);
	assert_int_equal(r.events, 22);
	assert_int_equal(r.bytes, 15 * 100 + 7 * 60);
	assert_int_equal(r.n_sources, 3);
	assert_string_equal(text(&r.sources[0].key), "198.18.0.2/32");
	assert_int_equal(r.sources[0].rule_id, 1);
	assert_int_equal(r.sources[0].events, 9);
	assert_string_equal(text(&r.sources[1].key), "198.18.1.3/32");
	assert_int_equal(r.sources[1].events, 7);
	assert_int_equal(r.sources[2].events, 5);
	/* Networks: the /24s, summed over sources and rules. */
	assert_int_equal(r.n_nets, 2);
	assert_string_equal(text(&r.nets[0].key), "198.18.0.0/24");
	assert_int_equal(r.nets[0].events, 15);
	assert_string_equal(text(&r.nets[1].key), "198.18.1.0/24");
	assert_int_equal(r.nets[1].events, 7);
	dropagg_report_free(&r);
	dropagg_free(a);
}

static void test_ipv6_sources_sum_into_their_48(void **state)
{
	struct dropagg *a = dropagg_new(64);
	struct dropagg_report r;

	(void)state;
	add(a, "2001:db8:5:1::1", 4, 90, 2);
	add(a, "2001:db8:5:2::1", 4, 90, 3);
	add(a, "2001:db8:6::1", 4, 90, 1);
	assert_int_equal(dropagg_report(a, 1.0, 10, &r), 0);
	assert_int_equal(r.n_sources, 3);
	assert_string_equal(text(&r.sources[0].key), "2001:db8:5:2::/64");
	assert_int_equal(r.n_nets, 2);
	assert_string_equal(text(&r.nets[0].key), "2001:db8:5::/48");
	assert_int_equal(r.nets[0].events, 5);
	dropagg_report_free(&r);
	dropagg_free(a);
}

static void test_report_starts_an_empty_window(void **state)
{
	struct dropagg *a = dropagg_new(8);
	struct dropagg_report r;

	(void)state;
	assert_true(dropagg_empty(a));
	add(a, "198.18.0.1", 1, 100, 3);
	dropagg_add_lost(a, 4);
	assert_false(dropagg_empty(a));
	assert_int_equal(dropagg_report(a, 2.0, 5, &r), 0);
	assert_int_equal(r.lost, 4);
	dropagg_report_free(&r);
	assert_true(dropagg_empty(a));
	assert_int_equal(dropagg_report(a, 1.0, 5, &r), 0);
	assert_int_equal(r.events, 0);
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.n_sources, 0);
	dropagg_report_free(&r);
	dropagg_free(a);
}

static void test_full_key_table_still_counts_totals(void **state)
{
	struct dropagg *a = dropagg_new(4);
	struct dropagg_report r;
	char addr[32];

	(void)state;
	for (int i = 0; i < 50; i++) {
		snprintf(addr, sizeof(addr), "198.18.%d.%d", i / 10, i % 10);
		add(a, addr, 1, 10, 1);
	}
	assert_int_equal(dropagg_report(a, 1.0, 100, &r), 0);
	assert_int_equal(r.events, 50);
	assert_int_equal(r.bytes, 500);
	assert_true(r.overflowed > 0);
	assert_true(r.n_sources + r.n_nets <= 4);
	dropagg_report_free(&r);
	dropagg_free(a);
}

static bool rule_name(int family, uint32_t id, char *buf, size_t len, void *ctx)
{
	(void)ctx;
	if (family != AF_INET || id != 1)
		return false;
	snprintf(buf, len, "198.18.0.0/24");
	return true;
}

static void test_text_report_names_source_rule_and_rate(void **state)
{
	struct dropagg *a = dropagg_new(64);
	struct dropagg_report r;
	char buf[DROPAGG_TEXT_MAX];
	int lines = 0;

	(void)state;
	add(a, "198.18.0.1", 1, 98, 20);
	add(a, "198.18.0.9", 2, 98, 2);
	assert_int_equal(dropagg_report(a, 2.0, 1, &r), 0);
	dropagg_format_text(&r, rule_name, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "drop-log: 22 drops in 2.0 s (11/s, 2156 bytes), 0 lost\n"));
	assert_non_null(
		strstr(buf, "drop-log:   source 198.18.0.1 rule 198.18.0.0/24: 20 drops (10/s)"));
	assert_null(strstr(buf, "198.18.0.9")); /* top 1 */
	assert_non_null(strstr(buf, "drop-log:   net 198.18.0.0/24: 22 drops (11/s)\n"));
	for (const char *c = buf; *c; c++)
		lines += *c == '\n';
	assert_int_equal(lines, 3);
	dropagg_report_free(&r);

	/* An id the callback does not know is named by its number. */
	add(a, "198.18.0.9", 2, 98, 2);
	assert_int_equal(dropagg_report(a, 1.0, 1, &r), 0);
	dropagg_format_text(&r, rule_name, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "source 198.18.0.9 rule id 2: 2 drops"));
	dropagg_report_free(&r);
	dropagg_free(a);
}

static void test_json_report_is_one_valid_object_a_line(void **state)
{
	struct dropagg *a = dropagg_new(64);
	struct json_object *o, *src, *v;
	struct dropagg_report r;
	char buf[DROPAGG_TEXT_MAX];
	size_t n;

	(void)state;
	add(a, "198.18.0.1", 1, 98, 3);
	add(a, "2001:db8::7", 9, 100, 1);
	dropagg_add_lost(a, 2);
	assert_int_equal(dropagg_report(a, 1.0, 5, &r), 0);
	n = dropagg_format_json(&r, 1796529600, rule_name, NULL, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', n - 1));
	o = json_tokener_parse(buf);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "time", &v));
	assert_string_equal(json_object_get_string(v), "2026-12-06T04:00:00Z");
	assert_true(json_object_object_get_ex(o, "drops", &v));
	assert_int_equal(json_object_get_int64(v), 4);
	assert_true(json_object_object_get_ex(o, "lost", &v));
	assert_int_equal(json_object_get_int64(v), 2);
	assert_true(json_object_object_get_ex(o, "sources", &src));
	assert_int_equal(json_object_array_length(src), 2);
	v = json_object_array_get_idx(src, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(v, "source")),
			    "198.18.0.1");
	assert_string_equal(json_object_get_string(json_object_object_get(v, "rule")),
			    "198.18.0.0/24");
	v = json_object_array_get_idx(src, 1);
	assert_string_equal(json_object_get_string(json_object_object_get(v, "source")),
			    "2001:db8::/64");
	json_object_put(o);
	dropagg_report_free(&r);
	dropagg_free(a);
}

static void test_full_pipe_counts_lost_and_does_not_block(void **state)
{
	struct droplog_event ev = ev_of("198.18.0.1", 1, 98);
	struct dropagg *a = dropagg_new(16);
	struct dropagg_report r;
	struct droppipe p;
	uint64_t pushed, lost;

	(void)state;
	assert_int_equal(droppipe_init(&p, 8), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(droppipe_push(&p, &ev), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(droppipe_push(&p, &ev), -ENOSPC);
	droppipe_counts(&p, &pushed, &lost);
	assert_int_equal(pushed, 8);
	assert_int_equal(lost, 5);
	assert_int_equal(droppipe_drain(&p, a, 100), 8);
	assert_int_equal(dropagg_report(a, 1.0, 1, &r), 0);
	assert_int_equal(r.events, 8);
	assert_int_equal(r.lost, 5);
	dropagg_report_free(&r);
	/* Losses are handed over once. */
	assert_int_equal(droppipe_drain(&p, a, 100), 0);
	assert_true(dropagg_empty(a));
	droppipe_destroy(&p);
	dropagg_free(a);
}

#if defined(__SANITIZE_THREAD__)
#define PIPE_EVENTS 20000
#else
#define PIPE_EVENTS 200000
#endif
#define PIPE_READERS 2

struct pipe_run {
	struct droppipe p;
	atomic_int readers_left;
};

static void *reader(void *arg)
{
	struct pipe_run *run = arg;
	char addr[32];

	for (int i = 0; i < PIPE_EVENTS; i++) {
		struct droplog_event ev;

		snprintf(addr, sizeof(addr), "198.18.%d.%d", (i >> 8) & 3, i & 0xff);
		ev = ev_of(addr, (uint32_t)(i & 7) + 1, 64);
		droppipe_push(&run->p, &ev); /* never waits: a full pipe counts the event lost */
	}
	atomic_fetch_sub(&run->readers_left, 1);
	return NULL;
}

static void test_readers_and_consumer_lose_nothing_uncounted(void **state)
{
	struct dropagg *a = dropagg_new(4096);
	pthread_t t[PIPE_READERS];
	struct pipe_run run;
	struct dropagg_report r;
	uint64_t events = 0, lost = 0, bytes = 0, pushed, plost;

	(void)state;
	assert_int_equal(droppipe_init(&run.p, 256), 0);
	atomic_init(&run.readers_left, PIPE_READERS);
	for (int i = 0; i < PIPE_READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &run), 0);
	/* The consumer: drains in small bites and reports now and then, as the service's does. */
	for (int round = 0;; round++) {
		bool done = atomic_load(&run.readers_left) == 0;

		while (droppipe_drain(&run.p, a, 64))
			;
		if (round % 16 == 0 || done) {
			assert_int_equal(dropagg_report(a, 1.0, 3, &r), 0);
			events += r.events;
			lost += r.lost;
			bytes += r.bytes;
			dropagg_report_free(&r);
		}
		if (done && droppipe_drain(&run.p, a, 1) == 0 && dropagg_empty(a))
			break;
	}
	for (int i = 0; i < PIPE_READERS; i++)
		pthread_join(t[i], NULL);
	droppipe_counts(&run.p, &pushed, &plost);
	assert_int_equal(events + lost, (uint64_t)PIPE_READERS * PIPE_EVENTS);
	assert_int_equal(events, pushed);
	assert_int_equal(lost, plost);
	assert_int_equal(bytes, events * 64);
	droppipe_destroy(&run.p);
	dropagg_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_item_keeps_ipv4_source_and_rule),
		cmocka_unit_test(test_queue_item_keeps_ipv6_source_as_its_64),
		cmocka_unit_test(test_top_sources_most_drops_first_per_rule),
		cmocka_unit_test(test_ipv6_sources_sum_into_their_48),
		cmocka_unit_test(test_report_starts_an_empty_window),
		cmocka_unit_test(test_full_key_table_still_counts_totals),
		cmocka_unit_test(test_text_report_names_source_rule_and_rate),
		cmocka_unit_test(test_json_report_is_one_valid_object_a_line),
		cmocka_unit_test(test_full_pipe_counts_lost_and_does_not_block),
		cmocka_unit_test(test_readers_and_consumer_lose_nothing_uncounted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
