/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The drop log's aggregation, pure: events reduced to the lock-free
 * queue's 16-byte items (dropagg_pack), counted per window -- per source
 * and rule, per network (/24, /48), per rule -- and a window's report
 * written as one summary line plus its top N, as text or as one JSON
 * object.  The service's threads (loader/droplog_thread.c) feed it; it
 * knows no thread, map or clock.
 *
 * An item holds an IPv4 source whole but only the first 64 bits of an
 * IPv6 one: the queue carries 16 bytes by value so the reader never
 * allocates, and an IPv6 host is its /64 in practice (privacy addresses
 * rotate inside it).  IPv6 sources are therefore reported as /64s.
 */
#ifndef IPBLOCK_DROPAGG_H
#define IPBLOCK_DROPAGG_H

#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "droplog.h"
#include "lfqueue.h"

/* Longest line or JSON object dropagg_format_*() write for one report. */
#define DROPAGG_TEXT_MAX 8192

/* An event as the consumer sees it. */
struct dropagg_event {
	struct cidr source; /* a /32, or an IPv6 /64 */
	uint32_t rule_id;
	uint32_t frame_len;
	uint8_t l4_proto;
};

/* Reduce ev to one queue item, and back. */
void dropagg_pack(const struct droplog_event *ev, struct lfq_item *out);
void dropagg_unpack(const struct lfq_item *it, struct dropagg_event *out);

/* One counted key of a report. */
struct dropagg_top {
	struct cidr key;  /* a source (/32, /64) or a network (/24, /48) */
	uint32_t rule_id; /* sources: the rule that dropped them; networks: 0 */
	uint64_t events, bytes;
};

/* A window's report: totals and the top N sources and networks, most events first. */
struct dropagg_report {
	double seconds; /* the window's length */
	uint64_t events, bytes;
	uint64_t lost;	     /* events the queue had no room for, in the window */
	uint64_t overflowed; /* events counted in the totals only: the key table was full */
	struct dropagg_top *sources, *nets;
	size_t n_sources, n_nets;
};

struct dropagg;

/* An aggregator of at most max_keys distinct keys a window (beyond: totals only). */
struct dropagg *dropagg_new(size_t max_keys);
void dropagg_free(struct dropagg *a);

/* Count one event into the window. */
void dropagg_add(struct dropagg *a, const struct dropagg_event *e);

/* Count n events lost before they reached the aggregator. */
void dropagg_add_lost(struct dropagg *a, uint64_t n);

/* Whether the window counted anything (events or losses). */
bool dropagg_empty(const struct dropagg *a);

/*
 * Close the window of length seconds: its report, top_n of each kind, into
 * *out (dropagg_report_free() it), and start an empty one.  0 or -ENOMEM.
 */
int dropagg_report(struct dropagg *a, double seconds, size_t top_n, struct dropagg_report *out);
void dropagg_report_free(struct dropagg_report *r);

/* The rule with id in family, as text into buf (false: unknown). */
typedef bool (*dropagg_rule_fn)(int family, uint32_t id, char *buf, size_t len, void *ctx);

/*
 * The report as text: a summary line, then one line per top source and
 * network, each ending in '\n', every line starting with "drop-log: ".
 * Returns the length written (truncated to len - 1, like snprintf).
 */
size_t dropagg_format_text(const struct dropagg_report *r, dropagg_rule_fn rule, void *ctx,
			   char *buf, size_t len);

/* The report as one JSON object and '\n' (JSON Lines); time is its end, UTC. */
size_t dropagg_format_json(const struct dropagg_report *r, time_t when, dropagg_rule_fn rule,
			   void *ctx, char *buf, size_t len);

#endif /* IPBLOCK_DROPAGG_H */
