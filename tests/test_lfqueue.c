// SPDX-License-Identifier: GPL-2.0
/* The lock-free queue: edges single-threaded, then many producers and consumers. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lfqueue.h"

/*
 * The multi-threaded tests move a million items.  TSan slows every atomic by
 * an order of magnitude, so it moves fewer, still enough for hundreds of
 * thousands of node reuses.  (valgrind runs one thread at a time and copes.)
 */
#if defined(__SANITIZE_THREAD__)
#define MPMC_ITEMS 200000u
#else
#define MPMC_ITEMS 1000000u
#endif

static struct lfq_item item(uint64_t key, uint64_t value)
{
	return (struct lfq_item){ .key = key, .value = value };
}

static void test_pop_on_empty_queue_returns_eagain(void **state)
{
	size_t caps[] = { 0, 1, 8 };
	struct lfq_item it;
	struct lfq *q;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		assert_int_equal(lfq_create(&q, caps[i]), 0);
		assert_int_equal(lfq_pop(q, &it), -EAGAIN);
		assert_int_equal(lfq_size(q), 0);
		/* Emptied again after one item: the dummy moved, still empty. */
		it = item(1, 2);
		assert_int_equal(lfq_push(q, &it), 0);
		assert_int_equal(lfq_pop(q, &it), 0);
		assert_int_equal(lfq_pop(q, &it), -EAGAIN);
		lfq_destroy(q);
	}
}

static void test_items_come_out_in_push_order(void **state)
{
	struct lfq_item it;
	struct lfq *q;
	uint64_t i;

	(void)state;
	assert_int_equal(lfq_create(&q, 100), 0);
	for (i = 0; i < 100; i++) {
		it = item(i, ~i);
		assert_int_equal(lfq_push(q, &it), 0);
	}
	for (i = 0; i < 100; i++) {
		assert_int_equal(lfq_pop(q, &it), 0);
		assert_int_equal(it.key, i);
		assert_int_equal(it.value, ~i);
	}
	assert_int_equal(lfq_pop(q, &it), -EAGAIN);
	lfq_destroy(q);
}

static void test_push_beyond_capacity_fails_until_one_is_popped(void **state)
{
	const size_t cap = 16;
	struct lfq_item it;
	struct lfq *q;
	size_t i;

	(void)state;
	assert_int_equal(lfq_create(&q, cap), 0);
	for (i = 0; i < cap; i++) {
		it = item(i, 0);
		assert_int_equal(lfq_push(q, &it), 0);
	}
	assert_int_equal(lfq_size(q), cap);
	it = item(cap, 0);
	assert_int_equal(lfq_push(q, &it), -ENOSPC);
	assert_int_equal(lfq_push(q, &it), -ENOSPC);

	assert_int_equal(lfq_pop(q, &it), 0);
	assert_int_equal(it.key, 0);
	it = item(cap, 0);
	assert_int_equal(lfq_push(q, &it), 0);
	assert_int_equal(lfq_push(q, &it), -ENOSPC);

	/* The failed pushes left nothing behind: 1..cap, in order. */
	for (i = 1; i <= cap; i++) {
		assert_int_equal(lfq_pop(q, &it), 0);
		assert_int_equal(it.key, i);
	}
	assert_int_equal(lfq_pop(q, &it), -EAGAIN);
	lfq_destroy(q);
}

static void test_capacity_one_holds_exactly_one_item(void **state)
{
	struct lfq_item it;
	struct lfq *q;
	uint64_t i;

	(void)state;
	assert_int_equal(lfq_create(&q, 1), 0);
	/* Many rounds: the two nodes swap roles as dummy every time. */
	for (i = 0; i < 1000; i++) {
		it = item(i, i * 3);
		assert_int_equal(lfq_push(q, &it), 0);
		assert_int_equal(lfq_size(q), 1);
		assert_int_equal(lfq_push(q, &it), -ENOSPC);
		assert_int_equal(lfq_pop(q, &it), 0);
		assert_int_equal(it.key, i);
		assert_int_equal(it.value, i * 3);
		assert_int_equal(lfq_pop(q, &it), -EAGAIN);
		assert_int_equal(lfq_size(q), 0);
	}
	lfq_destroy(q);
}

static void test_unbounded_queue_grows_across_chunks_and_keeps_order(void **state)
{
	const uint64_t n = 10000;
	struct lfq_item it;
	struct lfq *q;
	uint64_t i;

	(void)state;
	assert_int_equal(lfq_create(&q, 0), 0);
	for (i = 0; i < n; i++) {
		it = item(i, i << 1);
		assert_int_equal(lfq_push(q, &it), 0);
	}
	assert_int_equal(lfq_size(q), n);
	for (i = 0; i < n; i++) {
		assert_int_equal(lfq_pop(q, &it), 0);
		assert_int_equal(it.key, i);
		assert_int_equal(it.value, i << 1);
	}
	assert_int_equal(lfq_pop(q, &it), -EAGAIN);
	assert_int_equal(lfq_size(q), 0);
	lfq_destroy(q);
}

static void test_size_counts_queued_items(void **state)
{
	struct lfq_item it = item(0, 0);
	struct lfq *q;

	(void)state;
	assert_int_equal(lfq_create(&q, 4), 0);
	assert_int_equal(lfq_size(q), 0);
	assert_int_equal(lfq_push(q, &it), 0);
	assert_int_equal(lfq_push(q, &it), 0);
	assert_int_equal(lfq_size(q), 2);
	assert_int_equal(lfq_pop(q, &it), 0);
	assert_int_equal(lfq_size(q), 1);
	assert_int_equal(lfq_pop(q, &it), 0);
	assert_int_equal(lfq_pop(q, &it), -EAGAIN);
	assert_int_equal(lfq_size(q), 0);
	lfq_destroy(q);
}

static void test_impossible_capacity_is_refused(void **state)
{
	struct lfq *q = (struct lfq *)&q;

	(void)state;
	assert_int_equal(lfq_create(&q, SIZE_MAX), -ENOMEM);
	assert_null(q);
	assert_int_equal(lfq_create(&q, SIZE_MAX / 2), -ENOMEM);
	assert_null(q);
	lfq_destroy(NULL);
}

static void test_destroy_frees_items_left_in_queue(void **state)
{
	struct lfq_item it;
	struct lfq *q;
	uint64_t i;

	(void)state;
	/* LeakSanitizer and valgrind judge this one: chunks of queued nodes. */
	assert_int_equal(lfq_create(&q, 0), 0);
	for (i = 0; i < 5000; i++) {
		it = item(i, i);
		assert_int_equal(lfq_push(q, &it), 0);
	}
	for (i = 0; i < 1000; i++)
		assert_int_equal(lfq_pop(q, &it), 0);
	lfq_destroy(q);

	assert_int_equal(lfq_create(&q, 64), 0);
	for (i = 0; i < 64; i++)
		assert_int_equal(lfq_push(q, &it), 0);
	lfq_destroy(q);
}

/* --- many producers, many consumers -------------------------------------- */

/*
 * Each item says who pushed it and its sequence number; the key also carries
 * a hash of the sequence so that a pair torn between two items shows.
 */
#define PID_SHIFT 48
#define SEQ_MASK  ((UINT64_C(1) << PID_SHIFT) - 1)

/*
 * A queue that loses or duplicates a node can leave threads spinning forever
 * on -ENOSPC, or inside lfq_pop() on a cycle; no in-thread check can report
 * the latter, so a watchdog ends the whole program with a message instead.
 */
#define MPMC_DEADLINE_S 120

static uint64_t seq_hash(uint64_t seq)
{
	return (seq * UINT64_C(0x9e3779b97f4a7c15)) >> 20 & SEQ_MASK;
}

enum role { PRODUCER, CONSUMER, BOTH };

struct mpmc {
	struct lfq *q;
	unsigned int pushers; /* threads that push: producers or BOTH */
	size_t per_pusher;
	size_t total;
	pthread_barrier_t start;
	_Atomic size_t consumed;
	_Atomic uint8_t *seen; /* per item: times popped */
};

struct worker {
	struct mpmc *m;
	enum role role;
	unsigned int id; /* producer id, for roles that push */
	pthread_t thread;
	uint64_t *last; /* per producer: 1 + last sequence seen, 0: none yet */
	size_t full;	/* pushes refused with -ENOSPC */
	size_t empty;	/* pops refused with -EAGAIN */
	size_t popped;
	size_t bad;	/* malformed or torn items */
	size_t dups;	/* items popped twice */
	size_t reorder; /* items seen before an earlier one of their producer */
	int err;	/* an unexpected return code, 0 if none */
};

static void watchdog_fired(int sig)
{
	static const char msg[] = "test_lfqueue: a multi-threaded run made no end in "
				  "time; the queue is wedged\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(2);
}

static bool all_consumed(struct mpmc *m)
{
	return atomic_load_explicit(&m->consumed, memory_order_relaxed) >= m->total;
}

/* Pop once and check the item.  -EAGAIN when empty, another -errno on error. */
static int take_one(struct worker *w)
{
	struct mpmc *m = w->m;
	struct lfq_item it;
	uint64_t pid, seq;
	int ret;

	ret = lfq_pop(m->q, &it);
	if (ret == -EAGAIN)
		w->empty++;
	if (ret)
		return ret;
	atomic_fetch_add_explicit(&m->consumed, 1, memory_order_relaxed);
	w->popped++;
	pid = it.key >> PID_SHIFT;
	seq = it.value;
	if (pid >= m->pushers || seq >= m->per_pusher || (it.key & SEQ_MASK) != seq_hash(seq)) {
		w->bad++;
		return 0;
	}
	if (atomic_fetch_add_explicit(&m->seen[pid * m->per_pusher + seq], 1, memory_order_relaxed))
		w->dups++;
	if (seq + 1 <= w->last[pid])
		w->reorder++;
	else
		w->last[pid] = seq + 1;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct mpmc *m = w->m;
	struct lfq_item it;
	uint64_t seq = 0;
	int ret;

	pthread_barrier_wait(&m->start);
	if (w->role != CONSUMER) {
		while (seq < m->per_pusher) {
			it = item((uint64_t)w->id << PID_SHIFT | seq_hash(seq), seq);
			ret = lfq_push(m->q, &it);
			if (!ret) {
				seq++;
			} else if (ret == -ENOSPC) {
				w->full++;
				if (w->role == PRODUCER)
					sched_yield(); /* a real producer would drop and count */
			} else {
				goto fail;
			}
			if (w->role == BOTH) {
				/* Full with only pushers left would deadlock: pop too. */
				ret = take_one(w);
				if (ret && ret != -EAGAIN)
					goto fail;
			}
		}
	}
	if (w->role == PRODUCER)
		return NULL;
	while (!all_consumed(m)) {
		ret = take_one(w);
		if (ret == -EAGAIN)
			sched_yield();
		else if (ret)
			goto fail;
	}
	return NULL;
fail:
	w->err = ret;
	return NULL;
}

/*
 * Push total items, tagged (producer, sequence), through a queue of capacity
 * cap with the given threads; check that every item came out exactly once,
 * intact, and in its producer's order as seen by each consumer.
 */
static void run_mpmc(unsigned int producers, unsigned int consumers, unsigned int both,
		     size_t total, size_t cap)
{
	size_t full = 0, empty = 0, popped = 0, missing = 0, i;
	unsigned int nr = producers + consumers + both, t;
	struct mpmc m = { .pushers = producers + both };
	struct worker *w;
	struct lfq_item it;

	m.per_pusher = total / m.pushers;
	m.total = m.per_pusher * m.pushers;
	signal(SIGALRM, watchdog_fired);
	alarm(MPMC_DEADLINE_S);
	assert_int_equal(lfq_create(&m.q, cap), 0);
	m.seen = calloc(m.total, sizeof(*m.seen));
	w = calloc(nr, sizeof(*w));
	assert_non_null(m.seen);
	assert_non_null(w);
	assert_int_equal(pthread_barrier_init(&m.start, NULL, nr), 0);

	for (t = 0; t < nr; t++) {
		w[t].m = &m;
		w[t].role = t < producers ? PRODUCER : t < producers + consumers ? CONSUMER : BOTH;
		w[t].id = w[t].role == PRODUCER ? t : t - consumers;
		w[t].last = calloc(m.pushers, sizeof(*w[t].last));
		assert_non_null(w[t].last);
	}
	for (t = 0; t < nr; t++)
		assert_int_equal(pthread_create(&w[t].thread, NULL, worker_main, &w[t]), 0);
	for (t = 0; t < nr; t++)
		assert_int_equal(pthread_join(w[t].thread, NULL), 0);
	alarm(0);

	for (t = 0; t < nr; t++) {
		full += w[t].full;
		empty += w[t].empty;
		popped += w[t].popped;
	}
	print_message("      %u producers, %u consumers, %u both, capacity %zu: %zu items, "
		      "%zu full, %zu empty\n",
		      producers, consumers, both, cap, m.total, full, empty);
	for (t = 0; t < nr; t++) {
		assert_int_equal(w[t].err, 0);
		assert_int_equal(w[t].bad, 0);
		assert_int_equal(w[t].dups, 0);
		assert_int_equal(w[t].reorder, 0);
		free(w[t].last);
	}
	for (i = 0; i < m.total; i++)
		missing += m.seen[i] != 1;
	assert_int_equal(missing, 0);
	assert_int_equal(popped, m.total);

	/* Quiescent again: empty, and (bounded) every node back on the free list. */
	assert_int_equal(lfq_size(m.q), 0);
	assert_int_equal(lfq_pop(m.q, &it), -EAGAIN);
	for (i = 0; i < cap; i++) {
		it = item(i, i);
		assert_int_equal(lfq_push(m.q, &it), 0);
	}
	if (cap) {
		assert_int_equal(lfq_push(m.q, &it), -ENOSPC);
		for (i = 0; i < cap; i++) {
			assert_int_equal(lfq_pop(m.q, &it), 0);
			assert_int_equal(it.key, i);
		}
	}

	pthread_barrier_destroy(&m.start);
	free(w);
	free(m.seen);
	lfq_destroy(m.q);
}

static void test_two_producers_two_consumers_lose_duplicate_and_reorder_nothing(void **state)
{
	(void)state;
	run_mpmc(2, 2, 0, MPMC_ITEMS, 1024);
}

static void test_four_producers_four_consumers_lose_duplicate_and_reorder_nothing(void **state)
{
	(void)state;
	run_mpmc(4, 4, 0, MPMC_ITEMS, 1024);
}

static void test_unbounded_queue_grows_safely_under_four_producers_four_consumers(void **state)
{
	(void)state;
	run_mpmc(4, 4, 0, MPMC_ITEMS, 0);
}

/*
 * A handful of nodes for eight threads: every node is recycled constantly, so
 * a thread that slept between reading a word and its CAS finds the same node
 * address back in head, tail or the free-list top.  Without the counters such
 * a CAS would succeed on stale state, and items or nodes would be lost or
 * duplicated (the free-list check after the run catches the latter).
 */
static void test_tiny_capacity_recycles_nodes_without_aba(void **state)
{
	(void)state;
	/* Few items here: each one costs a yield, and yields crawl on a busy box. */
	run_mpmc(4, 4, 0, MPMC_ITEMS / 10, 1);
	/* Threads that push and pop never yield, so the handoffs are tight. */
	run_mpmc(0, 0, 4, MPMC_ITEMS * 4, 2);
	run_mpmc(0, 0, 8, MPMC_ITEMS * 4, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pop_on_empty_queue_returns_eagain),
		cmocka_unit_test(test_items_come_out_in_push_order),
		cmocka_unit_test(test_push_beyond_capacity_fails_until_one_is_popped),
		cmocka_unit_test(test_capacity_one_holds_exactly_one_item),
		cmocka_unit_test(test_unbounded_queue_grows_across_chunks_and_keeps_order),
		cmocka_unit_test(test_size_counts_queued_items),
		cmocka_unit_test(test_impossible_capacity_is_refused),
		cmocka_unit_test(test_destroy_frees_items_left_in_queue),
		cmocka_unit_test(
			test_two_producers_two_consumers_lose_duplicate_and_reorder_nothing),
		cmocka_unit_test(
			test_four_producers_four_consumers_lose_duplicate_and_reorder_nothing),
		cmocka_unit_test(
			test_unbounded_queue_grows_safely_under_four_producers_four_consumers),
		cmocka_unit_test(test_tiny_capacity_recycles_nodes_without_aba),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
