// SPDX-License-Identifier: GPL-2.0
/*
 * Throughput of the lock-free queue against a mutex-guarded linked list, at
 * 1, 2, 4 and 8 threads, printed as a markdown table.
 *
 * Both queues are bounded to the same capacity and recycle their nodes (the
 * list keeps a free list under its lock), so the figures compare the
 * synchronisation, not malloc.  Two workloads:
 *   pairs  every thread pushes one item then pops one, on one shared queue;
 *   split  half the threads only push, the other half only pop.
 * A thread that finds the queue full or empty yields, in both queues alike.
 * Each round runs for a fixed time and counts the items popped, so a slow
 * queue or a busy machine cannot stretch the run.
 *
 *   bench_lfqueue [-t ms per round] [-r rounds]
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "lfqueue.h"

#define CAPACITY	 1024
#define DEFAULT_ROUNDS	 7
#define DEFAULT_ROUND_MS 150
#define MAX_ROUNDS	 50
/* Rounds run for a fixed time: 7 cells x 2 queues x this stays under 30 s. */
#define MAX_ROUND_MS 2000

/* --- the baseline: a linked list under one mutex ------------------------- */

struct mlist_node {
	struct mlist_node *next;
	struct lfq_item item;
};

struct mlist {
	pthread_mutex_t lock;
	struct mlist_node *head, *tail, *free;
	struct mlist_node *pool;
};

static int mlist_create(struct mlist **lp, size_t capacity)
{
	struct mlist *l = calloc(1, sizeof(*l));
	size_t i;

	if (!l)
		return -ENOMEM;
	l->pool = calloc(capacity, sizeof(*l->pool));
	if (!l->pool) {
		free(l);
		return -ENOMEM;
	}
	for (i = 0; i + 1 < capacity; i++)
		l->pool[i].next = &l->pool[i + 1];
	l->free = l->pool;
	pthread_mutex_init(&l->lock, NULL);
	*lp = l;
	return 0;
}

static void mlist_destroy(struct mlist *l)
{
	pthread_mutex_destroy(&l->lock);
	free(l->pool);
	free(l);
}

static int mlist_push(struct mlist *l, const struct lfq_item *item)
{
	struct mlist_node *n;

	pthread_mutex_lock(&l->lock);
	n = l->free;
	if (!n) {
		pthread_mutex_unlock(&l->lock);
		return -ENOSPC;
	}
	l->free = n->next;
	n->item = *item;
	n->next = NULL;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static int mlist_pop(struct mlist *l, struct lfq_item *item)
{
	struct mlist_node *n;

	pthread_mutex_lock(&l->lock);
	n = l->head;
	if (!n) {
		pthread_mutex_unlock(&l->lock);
		return -EAGAIN;
	}
	l->head = n->next;
	if (!l->head)
		l->tail = NULL;
	*item = n->item;
	n->next = l->free;
	l->free = n;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/* --- one timed round ------------------------------------------------------ */

enum impl { LFQ, MUTEX };
enum workload { PAIRS, SPLIT };

static const char *const workload_name[] = { "pairs", "split" };

struct round {
	enum impl impl;
	struct lfq *q;
	struct mlist *l;
	pthread_barrier_t start;
	_Atomic int stop;
};

struct thread_arg {
	struct round *r;
	pthread_t thread;
	int push, pop; /* what this thread does */
	double start, end;
	uint64_t items; /* popped by this thread */
};

static inline int q_push(struct round *r, const struct lfq_item *it)
{
	return r->impl == LFQ ? lfq_push(r->q, it) : mlist_push(r->l, it);
}

static inline int q_pop(struct round *r, struct lfq_item *it)
{
	return r->impl == LFQ ? lfq_pop(r->q, it) : mlist_pop(r->l, it);
}

static inline int stopped(struct round *r)
{
	return atomic_load_explicit(&r->stop, memory_order_relaxed);
}

static void *bench_thread(void *arg)
{
	struct thread_arg *a = arg;
	struct round *r = a->r;
	struct lfq_item it = { 0 };

	pthread_barrier_wait(&r->start);
	a->start = now_s();
	while (!stopped(r)) {
		if (a->push) {
			it.key++;
			/* pairs: at most one item per thread is queued, never full. */
			while (q_push(r, &it) && !stopped(r))
				sched_yield();
		}
		if (a->pop) {
			/* pairs: this thread's own push keeps the queue non-empty. */
			if (q_pop(r, &it)) {
				sched_yield();
				continue;
			}
			a->items++;
		}
	}
	a->end = now_s();
	return NULL;
}

/* Million items (one push plus one pop each) per second, or < 0 on error. */
static double run_round(enum impl impl, enum workload wl, unsigned int threads, long ms)
{
	struct timespec len = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };
	struct round r = { .impl = impl };
	struct thread_arg args[8] = { 0 };
	double t0 = 0, t1 = 0;
	uint64_t items = 0;
	unsigned int t;
	int err;

	err = impl == LFQ ? lfq_create(&r.q, CAPACITY) : mlist_create(&r.l, CAPACITY);
	if (err)
		return -1;
	pthread_barrier_init(&r.start, NULL, threads + 1);
	for (t = 0; t < threads; t++) {
		args[t].r = &r;
		args[t].push = wl == PAIRS || t < threads / 2;
		args[t].pop = wl == PAIRS || t >= threads / 2;
		if (pthread_create(&args[t].thread, NULL, bench_thread, &args[t])) {
			fprintf(stderr, "bench_lfqueue: cannot start a thread\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&r.start);
	nanosleep(&len, NULL);
	atomic_store(&r.stop, 1);
	/*
	 * From the first thread's start to the last one's end: on a busy box
	 * the workers may start well before or after this thread wakes.
	 */
	for (t = 0; t < threads; t++) {
		pthread_join(args[t].thread, NULL);
		if (!t || args[t].start < t0)
			t0 = args[t].start;
		if (!t || args[t].end > t1)
			t1 = args[t].end;
		items += args[t].items;
	}
	pthread_barrier_destroy(&r.start);
	if (impl == LFQ)
		lfq_destroy(r.q);
	else
		mlist_destroy(r.l);
	return items / (t1 - t0) / 1e6;
}

/* --- statistics and the table --------------------------------------------- */

struct cell {
	double v[MAX_ROUNDS];
	int n;
};

static double median(struct cell *c)
{
	qsort(c->v, c->n, sizeof(c->v[0]), cmp_double);
	return c->n % 2 ? c->v[c->n / 2] : (c->v[c->n / 2 - 1] + c->v[c->n / 2]) / 2;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_lfqueue [-t ms per round] [-r rounds]  (rounds x ms <= %d)\n",
		MAX_ROUND_MS);
	exit(2);
}

int main(int argc, char **argv)
{
	static const unsigned int thread_counts[] = { 1, 2, 4, 8 };
	static const enum workload workloads[] = { PAIRS, SPLIT };
	int rounds = DEFAULT_ROUNDS, opt, i, w, k;
	long ms = DEFAULT_ROUND_MS;
	double begin = now_s(), med[2];
	struct cell cell[2];
	unsigned int t;
	enum impl impl;

	while ((opt = getopt(argc, argv, "t:r:")) != -1) {
		switch (opt) {
		case 't':
			ms = strtol(optarg, NULL, 0);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (ms < 1 || rounds < 1 || rounds > MAX_ROUNDS || rounds * ms > MAX_ROUND_MS)
		usage();

	printf("lfqueue vs mutex-guarded list: capacity %d, %ld CPUs, %d rounds of %ld ms "
	       "per cell\n\n",
	       CAPACITY, sysconf(_SC_NPROCESSORS_ONLN), rounds, ms);
	printf("| workload | threads | lfqueue Mitems/s median (min–max) "
	       "| mutex list Mitems/s median (min–max) | lfqueue/mutex |\n");
	printf("|---|---:|---:|---:|---:|\n");
	for (w = 0; w < 2; w++) {
		for (k = 0; k < 4; k++) {
			t = thread_counts[k];
			if (workloads[w] == SPLIT && t < 2)
				continue;
			memset(cell, 0, sizeof(cell));
			/* Alternate the two so that drift in machine load hits both. */
			for (i = 0; i < rounds; i++) {
				for (impl = LFQ; impl <= MUTEX; impl++) {
					double v = run_round(impl, workloads[w], t, ms);

					if (v < 0) {
						fprintf(stderr, "bench_lfqueue: out of memory\n");
						return 1;
					}
					cell[impl].v[cell[impl].n++] = v;
				}
			}
			printf("| %s | %u |", workload_name[workloads[w]], t);
			for (impl = LFQ; impl <= MUTEX; impl++) {
				med[impl] = median(&cell[impl]); /* sorts v[] */
				printf(" %.2f (%.2f–%.2f) |", med[impl], cell[impl].v[0],
				       cell[impl].v[cell[impl].n - 1]);
			}
			printf(" %.2f |\n", med[LFQ] / med[MUTEX]);
			fflush(stdout);
		}
	}
	printf("\npairs: every thread pushes then pops; split: half the threads push, half pop.\n"
	       "An item is one push plus one pop; %.1f s in all.\n",
	       now_s() - begin);
	return 0;
}
