/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Lock-free multi-producer multi-consumer FIFO (Michael & Scott, 1996).
 * Today it hands the set writers of sync.c their prefix ranges; it is
 * meant to carry drop events from ring-buffer readers to a logger later,
 * where a stalled consumer must never make a producer block or grow memory
 * without limit: hence lock-free operations and a bounded mode.
 *
 * Payload: a pair of 64-bit words copied in and out by value.  The producer
 * then never allocates per item (a void * payload would only move the
 * unbounded malloc from the queue into the caller): a range number, or a
 * drop event reduced to what a consumer aggregates (key = rule_id << 32 |
 * verdict, value = bytes or a timestamp), fits.  A caller with bigger
 * records may store a pointer in one word; their memory is then the
 * caller's business.
 *
 * ABA: head, tail, each node's link and the free-list top are 64-bit words
 * holding a 48-bit node address and a 16-bit counter in the upper bits, which
 * x86-64 user addresses leave zero.  Every update of such a word bumps its
 * counter, so a thread that slept while a node was dequeued, recycled and
 * re-enqueued sees a different word and its CAS fails.  We chose this over a
 * 128-bit CAS because a 16-byte C11 atomic is not lock-free with gcc (it goes
 * through libatomic, which may take a lock and is not linked here), while an
 * 8-byte CAS is lock-free everywhere and well understood by TSan.  The price:
 * a thread must sleep through exactly a multiple of 65536 updates of one word
 * to be fooled.  lfq_create() refuses memory above 2^48 (5-level paging with
 * a high mmap hint) with -EOPNOTSUPP rather than lose address bits.
 *
 * Reclamation: nodes are type-stable.  A dequeued dummy goes to a lock-free
 * free list (a tagged Treiber stack) and is reused for a later push; node
 * memory is only returned to malloc by lfq_destroy().  A thread holding a
 * stale node pointer may therefore always read its fields (all atomics), and
 * re-validates the tagged word it came from before trusting what it read.
 *
 * Bounded mode (capacity > 0): capacity + 1 nodes (one is the dummy) are
 * allocated at create time; push takes a node from the free list and fails
 * with -ENOSPC when there is none.  Under concurrency a push may see -ENOSPC
 * for an instant while a pop has unlinked a node but not yet freed it.
 * Unbounded mode (capacity 0): the free list is refilled by allocating nodes
 * in chunks, which lfq_destroy() frees.
 */
#ifndef IPBLOCK_LFQUEUE_H
#define IPBLOCK_LFQUEUE_H

#include <stddef.h>
#include <stdint.h>

struct lfq;

struct lfq_item {
	uint64_t key;
	uint64_t value;
};

/* Make an empty queue of capacity items, 0: unbounded.  -ENOMEM, -EOPNOTSUPP. */
int lfq_create(struct lfq **qp, size_t capacity);

/* Free the queue, its nodes and any items left; no other thread may use it. */
void lfq_destroy(struct lfq *q);

/* Append a copy of *item.  -ENOSPC when full (bounded), -ENOMEM (unbounded). */
int lfq_push(struct lfq *q, const struct lfq_item *item);

/* Take the oldest item into *item.  -EAGAIN when the queue is empty. */
int lfq_pop(struct lfq *q, struct lfq_item *item);

/* Items queued, exact when quiescent; a hint while others push and pop. */
size_t lfq_size(const struct lfq *q);

#endif /* IPBLOCK_LFQUEUE_H */
