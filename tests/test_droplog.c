// SPDX-License-Identifier: GPL-2.0
/*
 * The sampled drop log, by BPF_PROG_RUN: off by default, an event names the
 * rule that dropped the packet, its source, length and ports, each CPU's
 * token bucket bounds the events and samples beyond it, and a full ring
 * counts lost events rather than blocking.  The test runs on one CPU, so
 * that one bucket sees every frame.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include "droplog.h"
#include "harness.h"
#include "trie.h"

static struct harness h;

#define MAX_EVENTS 8192

static struct droplog_event events[MAX_EVENTS];
static size_t nevents;

static int collect(const struct droplog_event *ev, void *ctx)
{
	(void)ctx;
	if (nevents < MAX_EVENTS)
		events[nevents] = *ev;
	nevents++;
	return 0;
}

/* Every event waiting in the ring. */
static size_t drain(void)
{
	struct droplog *d;

	nevents = 0;
	assert_int_equal(droplog_open(&h.pins, collect, NULL, &d), 0);
	while (droplog_poll(d, 0) > 0)
		;
	droplog_close(d);
	return nevents;
}

static void add_rule(const char *text, uint8_t action)
{
	struct rule r = { .action = action };

	assert_int_equal(cidr_parse(text, &r.prefix, NULL, NULL, 0), 0);
	assert_int_equal(maps_rule_set(&h.maps, &r), 0);
}

static uint32_t id_of(const char *text)
{
	uint32_t active = 0;
	struct rule got;
	struct cidr p;

	assert_int_equal(cidr_parse(text, &p, NULL, NULL, 0), 0);
	assert_int_equal(pins_active_set(&h.pins, &active), 0);
	assert_int_equal(trie_get(&h.pins, (int)active, &p, &got), 0);
	return got.id;
}

/* Send count UDP frames from src; their length goes to *len. */
static void send_from(const char *src, int count, int expect, size_t *len)
{
	struct frame_spec s = { .payload = 18 };
	uint8_t buf[256];
	struct cidr a;
	int verdict;

	assert_int_equal(cidr_parse(src, &a, NULL, NULL, 0), 0);
	s.family = a.family;
	memcpy(s.src, a.addr, 16);
	*len = frame_build(&s, buf, sizeof(buf));
	assert_true(*len > 0);
	for (int i = 0; i < count; i++) {
		assert_int_equal(harness_run(&h, buf, *len, &verdict), 0);
		assert_int_equal(verdict, expect);
	}
}

static int setup(void **state)
{
	cpu_set_t one;

	(void)state;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		return -1;
	if (harness_open(&h))
		return -1;
	add_rule("198.18.0.0/16", IPBLOCK_ACTION_DENY);
	add_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY);
	add_rule("198.18.1.7", IPBLOCK_ACTION_ALLOW);
	add_rule("2001:db8:1::/48", IPBLOCK_ACTION_DENY);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_close(&h);
	return 0;
}

static void test_the_drop_log_is_off_by_default(void **state)
{
	uint32_t rate = 9, sample = 9;
	uint64_t emitted = 9, lost = 9;
	size_t len;

	(void)state;
	assert_int_equal(droplog_get(&h.pins, &rate, &sample), 0);
	assert_int_equal(rate, 0);
	assert_int_equal(sample, 0);
	send_from("198.18.1.1", 10, XDP_DROP, &len);
	assert_int_equal(drain(), 0);
	assert_int_equal(droplog_counts(&h.pins, &emitted, &lost), 0);
	assert_int_equal(emitted, 0);
	assert_int_equal(lost, 0);
}

static void test_an_event_names_the_rule_the_source_the_length_and_the_ports(void **state)
{
	struct timespec before, after;
	size_t l4, l6, len;
	char text[CIDR_STRLEN];

	(void)state;
	assert_int_equal(droplog_set(&h.pins, 100, 0), 0);
	clock_gettime(CLOCK_REALTIME, &before);
	send_from("198.18.1.1", 1, XDP_DROP, &l4);
	send_from("198.18.1.7", 1, XDP_PASS, &len); /* allowed: not a drop, no event */
	send_from("198.19.0.1", 1, XDP_PASS, &len); /* no rule: no event */
	send_from("2001:db8:1::5", 1, XDP_DROP, &l6);
	clock_gettime(CLOCK_REALTIME, &after);
	assert_int_equal(drain(), 2);

	assert_string_equal(cidr_format(&events[0].source, text, sizeof(text)), "198.18.1.1/32");
	/* The longest match's id, not the covering /16's. */
	assert_int_equal(events[0].rule_id, id_of("198.18.1.0/24"));
	assert_int_not_equal(events[0].rule_id, id_of("198.18.0.0/16"));
	assert_int_equal(events[0].frame_len, l4);
	assert_int_equal(events[0].l4_proto, IPPROTO_UDP);
	assert_true(events[0].has_ports);
	assert_int_equal(events[0].sport, 40000);
	assert_int_equal(events[0].dport, 9);
	assert_true(events[0].when.tv_sec >= before.tv_sec - 1);
	assert_true(events[0].when.tv_sec <= after.tv_sec + 1);

	assert_string_equal(cidr_format(&events[1].source, text, sizeof(text)),
			    "2001:db8:1::5/128");
	assert_int_equal(events[1].rule_id, id_of("2001:db8:1::/48"));
	assert_int_equal(events[1].frame_len, l6);
	assert_int_equal(events[1].l4_proto, IPPROTO_UDP);
	assert_true(events[1].has_ports);
	assert_int_equal(events[1].dport, 9);
}

static void test_the_bucket_bounds_the_events_and_samples_beyond_it(void **state)
{
	uint64_t emitted = 0, lost = 0;
	size_t len, n;

	(void)state;
	/* 5 a second: 50 drops in a moment report 5 (6 if 200 ms passed meanwhile). */
	assert_int_equal(droplog_set(&h.pins, 5, 0), 0);
	send_from("198.18.1.1", 50, XDP_DROP, &len);
	n = drain();
	assert_true(n >= 5 && n <= 6);
	/* The bucket is empty now: with 1 in 10 beyond it, 100 more drops report 10. */
	assert_int_equal(droplog_set(&h.pins, 5, 10), 0);
	send_from("198.18.1.1", 100, XDP_DROP, &len);
	n = drain();
	assert_true(n >= 10 && n <= 11);
	assert_int_equal(droplog_counts(&h.pins, &emitted, &lost), 0);
	assert_int_equal(lost, 0);
	assert_true(emitted >= 15 && emitted <= 17);
	/* Off again: nothing. */
	assert_int_equal(droplog_set(&h.pins, 0, 0), 0);
	send_from("198.18.1.1", 20, XDP_DROP, &len);
	assert_int_equal(drain(), 0);
}

static void test_a_full_ring_counts_lost_events_and_never_blocks(void **state)
{
	uint64_t emitted = 0, lost = 0;
	size_t len, n;

	(void)state;
	assert_int_equal(droplog_set(&h.pins, 1000000, 1), 0);
	/* More than the ring holds, nobody reading: every drop is still judged. */
	send_from("198.18.1.1", 6000, XDP_DROP, &len);
	assert_int_equal(droplog_counts(&h.pins, &emitted, &lost), 0);
	assert_int_equal(emitted + lost, 6000);
	assert_true(lost > 0);
	n = drain();
	assert_int_equal(n, emitted);
	assert_true(n * (sizeof(struct ipblock_drop_event) + 8) <= IPBLOCK_DROPLOG_BYTES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_the_drop_log_is_off_by_default, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_an_event_names_the_rule_the_source_the_length_and_the_ports, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_the_bucket_bounds_the_events_and_samples_beyond_it, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_full_ring_counts_lost_events_and_never_blocks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
