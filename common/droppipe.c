// SPDX-License-Identifier: GPL-2.0
/* The drop log's pipe between the service's threads; see droppipe.h. */
#include <errno.h>
#include <string.h>

#include "droppipe.h"

int droppipe_init(struct droppipe *p, size_t capacity)
{
	memset(p, 0, sizeof(*p));
	atomic_init(&p->pushed, 0);
	atomic_init(&p->lost, 0);
	/* 0 would make the queue unbounded: a stalled consumer would grow it without limit. */
	return lfq_create(&p->q, capacity ? capacity : 1);
}

void droppipe_destroy(struct droppipe *p)
{
	lfq_destroy(p->q);
	p->q = NULL;
}

int droppipe_push(struct droppipe *p, const struct droplog_event *ev)
{
	struct lfq_item it;

	dropagg_pack(ev, &it);
	if (lfq_push(p->q, &it)) {
		atomic_fetch_add_explicit(&p->lost, 1, memory_order_relaxed);
		return -ENOSPC;
	}
	atomic_fetch_add_explicit(&p->pushed, 1, memory_order_relaxed);
	return 0;
}

size_t droppipe_drain(struct droppipe *p, struct dropagg *a, size_t max)
{
	uint64_t lost = atomic_load_explicit(&p->lost, memory_order_relaxed);
	struct dropagg_event e;
	struct lfq_item it;
	size_t n = 0;

	if (lost != p->lost_seen) {
		dropagg_add_lost(a, lost - p->lost_seen);
		p->lost_seen = lost;
	}
	while (n < max && !lfq_pop(p->q, &it)) {
		dropagg_unpack(&it, &e);
		dropagg_add(a, &e);
		n++;
	}
	return n;
}

void droppipe_counts(struct droppipe *p, uint64_t *pushed, uint64_t *lost)
{
	*pushed = atomic_load_explicit(&p->pushed, memory_order_relaxed);
	*lost = atomic_load_explicit(&p->lost, memory_order_relaxed);
}
