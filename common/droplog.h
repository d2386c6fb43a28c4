/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sampled drop log, user-space side: its setting (rate and sample, in
 * config_map; off by default) and a reader of its ring buffer that decodes
 * each event and hands it to a callback -- the service's reader thread
 * pushes them on to its queue from there.  The program's side, the token
 * bucket per CPU, is in bpf/ipblock.bpf.c.
 */
#ifndef IPBLOCK_DROPLOG_H
#define IPBLOCK_DROPLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cidr.h"
#include "pins.h"

/* One dropped packet, decoded. */
struct droplog_event {
	struct timespec when; /* CLOCK_REALTIME */
	struct cidr source;   /* the source address, a /32 or /128 */
	uint32_t ifindex;
	uint32_t rule_id; /* the deny rule's id in source's family */
	uint32_t frame_len;
	uint8_t l4_proto; /* IPPROTO_*; 0 when the IP header could not be read */
	bool has_ports;	  /* TCP or UDP, first fragment, ports in the frame */
	uint16_t sport, dport;
};

/* Each CPU may report rate drops a second, and beyond them one in sample (0, 0: off). */
int droplog_set(const struct pins *p, uint32_t rate, uint32_t sample);
int droplog_get(const struct pins *p, uint32_t *rate, uint32_t *sample);

/* Events put into the ring and events it had no room for, summed over the CPUs. */
int droplog_counts(const struct pins *p, uint64_t *emitted, uint64_t *lost);

/*
 * Decode one ring-buffer record; mono_to_real is CLOCK_REALTIME minus
 * CLOCK_MONOTONIC in ns (droplog_clock_offset()).  -EINVAL for a record of
 * another size.
 */
int droplog_decode(const void *data, size_t len, int64_t mono_to_real, struct droplog_event *out);

/* CLOCK_REALTIME minus CLOCK_MONOTONIC now, in ns. */
int64_t droplog_clock_offset(void);

/* The callback of a reader; a negative value stops the poll and is returned by it. */
typedef int (*droplog_fn)(const struct droplog_event *ev, void *ctx);

struct droplog;

/* Read the drop log of the maps p: each event goes to fn(ev, ctx). */
int droplog_open(const struct pins *p, droplog_fn fn, void *ctx, struct droplog **out);

/*
 * Wait up to timeout_ms (-1: forever, 0: not at all) for events and hand
 * each one there is to the callback.  The program wakes a waiting reader
 * only when the ring is an eighth full (a wakeup per event costs the
 * dropping CPU microseconds), so a reader that wants events within T ms
 * polls with a timeout of T, never -1.  Returns the number handled, the
 * callback's negative value, or -errno.
 */
int droplog_poll(struct droplog *d, int timeout_ms);

/* An fd that turns readable when events wait (for an epoll set). */
int droplog_fd(const struct droplog *d);

void droplog_close(struct droplog *d);

#endif /* IPBLOCK_DROPLOG_H */
