/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Prometheus exposition text of ipblock's metrics, pure: a snapshot of
 * the values (read by the service's endpoint, loader/metrics_http.c) in,
 * text format 0.0.4 out -- names, HELP and TYPE lines, label values
 * escaped.  Also the choice of the top N rules by hits.  No map, no
 * socket, no clock.
 */
#ifndef IPBLOCK_METRICS_H
#define IPBLOCK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "ipblock.h"

/* The verdicts' label values, indexed by enum ipblock_stat. */
extern const char *const metrics_verdict[IPBLOCK_STAT_MAX];

/* One rule's counters, for the top N. */
struct metrics_rule {
	struct cidr prefix;
	uint8_t action;	   /* enum ipblock_action */
	char sources[128]; /* the sources holding it, comma-separated; "" unknown */
	uint64_t packets, bytes;
};

/* One interface's counters (ipblock_stat_index()'s own slots). */
struct metrics_iface {
	char name[16]; /* IF_NAMESIZE */
	struct ipblock_counter verdict[IPBLOCK_STAT_MAX];
};

/* Rules a source holds, per family. */
struct metrics_source {
	char name[IPBLOCK_SOURCE_NAME_LEN];
	uint64_t ipv4, ipv6;
};

/* Everything one scrape shows. */
struct metrics_snapshot {
	struct ipblock_counter verdict[IPBLOCK_STAT_MAX];
	const struct metrics_iface *ifaces; /* those that judged packets */
	size_t n_ifaces;
	uint64_t rules_ipv4, rules_ipv6, capacity;
	const struct metrics_source *sources;
	size_t n_sources;
	const struct metrics_rule *top; /* most packets first */
	size_t n_top;
	uint64_t memory_tables, memory_tries, memory_hits, memory_other; /* bytes */
	bool droplog_on;
	uint64_t droplog_events, droplog_lost_ring, droplog_lost_queue;
	double last_change; /* Unix seconds of the last rule change seen; 0: none */
	double start_time;  /* Unix seconds the service started */
	bool crowdsec_on;
	double crowdsec_last_success; /* Unix seconds; 0: none yet */
	const char *version;
};

/*
 * The exposition text of s into *out (malloc()ed, NUL-terminated, free()
 * it) and its length into *len.  0 or -ENOMEM.
 */
int metrics_format(const struct metrics_snapshot *s, char **out, size_t *len);

/* One rule's hits, for choosing the top N: index is the caller's (its prefix order). */
struct metrics_hit {
	size_t index;
	uint64_t packets, bytes;
};

/*
 * Put the top_n of h[0..n) with the most packets (ties: the more bytes,
 * then the lower index) first, in that order; entries that never judged a
 * packet are never chosen.  Returns how many lead (at most top_n).
 */
size_t metrics_top(struct metrics_hit *h, size_t n, size_t top_n);

#endif /* IPBLOCK_METRICS_H */
