// SPDX-License-Identifier: GPL-2.0
/*
 * The Prometheus exposition text (common/metrics): every sample under its
 * HELP and TYPE, the values of the snapshot, label values escaped, the top
 * N rules chosen by hits; promtool checks the real scrape in
 * selftests/test_observe.sh.
 */
#include <arpa/inet.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "metrics.h"

static struct cidr pfx(const char *s)
{
	struct cidr c;
	unsigned int notes;
	char err[128];

	assert_int_equal(cidr_parse(s, &c, &notes, err, sizeof(err)), 0);
	return c;
}

static struct metrics_iface ifaces[2] = {
	{ .name = "eth0", .verdict = { [IPBLOCK_STAT_DROP] = { 7, 700 } } },
	{ .name = "other", .verdict = { [IPBLOCK_STAT_DROP] = { 3, 300 } } },
};

static struct metrics_snapshot sample_snapshot(struct metrics_source *src, struct metrics_rule *top)
{
	struct metrics_snapshot s = {
		.ifaces = ifaces,
		.n_ifaces = 2,
		.rules_ipv4 = 3,
		.rules_ipv6 = 1,
		.capacity = 4000000,
		.sources = src,
		.n_sources = 2,
		.top = top,
		.n_top = 2,
		.memory_tables = 1000,
		.memory_tries = 2000,
		.memory_hits = 3000,
		.memory_other = 4,
		.droplog_on = true,
		.droplog_events = 17,
		.droplog_lost_ring = 2,
		.droplog_lost_queue = 1,
		.last_change = 1796529600.25,
		.start_time = 1796529000,
		.version = "v1-\"x\"\\y",
	};

	s.verdict[IPBLOCK_STAT_DROP] = (struct ipblock_counter){ 10, 1000 };
	s.verdict[IPBLOCK_STAT_PASS_ALLOW] = (struct ipblock_counter){ 20, 2000 };
	s.verdict[IPBLOCK_STAT_PASS_NOMATCH] = (struct ipblock_counter){ 30, 3000 };
	s.verdict[IPBLOCK_STAT_PASS_OTHER] = (struct ipblock_counter){ 40, 4000 };
	snprintf(src[0].name, sizeof(src[0].name), "static");
	src[0].ipv4 = 2;
	src[0].ipv6 = 1;
	snprintf(src[1].name, sizeof(src[1].name), "fail2ban-sshd");
	src[1].ipv4 = 1;
	top[0] = (struct metrics_rule){ .prefix = pfx("198.18.0.0/25"),
					.action = IPBLOCK_ACTION_DENY,
					.packets = 9,
					.bytes = 900 };
	snprintf(top[0].sources, sizeof(top[0].sources), "static,fail2ban-sshd");
	top[1] = (struct metrics_rule){ .prefix = pfx("2001:db8::/32"),
					.action = IPBLOCK_ACTION_ALLOW,
					.packets = 1,
					.bytes = 100 };
	snprintf(top[1].sources, sizeof(top[1].sources), "static");
	return s;
}

static char *format(const struct metrics_snapshot *s)
{
	char *text;
	size_t len;

	assert_int_equal(metrics_format(s, &text, &len), 0);
	assert_int_equal(len, strlen(text));
	return text;
}

static void assert_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	fail_msg("no line '%s' in:\n%s", line, text);
}

static void test_samples_carry_the_snapshot_values(void **state)
{
	struct metrics_source src[2] = {};
	struct metrics_rule top[2];
	struct metrics_snapshot s = sample_snapshot(src, top);
	char *t = format(&s);

	(void)state;
	assert_line(t, "ipblock_packets_total{verdict=\"dropped\"} 10");
	assert_line(t, "ipblock_packets_total{verdict=\"passed_allow\"} 20");
	assert_line(t, "ipblock_packets_total{verdict=\"passed_no_rule\"} 30");
	assert_line(t, "ipblock_packets_total{verdict=\"passed_other\"} 40");
	assert_line(t, "ipblock_bytes_total{verdict=\"dropped\"} 1000");
	assert_line(t, "ipblock_interface_packets_total{interface=\"eth0\",verdict=\"dropped\"} 7");
	assert_line(t, "ipblock_interface_packets_total{interface=\"other\",verdict=\"dropped\"} 3");
	assert_line(t, "ipblock_interface_bytes_total{interface=\"eth0\",verdict=\"dropped\"} 700");
	assert_line(t, "ipblock_interface_packets_total{interface=\"eth0\",verdict=\"passed_other\"} 0");
	assert_line(t, "ipblock_rules{family=\"ipv4\"} 3");
	assert_line(t, "ipblock_rules{family=\"ipv6\"} 1");
	assert_line(t, "ipblock_source_rules{source=\"static\",family=\"ipv6\"} 1");
	assert_line(t, "ipblock_source_rules{source=\"fail2ban-sshd\",family=\"ipv4\"} 1");
	assert_line(t, "ipblock_rule_hits_total{rule=\"198.18.0.0/25\",action=\"deny\","
		       "source=\"static,fail2ban-sshd\"} 9");
	assert_line(t, "ipblock_rule_hit_bytes_total{rule=\"2001:db8::/32\",action=\"allow\","
		       "source=\"static\"} 100");
	assert_line(t, "ipblock_droplog_events_total 17");
	assert_line(t, "ipblock_droplog_lost_total{stage=\"ring\"} 2");
	assert_line(t, "ipblock_droplog_lost_total{stage=\"queue\"} 1");
	assert_line(t, "ipblock_map_memory_bytes{kind=\"rule_counters\"} 3000");
	assert_line(t, "ipblock_last_change_timestamp_seconds 1796529600.250");
	assert_line(t, "ipblock_service_up 1");
	/* No bouncer configured: no bouncer metric. */
	assert_null(strstr(t, "crowdsec"));
	free(t);
}

static void test_label_values_are_escaped(void **state)
{
	struct metrics_source src[2] = {};
	struct metrics_rule top[2];
	struct metrics_snapshot s = sample_snapshot(src, top);
	char *t;

	(void)state;
	s.crowdsec_on = true;
	s.crowdsec_last_success = 5;
	t = format(&s);
	assert_line(t, "ipblock_build_info{version=\"v1-\\\"x\\\"\\\\y\"} 1");
	assert_line(t, "ipblock_crowdsec_last_success_timestamp_seconds 5.000");
	free(t);
}

/* Every line a comment (HELP or TYPE of the family its samples follow) or a sample. */
static void test_every_sample_follows_its_help_and_type(void **state)
{
	struct metrics_source src[2] = {};
	struct metrics_rule top[2];
	struct metrics_snapshot s = sample_snapshot(src, top);
	char *t = format(&s), *save = NULL, family[128] = "";
	regex_t sample, help, type;
	int samples = 0;

	(void)state;
	assert_int_equal(regcomp(&sample,
				 "^([a-z_]+)(\\{([a-z_]+=\"([^\"\\\\]|\\\\.)*\",?)+\\})? [0-9.]+$",
				 REG_EXTENDED),
			 0);
	assert_int_equal(regcomp(&help, "^# HELP ([a-z_]+) [A-Z].*\\.$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type, "^# TYPE ([a-z_]+) (counter|gauge)$", REG_EXTENDED), 0);
	for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[2];

		if (!regexec(&help, l, 2, m, 0)) {
			snprintf(family, sizeof(family), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
				 l + m[1].rm_so);
			continue;
		}
		if (!regexec(&type, l, 2, m, 0)) {
			assert_int_equal(strncmp(l + m[1].rm_so, family, strlen(family)), 0);
			if (strstr(l, " counter"))
				assert_non_null(strstr(family, "_total"));
			continue;
		}
		if (regexec(&sample, l, 2, m, 0))
			fail_msg("not a sample: '%s'", l);
		assert_int_equal((int)(m[1].rm_eo - m[1].rm_so), (int)strlen(family));
		assert_int_equal(strncmp(l, family, strlen(family)), 0);
		samples++;
	}
	assert_true(samples > 20);
	regfree(&sample);
	regfree(&help);
	regfree(&type);
	free(t);
}

static void test_top_rules_most_packets_first_never_unhit(void **state)
{
	const uint64_t packets[] = { 0, 5, 7, 5, 0, 1 };
	const uint64_t bytes[] = { 0, 50, 70, 60, 0, 1 };
	struct metrics_hit h[6];

	(void)state;
	for (size_t i = 0; i < 6; i++)
		h[i] = (struct metrics_hit){ .index = i, .packets = packets[i], .bytes = bytes[i] };
	assert_int_equal(metrics_top(h, 6, 3), 3);
	assert_int_equal(h[0].index, 2);
	assert_int_equal(h[1].index, 3); /* as many packets as 1, more bytes */
	assert_int_equal(h[2].index, 1);
	/* Only four were hit. */
	assert_int_equal(metrics_top(h, 6, 10), 4);
	assert_int_equal(h[3].index, 5);
	assert_int_equal(metrics_top(h, 0, 10), 0);
	/* Equal hits: the lower index (prefix order) first. */
	for (size_t i = 0; i < 6; i++)
		h[i] = (struct metrics_hit){ .index = 5 - i, .packets = 1, .bytes = 1 };
	assert_int_equal(metrics_top(h, 6, 2), 2);
	assert_int_equal(h[0].index, 0);
	assert_int_equal(h[1].index, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples_carry_the_snapshot_values),
		cmocka_unit_test(test_label_values_are_escaped),
		cmocka_unit_test(test_every_sample_follows_its_help_and_type),
		cmocka_unit_test(test_top_rules_most_packets_first_never_unhit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
