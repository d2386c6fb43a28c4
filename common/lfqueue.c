// SPDX-License-Identifier: GPL-2.0
/* Michael-Scott queue with tagged words and type-stable nodes; see lfqueue.h. */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lfqueue.h"

#if UINTPTR_MAX != UINT64_MAX
#error "lfqueue packs a counter into the top bits of a 64-bit pointer"
#endif

#define TP_ADDR_BITS 48
#define TP_ADDR_MASK ((UINT64_C(1) << TP_ADDR_BITS) - 1)
#define TP_TAG_MASK  UINT64_C(0xffff)

/* Nodes per allocation in unbounded mode: one malloc per 8 KiB of nodes. */
#define LFQ_CHUNK_NODES 256

#define CACHELINE 64

/* Longest wait after a lost CAS, in pause instructions (a few microseconds). */
#define BACKOFF_MAX_SPINS 256

/*
 * Every field is atomic because a thread holding a stale pointer may read a
 * node while its new owner writes it; the reader discards what it read when
 * the tagged word it followed has moved.
 */
struct lfq_node {
	alignas(32) _Atomic uint64_t next;    /* tagged successor in the queue */
	_Atomic(struct lfq_node *) free_next; /* successor on the free list */
	_Atomic uint64_t key;
	_Atomic uint64_t value;
};

struct lfq_chunk {
	struct lfq_chunk *next;
	size_t nr;
	struct lfq_node nodes[];
};

/*
 * Consumers own head, producers own tail, both share the free list: one cache
 * line each so that they do not bounce lines they do not need.  The size
 * counters sit with the word the same side has just written.
 */
struct lfq {
	alignas(CACHELINE) _Atomic uint64_t head;
	_Atomic size_t popped;
	alignas(CACHELINE) _Atomic uint64_t tail;
	_Atomic size_t pushed;
	alignas(CACHELINE) _Atomic uint64_t free_top;
	alignas(CACHELINE) _Atomic(struct lfq_chunk *) chunks;
	size_t capacity;
};

static inline struct lfq_node *tp_node(uint64_t w)
{
	return (struct lfq_node *)(uintptr_t)(w & TP_ADDR_MASK);
}

static inline uint64_t tp_tag(uint64_t w)
{
	return w >> TP_ADDR_BITS;
}

/* The word that replaces old: a new address and old's counter plus one. */
static inline uint64_t tp_next(uint64_t old, struct lfq_node *n)
{
	return (uint64_t)(uintptr_t)n | (((tp_tag(old) + 1) & TP_TAG_MASK) << TP_ADDR_BITS);
}

/*
 * Called after a lost CAS.  Retrying at once mostly loses again and keeps the
 * contended line bouncing between cores; waiting a little longer each time
 * lets the winner finish.  Measured: 2 threads sharing one queue went from
 * ~6 to ~55 million items/s with it (bench/bench_lfqueue.c).
 */
static inline void backoff(unsigned int *spins)
{
	unsigned int i;

	for (i = 0; i < *spins; i++) {
#if defined(__x86_64__)
		__builtin_ia32_pause();
#else
		atomic_signal_fence(memory_order_seq_cst);
#endif
	}
	if (*spins < BACKOFF_MAX_SPINS)
		*spins = *spins ? *spins * 2 : 1;
}

static struct lfq_chunk *chunk_alloc(size_t nr)
{
	struct lfq_chunk *c;
	size_t size;

	if (nr > (SIZE_MAX - sizeof(*c)) / sizeof(struct lfq_node))
		return NULL;
	size = sizeof(*c) + nr * sizeof(struct lfq_node);
	size = (size + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
	c = aligned_alloc(CACHELINE, size);
	if (!c)
		return NULL;
	/* A fresh node's link is NULL with counter 0: nobody has seen it yet. */
	memset(c, 0, size);
	c->nr = nr;
	return c;
}

/* Whether every node of c has an address the tagged words can hold. */
static bool chunk_addressable(const struct lfq_chunk *c)
{
	return ((uintptr_t)&c->nodes[c->nr] & ~(uintptr_t)TP_ADDR_MASK) == 0;
}

/* Chain nodes[from..nr-1] through free_next; the caller publishes them. */
static void chunk_link(struct lfq_chunk *c, size_t from)
{
	size_t i;

	for (i = from; i + 1 < c->nr; i++)
		atomic_store_explicit(&c->nodes[i].free_next, &c->nodes[i + 1],
				      memory_order_relaxed);
}

static void free_push_chain(struct lfq *q, struct lfq_node *first, struct lfq_node *last)
{
	uint64_t top = atomic_load_explicit(&q->free_top, memory_order_relaxed);
	unsigned int spins = 0;

	for (;;) {
		atomic_store_explicit(&last->free_next, tp_node(top), memory_order_relaxed);
		/* Release: our reads of the node happen before its next owner writes. */
		if (atomic_compare_exchange_weak_explicit(&q->free_top, &top, tp_next(top, first),
							  memory_order_release,
							  memory_order_relaxed))
			return;
		backoff(&spins);
	}
}

static struct lfq_node *free_pop(struct lfq *q)
{
	uint64_t top = atomic_load_explicit(&q->free_top, memory_order_acquire);
	struct lfq_node *n, *next;
	unsigned int spins = 0;

	for (;;) {
		n = tp_node(top);
		if (!n)
			return NULL;
		/*
		 * Another thread may have popped n and even pushed it back since
		 * we loaded top.  n is still a node of this queue (type-stable), so
		 * the load is safe; if n moved, top's counter moved too and the
		 * CAS below rejects the stale free_next.
		 */
		next = atomic_load_explicit(&n->free_next, memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(&q->free_top, &top, tp_next(top, next),
							  memory_order_acquire,
							  memory_order_acquire))
			return n;
		backoff(&spins);
	}
}

/* Unbounded mode: a new chunk, one node for the caller, the rest freed. */
static struct lfq_node *grow(struct lfq *q)
{
	struct lfq_chunk *c = chunk_alloc(LFQ_CHUNK_NODES);
	struct lfq_chunk *head;

	if (!c)
		return NULL;
	if (!chunk_addressable(c)) {
		free(c);
		return NULL;
	}
	/* Chunks are only ever added until destroy, so this push has no ABA. */
	head = atomic_load_explicit(&q->chunks, memory_order_relaxed);
	do {
		c->next = head;
	} while (!atomic_compare_exchange_weak_explicit(&q->chunks, &head, c, memory_order_release,
							memory_order_relaxed));
	chunk_link(c, 1);
	free_push_chain(q, &c->nodes[1], &c->nodes[c->nr - 1]);
	return &c->nodes[0];
}

int lfq_create(struct lfq **qp, size_t capacity)
{
	size_t nr = capacity ? capacity + 1 : LFQ_CHUNK_NODES;
	struct lfq_chunk *c;
	struct lfq *q;
	uint64_t dummy;

	*qp = NULL;
	if (capacity == SIZE_MAX)
		return -ENOMEM;
	q = aligned_alloc(CACHELINE, sizeof(*q));
	if (!q)
		return -ENOMEM;
	memset(q, 0, sizeof(*q));
	c = chunk_alloc(nr);
	if (!c) {
		free(q);
		return -ENOMEM;
	}
	if (!chunk_addressable(c)) {
		free(c);
		free(q);
		return -EOPNOTSUPP;
	}
	q->capacity = capacity;
	atomic_init(&q->chunks, c);
	dummy = (uint64_t)(uintptr_t)&c->nodes[0];
	atomic_init(&q->head, dummy);
	atomic_init(&q->tail, dummy);
	chunk_link(c, 1);
	atomic_init(&q->free_top, (uint64_t)(uintptr_t)&c->nodes[1]);
	*qp = q;
	return 0;
}

void lfq_destroy(struct lfq *q)
{
	struct lfq_chunk *c, *next;

	if (!q)
		return;
	for (c = atomic_load_explicit(&q->chunks, memory_order_acquire); c; c = next) {
		next = c->next;
		free(c);
	}
	free(q);
}

int lfq_push(struct lfq *q, const struct lfq_item *item)
{
	struct lfq_node *n = free_pop(q);
	uint64_t tail, next, link;
	unsigned int spins = 0;

	if (!n) {
		if (q->capacity)
			return -ENOSPC;
		n = grow(q);
		if (!n)
			return -ENOMEM;
	}
	atomic_store_explicit(&n->key, item->key, memory_order_relaxed);
	atomic_store_explicit(&n->value, item->value, memory_order_relaxed);
	/*
	 * A recycled node's link still holds its old successor.  Clearing it
	 * bumps the counter as well, so an enqueuer that read this node's link
	 * as <NULL, c> in its previous life cannot append to it now.  Stale CASes
	 * expect NULL and the link is non-NULL until this store, so plain
	 * load-then-store cannot lose an update.
	 */
	link = atomic_load_explicit(&n->next, memory_order_relaxed);
	atomic_store_explicit(&n->next, tp_next(link, NULL), memory_order_relaxed);
	/* Counted before it is linked, so no pop is ever counted before its push. */
	atomic_fetch_add_explicit(&q->pushed, 1, memory_order_relaxed);

	for (;;) {
		tail = atomic_load_explicit(&q->tail, memory_order_acquire);
		/*
		 * tail's node may have been dequeued and recycled since we loaded
		 * it; type-stable nodes make the read safe and the re-check of
		 * q->tail (counter included) makes sure it was still the tail.
		 */
		next = atomic_load_explicit(&tp_node(tail)->next, memory_order_acquire);
		if (tail != atomic_load_explicit(&q->tail, memory_order_acquire))
			continue;
		if (tp_node(next)) {
			/* Someone appended but has not swung tail yet: help. */
			atomic_compare_exchange_strong_explicit(
				&q->tail, &tail, tp_next(tail, tp_node(next)), memory_order_release,
				memory_order_relaxed);
			continue;
		}
		/* Release: a consumer that sees the link sees the payload. */
		if (atomic_compare_exchange_weak_explicit(&tp_node(tail)->next, &next,
							  tp_next(next, n), memory_order_release,
							  memory_order_relaxed))
			break;
		backoff(&spins);
	}
	/* Failure is fine: another thread already swung tail past n. */
	atomic_compare_exchange_strong_explicit(&q->tail, &tail, tp_next(tail, n),
						memory_order_release, memory_order_relaxed);
	return 0;
}

int lfq_pop(struct lfq *q, struct lfq_item *item)
{
	uint64_t head, tail, next, key, value;
	struct lfq_node *first;
	unsigned int spins = 0;

	for (;;) {
		head = atomic_load_explicit(&q->head, memory_order_acquire);
		tail = atomic_load_explicit(&q->tail, memory_order_acquire);
		/* Safe on a recycled node for the same reasons as in lfq_push(). */
		next = atomic_load_explicit(&tp_node(head)->next, memory_order_acquire);
		if (head != atomic_load_explicit(&q->head, memory_order_acquire))
			continue;
		first = tp_node(next);
		if (tp_node(head) == tp_node(tail)) {
			if (!first)
				return -EAGAIN;
			/* Never let head pass tail: tail must not name a freed node. */
			atomic_compare_exchange_strong_explicit(
				&q->tail, &tail, tp_next(tail, first), memory_order_release,
				memory_order_relaxed);
			continue;
		}
		if (!first)
			continue;
		/*
		 * Read the payload before the CAS: once head moves, first becomes
		 * the dummy, and another consumer may free and recycle it.  If that
		 * already happened, the CAS fails and these values are dropped.
		 */
		key = atomic_load_explicit(&first->key, memory_order_relaxed);
		value = atomic_load_explicit(&first->value, memory_order_relaxed);
		/*
		 * acq_rel: the consumer before us read this dummy's payload before
		 * moving head onto it; those reads must precede our freeing it.
		 */
		if (atomic_compare_exchange_weak_explicit(&q->head, &head, tp_next(head, first),
							  memory_order_acq_rel,
							  memory_order_relaxed))
			break;
		backoff(&spins);
	}
	/* Release pairs with lfq_size(); before the free, so a reuse cannot count first. */
	atomic_fetch_add_explicit(&q->popped, 1, memory_order_release);
	/* The old dummy is ours alone now: no pointer into the queue names it. */
	free_push_chain(q, tp_node(head), tp_node(head));
	item->key = key;
	item->value = value;
	return 0;
}

size_t lfq_size(const struct lfq *q)
{
	/* popped first: every pop it counts has its push counted already. */
	size_t popped = atomic_load_explicit(&q->popped, memory_order_acquire);
	size_t pushed = atomic_load_explicit(&q->pushed, memory_order_relaxed);

	return pushed > popped ? pushed - popped : 0;
}
