// SPDX-License-Identifier: GPL-2.0
/* The Prometheus exposition text of ipblock's metrics; see metrics.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "metrics.h"

const char *const metrics_verdict[IPBLOCK_STAT_MAX] = {
	[IPBLOCK_STAT_DROP] = "dropped",
	[IPBLOCK_STAT_PASS_ALLOW] = "passed_allow",
	[IPBLOCK_STAT_PASS_NOMATCH] = "passed_no_rule",
	[IPBLOCK_STAT_PASS_OTHER] = "passed_other",
};

/* The order verdicts are written in: drops first, as -s prints them. */
static const enum ipblock_stat verdict_order[] = {
	IPBLOCK_STAT_DROP,
	IPBLOCK_STAT_PASS_ALLOW,
	IPBLOCK_STAT_PASS_NOMATCH,
	IPBLOCK_STAT_PASS_OTHER,
};

struct text {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = (t->cap + (size_t)n) * 2;
		char *b = realloc(t->buf, cap);

		if (!b) {
			t->oom = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

/* A label value, escaped as the text format wants: \\, \", \n. */
static void put_label(struct text *t, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			put(t, "\\\\");
		else if (*v == '"')
			put(t, "\\\"");
		else if (*v == '\n')
			put(t, "\\n");
		else
			put(t, "%c", *v);
	}
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_u64(struct text *t, const char *name, uint64_t v)
{
	put(t, "%s %llu\n", name, (unsigned long long)v);
}

static void put_time(struct text *t, const char *name, double v)
{
	put(t, "%s %.3f\n", name, v);
}

int metrics_format(const struct metrics_snapshot *s, char **out, size_t *len)
{
	static const char *const kinds[] = { "tables", "tries", "rule_counters", "other" };
	const uint64_t mem[] = { s->memory_tables, s->memory_tries, s->memory_hits,
				 s->memory_other };
	struct text t = { .cap = 4096 };
	char cidr[CIDR_STRLEN];

	*out = NULL;
	*len = 0;
	t.buf = malloc(t.cap);
	if (!t.buf)
		return -ENOMEM;
	t.buf[0] = '\0';

	head(&t, "ipblock_packets_total", "counter",
	     "Packets judged by the XDP program, by verdict (all interfaces).");
	for (size_t i = 0; i < sizeof(verdict_order) / sizeof(verdict_order[0]); i++)
		put(&t, "ipblock_packets_total{verdict=\"%s\"} %llu\n",
		    metrics_verdict[verdict_order[i]],
		    (unsigned long long)s->verdict[verdict_order[i]].packets);
	head(&t, "ipblock_bytes_total", "counter",
	     "Bytes of the packets judged by the XDP program, by verdict (all interfaces).");
	for (size_t i = 0; i < sizeof(verdict_order) / sizeof(verdict_order[0]); i++)
		put(&t, "ipblock_bytes_total{verdict=\"%s\"} %llu\n",
		    metrics_verdict[verdict_order[i]],
		    (unsigned long long)s->verdict[verdict_order[i]].bytes);

	head(&t, "ipblock_interface_packets_total", "counter",
	     "Packets judged by the XDP program, by interface and verdict (interfaces with an "
	     "ifindex of 256 or more count together as interface=\"other\").");
	for (size_t k = 0; k < s->n_ifaces; k++)
		for (size_t i = 0; i < sizeof(verdict_order) / sizeof(verdict_order[0]); i++) {
			put(&t, "ipblock_interface_packets_total{interface=\"");
			put_label(&t, s->ifaces[k].name);
			put(&t, "\",verdict=\"%s\"} %llu\n", metrics_verdict[verdict_order[i]],
			    (unsigned long long)s->ifaces[k].verdict[verdict_order[i]].packets);
		}
	head(&t, "ipblock_interface_bytes_total", "counter",
	     "Bytes of the packets judged by the XDP program, by interface and verdict.");
	for (size_t k = 0; k < s->n_ifaces; k++)
		for (size_t i = 0; i < sizeof(verdict_order) / sizeof(verdict_order[0]); i++) {
			put(&t, "ipblock_interface_bytes_total{interface=\"");
			put_label(&t, s->ifaces[k].name);
			put(&t, "\",verdict=\"%s\"} %llu\n", metrics_verdict[verdict_order[i]],
			    (unsigned long long)s->ifaces[k].verdict[verdict_order[i]].bytes);
		}

	head(&t, "ipblock_rules", "gauge", "Rules the program judges by, by family.");
	put(&t, "ipblock_rules{family=\"ipv4\"} %llu\n", (unsigned long long)s->rules_ipv4);
	put(&t, "ipblock_rules{family=\"ipv6\"} %llu\n", (unsigned long long)s->rules_ipv6);
	head(&t, "ipblock_rules_capacity", "gauge", "The ceiling of rules per family.");
	put_u64(&t, "ipblock_rules_capacity", s->capacity);
	head(&t, "ipblock_source_rules", "gauge",
	     "Rules each source holds (its claims), by source and family.");
	for (size_t i = 0; i < s->n_sources; i++) {
		put(&t, "ipblock_source_rules{source=\"");
		put_label(&t, s->sources[i].name);
		put(&t, "\",family=\"ipv4\"} %llu\n", (unsigned long long)s->sources[i].ipv4);
		put(&t, "ipblock_source_rules{source=\"");
		put_label(&t, s->sources[i].name);
		put(&t, "\",family=\"ipv6\"} %llu\n", (unsigned long long)s->sources[i].ipv6);
	}

	head(&t, "ipblock_rule_hits_total", "counter",
	     "Packets judged by each of the rules with the most hits (the top N only).");
	for (size_t i = 0; i < s->n_top; i++) {
		const struct metrics_rule *r = &s->top[i];

		put(&t, "ipblock_rule_hits_total{rule=\"%s\",action=\"%s\",source=\"",
		    cidr_format(&r->prefix, cidr, sizeof(cidr)),
		    r->action == IPBLOCK_ACTION_ALLOW ? "allow" : "deny");
		put_label(&t, r->sources);
		put(&t, "\"} %llu\n", (unsigned long long)r->packets);
	}
	head(&t, "ipblock_rule_hit_bytes_total", "counter",
	     "Bytes of the packets judged by each of the rules with the most hits.");
	for (size_t i = 0; i < s->n_top; i++) {
		const struct metrics_rule *r = &s->top[i];

		put(&t, "ipblock_rule_hit_bytes_total{rule=\"%s\",action=\"%s\",source=\"",
		    cidr_format(&r->prefix, cidr, sizeof(cidr)),
		    r->action == IPBLOCK_ACTION_ALLOW ? "allow" : "deny");
		put_label(&t, r->sources);
		put(&t, "\"} %llu\n", (unsigned long long)r->bytes);
	}

	head(&t, "ipblock_droplog_enabled", "gauge",
	     "Whether the program reports drops into the drop log (1) or not (0).");
	put_u64(&t, "ipblock_droplog_enabled", s->droplog_on);
	head(&t, "ipblock_droplog_events_total", "counter",
	     "Drop-log events the program put into its ring buffer.");
	put_u64(&t, "ipblock_droplog_events_total", s->droplog_events);
	head(&t, "ipblock_droplog_lost_total", "counter",
	     "Drop-log events lost: the ring buffer was full (ring) or the service's queue was "
	     "(queue).");
	put_u64(&t, "ipblock_droplog_lost_total{stage=\"ring\"}", s->droplog_lost_ring);
	put_u64(&t, "ipblock_droplog_lost_total{stage=\"queue\"}", s->droplog_lost_queue);

	head(&t, "ipblock_map_memory_bytes", "gauge",
	     "Kernel memory of ipblock's maps (memlock), by kind.");
	for (size_t i = 0; i < 4; i++)
		put(&t, "ipblock_map_memory_bytes{kind=\"%s\"} %llu\n", kinds[i],
		    (unsigned long long)mem[i]);

	head(&t, "ipblock_last_change_timestamp_seconds", "gauge",
	     "When the service last saw the rules change (any writer), Unix time.");
	put_time(&t, "ipblock_last_change_timestamp_seconds", s->last_change);
	head(&t, "ipblock_start_time_seconds", "gauge", "When the service started, Unix time.");
	put_time(&t, "ipblock_start_time_seconds", s->start_time);
	head(&t, "ipblock_service_up", "gauge", "Always 1 while the service runs.");
	put_u64(&t, "ipblock_service_up", 1);
	head(&t, "ipblock_build_info", "gauge", "The build, as a label; always 1.");
	put(&t, "ipblock_build_info{version=\"");
	put_label(&t, s->version ? s->version : "unknown");
	put(&t, "\"} 1\n");
	if (s->crowdsec_on) {
		head(&t, "ipblock_crowdsec_last_success_timestamp_seconds", "gauge",
		     "When the CrowdSec bouncer last had an answer from the LAPI applied, Unix "
		     "time; 0: never.");
		put_time(&t, "ipblock_crowdsec_last_success_timestamp_seconds",
			 s->crowdsec_last_success);
	}
	if (t.oom) {
		free(t.buf);
		return -ENOMEM;
	}
	*out = t.buf;
	*len = t.len;
	return 0;
}

static int by_hits(const void *x, const void *y)
{
	const struct metrics_hit *a = x, *b = y;

	if (a->packets != b->packets)
		return a->packets > b->packets ? -1 : 1;
	if (a->bytes != b->bytes)
		return a->bytes > b->bytes ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

size_t metrics_top(struct metrics_hit *h, size_t n, size_t top_n)
{
	size_t hit = 0;

	/* The entries that judged packets to the front (most rules never do), then sort those. */
	for (size_t i = 0; i < n; i++) {
		if (h[i].packets) {
			struct metrics_hit tmp = h[hit];

			h[hit++] = h[i];
			h[i] = tmp;
		}
	}
	qsort(h, hit, sizeof(*h), by_hits);
	return hit < top_n ? hit : top_n;
}
