/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The drop log's pipe between the service's threads: ring-buffer readers
 * push events into a bounded lock-free queue (common/lfqueue), and when
 * it is full count them as lost instead of waiting -- a reader that
 * blocked would let the kernel's ring fill and lose events there, unseen;
 * a consumer drains the queue into an aggregator (common/dropagg).  Any
 * number of pushers, one drainer.
 */
#ifndef IPBLOCK_DROPPIPE_H
#define IPBLOCK_DROPPIPE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "droplog.h"
#include "dropagg.h"
#include "lfqueue.h"

struct droppipe {
	struct lfq *q;
	_Atomic uint64_t pushed; /* events queued */
	_Atomic uint64_t lost;	 /* events the queue had no room for */
	uint64_t lost_seen;	 /* the drainer's: lost already handed to an aggregator */
};

/* A pipe holding at most capacity events.  0, -ENOMEM, -EOPNOTSUPP. */
int droppipe_init(struct droppipe *p, size_t capacity);
void droppipe_destroy(struct droppipe *p);

/* Queue ev, never waiting: 0, or -ENOSPC with the event counted as lost. */
int droppipe_push(struct droppipe *p, const struct droplog_event *ev);

/* Move up to max queued events, and the losses since the last drain, into a; the events moved. */
size_t droppipe_drain(struct droppipe *p, struct dropagg *a, size_t max);

/* Events queued and lost so far (any thread). */
void droppipe_counts(struct droppipe *p, uint64_t *pushed, uint64_t *lost);

#endif /* IPBLOCK_DROPPIPE_H */
