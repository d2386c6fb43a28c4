/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Per-rule counters: the flat*_hits pools, one per-CPU counter per rule id
 * (packets, bytes, the last hit's time), which the program writes when a
 * rule judges a packet.  Here: their segments, made and taken out with the
 * ids' (segment g of the hits holds the counters of segment g of the ids),
 * zeroing an id's counters before it is given to another rule, and the
 * counters summed over the CPUs for listings.
 */
#ifndef IPBLOCK_HITS_H
#define IPBLOCK_HITS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pins.h"

/* One rule's counters, summed over the CPUs. */
struct hits_total {
	uint64_t packets;
	uint64_t bytes;
	uint64_t last_ns; /* CLOCK_MONOTONIC ns of the latest hit on any CPU; 0: never hit */
};

/* A family's counters, indexed by rule id: c[id] for id < n. */
struct hits_table {
	struct hits_total *c;
	uint32_t n;
};

/*
 * Give family's hits segments [0, nsegs): the missing ones are created
 * (zeroed) and put into the outer map.
 */
int hits_cover(const struct pins *p, int family, uint32_t nsegs);

/* Take family's hits segments from nsegs on out of the outer map (the kernel frees them). */
int hits_trim(const struct pins *p, int family, uint32_t nsegs);

/* Zero the counters of ids[0..n) of family (ids without a segment are skipped). */
int hits_zero(const struct pins *p, int family, const uint32_t *ids, size_t n);

/* Read every counter of family, summed over the CPUs, into *out (hits_table_free() it). */
int hits_read(const struct pins *p, int family, struct hits_table *out);

void hits_table_free(struct hits_table *t);

/* The counters of id in t; zeroes for an id t does not hold. */
struct hits_total hits_of(const struct hits_table *t, uint32_t id);

/* The wall-clock time of a last_ns (CLOCK_MONOTONIC), to the second. */
time_t hits_wallclock(uint64_t last_ns);

#endif /* IPBLOCK_HITS_H */
