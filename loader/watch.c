// SPDX-License-Identifier: GPL-2.0
/* The live view; see watch.h. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "droplog.h"
#include "droptop.h"
#include "hits.h"
#include "metrics.h"
#include "pins.h"
#include "ruleset.h"
#include "trie.h"
#include "watch.h"

/* One reading of everything the view shows. */
struct sample {
	struct timespec at; /* CLOCK_MONOTONIC */
	struct ipblock_counter verdict[IPBLOCK_STAT_MAX];
	struct hits_table hits[2]; /* IPv4, IPv6 */
	uint64_t dl_events, dl_lost;
	uint32_t dl_rate, dl_sample;
	/* The drop log's top sources, as the service last published them. */
	enum { TOP_OFF, TOP_NO_SERVICE, TOP_FRESH } top_state;
	struct droptop top;
};

static const struct {
	enum ipblock_stat slot;
	const char *name;
} rows[] = {
	{ IPBLOCK_STAT_DROP, "dropped" },
	{ IPBLOCK_STAT_PASS_ALLOW, "passed (allow rule)" },
	{ IPBLOCK_STAT_PASS_NOMATCH, "passed (no rule)" },
	{ IPBLOCK_STAT_PASS_OTHER, "passed (not IP)" },
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void sample_free(struct sample *s)
{
	hits_table_free(&s->hits[0]);
	hits_table_free(&s->hits[1]);
}

/* The service's latest report, when the drop log is on and the report is fresh. */
static void top_read(const char *path, struct sample *s)
{
	if (!s->dl_rate && !s->dl_sample)
		s->top_state = TOP_OFF;
	else if (droptop_read(path, &s->top) || s->top.age > WATCH_REPORT_FRESH_S)
		s->top_state = TOP_NO_SERVICE;
	else
		s->top_state = TOP_FRESH;
}

static int sample_read(const struct pins *p, const char *top_path, struct sample *s)
{
	int ret;

	memset(s, 0, sizeof(*s));
	clock_gettime(CLOCK_MONOTONIC, &s->at);
	ret = pins_stats_read(p, s->verdict);
	if (!ret)
		ret = hits_read(p, AF_INET, &s->hits[0]);
	if (!ret)
		ret = hits_read(p, AF_INET6, &s->hits[1]);
	if (ret) {
		sample_free(s);
		return ret;
	}
	droplog_get(p, &s->dl_rate, &s->dl_sample);
	droplog_counts(p, &s->dl_events, &s->dl_lost);
	top_read(top_path, s);
	return 0;
}

static double seconds(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* 1234, 12.3k, 4.5M: a rate short enough for a column. */
static const char *human(double v, char *buf, size_t len)
{
	if (v >= 1e9)
		snprintf(buf, len, "%.1fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, len, "%.1fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, len, "%.1fk", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
	return buf;
}

static uint64_t delta(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : now; /* counters reset (a rule's id reused) */
}

/* The rules with the most hits a second between a and b, into hit[0..n) (index into rules). */
static size_t top_rules(const struct ruleset *rules, const struct sample *a, const struct sample *b,
			struct metrics_hit *hit)
{
	for (size_t i = 0; i < rules->n; i++) {
		const struct rule *r = &rules->r[i];
		int f = r->prefix.family == AF_INET6;
		struct hits_total x = hits_of(&a->hits[f], r->id), y = hits_of(&b->hits[f], r->id);

		hit[i] = (struct metrics_hit){ .index = i,
					       .packets = delta(y.packets, x.packets),
					       .bytes = delta(y.bytes, x.bytes) };
	}
	return metrics_top(hit, rules->n, WATCH_TOP);
}

static void frame_tty(const struct ruleset *rules, const struct sample *a, const struct sample *b,
		      const struct metrics_hit *hit, size_t n)
{
	double dt = seconds(&a->at, &b->at);
	char t[32], x[16], y[16], z[16], pfx[CIDR_STRLEN];
	time_t now = time(NULL);
	size_t v4 = 0, v6 = 0;
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
	ruleset_count(rules->r, rules->n, &v4, &v6);
	/* Home, then each line cleared to its end, then the rest of the screen. */
	printf("\033[H");
	printf("ipblock live view   %s   every 1 s, Ctrl-C quits\033[K\n\033[K\n", t);
	printf("%-22s %12s %12s %16s\033[K\n", "verdict", "packets/s", "bytes/s", "packets");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct ipblock_counter *c0 = &a->verdict[rows[i].slot],
					     *c1 = &b->verdict[rows[i].slot];

		printf("%-22s %12s %12s %16llu\033[K\n", rows[i].name,
		       human((double)delta(c1->packets, c0->packets) / dt, x, sizeof(x)),
		       human((double)delta(c1->bytes, c0->bytes) / dt, y, sizeof(y)),
		       (unsigned long long)c1->packets);
	}
	printf("\033[K\nrules: %zu IPv4, %zu IPv6; drop log: ", v4, v6);
	if (b->dl_rate || b->dl_sample)
		printf("on, %s events/s, %llu lost\033[K\n",
		       human((double)delta(b->dl_events, a->dl_events) / dt, z, sizeof(z)),
		       (unsigned long long)b->dl_lost);
	else
		printf("off\033[K\n");
	printf("\033[K\ntop rules by hits a second\033[K\n");
	printf("%12s %12s  %-44s %s\033[K\n", "packets/s", "bytes/s", "rule", "action");
	for (size_t i = 0; i < n; i++) {
		const struct rule *r = &rules->r[hit[i].index];

		printf("%12s %12s  %-44s %s\033[K\n",
		       human((double)hit[i].packets / dt, x, sizeof(x)),
		       human((double)hit[i].bytes / dt, y, sizeof(y)),
		       cidr_format(&r->prefix, pfx, sizeof(pfx)),
		       r->action == IPBLOCK_ACTION_ALLOW ? "allow" : "deny");
	}
	if (!n)
		printf("%12s\033[K\n", "(no rule judged a packet this second)");
	printf("\033[K\ntop dropped sources (the drop log's last report)\033[K\n");
	if (b->top_state == TOP_OFF) {
		printf("%12s\033[K\n", "(drop log off)");
	} else if (b->top_state == TOP_NO_SERVICE) {
		printf("%12s\033[K\n", "(no service: no fresh drop-log report)");
	} else {
		const struct droptop *t = &b->top;
		double w = t->seconds > 0 ? t->seconds : 1;

		printf("%12s %12s  %-44s %s\033[K\n", "events/s", "", "source", "rule");
		for (size_t i = 0; i < t->n; i++)
			printf("%12s %12s  %-44s %s\033[K\n",
			       human((double)t->src[i].drops / w, x, sizeof(x)), "",
			       t->src[i].source, t->src[i].rule);
		if (!t->n)
			printf("%12s\033[K\n", "(nothing dropped was logged in the last report)");
	}
	printf("\033[J");
	fflush(stdout);
}

static void frame_line(const struct ruleset *rules, const struct sample *a, const struct sample *b,
		       const struct metrics_hit *hit, size_t n)
{
	static const char *const word[] = { [IPBLOCK_STAT_DROP] = "dropped",
					    [IPBLOCK_STAT_PASS_ALLOW] = "allowed",
					    [IPBLOCK_STAT_PASS_NOMATCH] = "no_rule",
					    [IPBLOCK_STAT_PASS_OTHER] = "not_ip" };
	double dt = seconds(&a->at, &b->at);
	char t[32], pfx[CIDR_STRLEN];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s", t);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum ipblock_stat k = rows[i].slot;

		printf(" %s=%.0f/s", word[k],
		       (double)delta(b->verdict[k].packets, a->verdict[k].packets) / dt);
	}
	if (b->dl_rate || b->dl_sample)
		printf(" droplog=%.0f/s", (double)delta(b->dl_events, a->dl_events) / dt);
	printf(" top:");
	for (size_t i = 0; i < n && i < 3; i++)
		printf(" %s=%.0f/s", cidr_format(&rules->r[hit[i].index].prefix, pfx, sizeof(pfx)),
		       (double)hit[i].packets / dt);
	if (!n)
		printf(" -");
	printf(" sources:");
	if (b->top_state == TOP_OFF) {
		printf(" drop-log-off");
	} else if (b->top_state == TOP_NO_SERVICE) {
		printf(" no-service");
	} else {
		double w = b->top.seconds > 0 ? b->top.seconds : 1;

		for (size_t i = 0; i < b->top.n && i < 3; i++)
			printf(" %s=%.0f/s", b->top.src[i].source, (double)b->top.src[i].drops / w);
		if (!b->top.n)
			printf(" -");
	}
	printf("\n");
	fflush(stdout);
}

/* The rules again when a writer has been at them. */
static void rules_refresh(const struct pins *p, struct ruleset *rules, uint64_t *gen, bool *read)
{
	struct ruleset r = {};
	uint64_t g;

	if (pins_generation(p, &g) || (*read && g == *gen))
		return;
	if (pins_lock(p, false))
		return;
	if (!trie_read(p, &r)) {
		ruleset_free(rules);
		*rules = r;
		*gen = g;
		*read = true;
	} else {
		ruleset_free(&r);
	}
	pins_unlock(p);
}

int watch_run(const char *pin_dir, uint32_t count, bool tty)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct metrics_hit *hit = NULL;
	struct ruleset rules = {};
	struct pins p = PINS_INIT;
	char top_path[4096];
	struct sample a, b;
	uint64_t gen = 0;
	bool read = false;
	int ret = cli_open_maps(pin_dir, &p);

	if (ret)
		return ret; /* said */
	if (droptop_path(pin_dir, top_path, sizeof(top_path)))
		top_path[0] = '\0'; /* no report found: "no service" */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ret = sample_read(&p, top_path, &a);
	if (ret) {
		cli_err("cannot read the counters in %s: %s.", pin_dir, strerror(-ret));
		pins_close(&p);
		return ret;
	}
	if (tty)
		printf("\033[2J");
	for (uint32_t i = 0; !stop && (!count || i < count); i++) {
		struct timespec one = { .tv_sec = 1 };
		struct metrics_hit *more;
		size_t n;

		while (nanosleep(&one, &one) && !stop)
			;
		if (stop)
			break;
		rules_refresh(&p, &rules, &gen, &read);
		ret = sample_read(&p, top_path, &b);
		if (ret) {
			cli_err("cannot read the counters in %s: %s.", pin_dir, strerror(-ret));
			break;
		}
		more = realloc(hit, (rules.n ? rules.n : 1) * sizeof(*hit));
		if (!more) {
			sample_free(&b);
			ret = -ENOMEM;
			break;
		}
		hit = more;
		n = top_rules(&rules, &a, &b, hit);
		if (tty)
			frame_tty(&rules, &a, &b, hit, n);
		else
			frame_line(&rules, &a, &b, hit, n);
		sample_free(&a);
		a = b;
	}
	sample_free(&a);
	free(hit);
	ruleset_free(&rules);
	pins_close(&p);
	return ret;
}
