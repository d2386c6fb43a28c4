// SPDX-License-Identifier: GPL-2.0
/*
 * rwlock vs pthread_rwlock_t under a read-mostly load.
 *
 * Each thread loops over a tiny critical section on shared data (read: sum
 * eight words; write: bump them) and picks a write with probability -w
 * percent.  Every configuration runs -r rounds of -d milliseconds, lock kinds
 * interleaved so that drift in the machine's load hits them alike, and the
 * median throughput is printed as a markdown table.
 *
 *   bench_rwlock [-d ms] [-r rounds] [-w write-percent] [-t max-threads]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rwlock.h"

enum lock_kind { LOCK_RWLOCK, LOCK_PTHREAD, LOCK_PTHREAD_WRPREF, LOCK_KINDS };

static const char *const kind_names[LOCK_KINDS] = { "rwlock", "pthread_rwlock",
						    "pthread_rwlock (writer-pref)" };

#define WORDS	    8
#define MAX_THREADS 64

struct bench {
	enum lock_kind kind;
	struct rwlock rw;
	pthread_rwlock_t prw;
	unsigned int write_pct;
	_Atomic int go, stop;
	_Atomic unsigned int ready;
	_Atomic uint64_t ops;
	/* Own cache lines: the data should not share one with the lock word. */
	_Alignas(64) uint64_t data[WORDS];
};

static void lock_read(struct bench *b)
{
	if (b->kind == LOCK_RWLOCK)
		rwlock_read_lock(&b->rw);
	else
		pthread_rwlock_rdlock(&b->prw);
}

static void unlock_read(struct bench *b)
{
	if (b->kind == LOCK_RWLOCK)
		rwlock_read_unlock(&b->rw);
	else
		pthread_rwlock_unlock(&b->prw);
}

static void lock_write(struct bench *b)
{
	if (b->kind == LOCK_RWLOCK)
		rwlock_write_lock(&b->rw);
	else
		pthread_rwlock_wrlock(&b->prw);
}

static void unlock_write(struct bench *b)
{
	if (b->kind == LOCK_RWLOCK)
		rwlock_write_unlock(&b->rw);
	else
		pthread_rwlock_unlock(&b->prw);
}

static void *worker(void *arg)
{
	struct bench *b = arg;
	uint32_t x = (uint32_t)(uintptr_t)&x | 1;
	uint64_t ops = 0, sink = 0;

	atomic_fetch_add(&b->ready, 1);
	while (!atomic_load_explicit(&b->go, memory_order_acquire))
		;
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (x % 100 < b->write_pct) {
			lock_write(b);
			for (int i = 0; i < WORDS; i++)
				b->data[i]++;
			unlock_write(b);
		} else {
			lock_read(b);
			for (int i = 0; i < WORDS; i++)
				sink += b->data[i];
			unlock_read(b);
		}
		ops++;
	}
	/* Make the compiler keep the reads it would otherwise drop as unused. */
	__asm__ __volatile__("" : : "r"(sink));
	atomic_fetch_add(&b->ops, ops);
	return NULL;
}

/* Throughput in operations per second of one round; 0 on error. */
static double run_round(enum lock_kind kind, unsigned int threads, unsigned int ms,
			unsigned int write_pct)
{
	static struct bench b;
	pthread_t t[MAX_THREADS];
	pthread_rwlockattr_t attr;
	struct timespec t0, t1, nap = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	double secs;

	memset(&b, 0, sizeof(b));
	b.kind = kind;
	b.write_pct = write_pct;
	rwlock_init(&b.rw);
	pthread_rwlockattr_init(&attr);
	if (kind == LOCK_PTHREAD_WRPREF)
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&b.prw, &attr);
	pthread_rwlockattr_destroy(&attr);

	for (unsigned int i = 0; i < threads; i++) {
		if (pthread_create(&t[i], NULL, worker, &b)) {
			fprintf(stderr, "bench_rwlock: cannot start thread %u\n", i);
			exit(1);
		}
	}
	while (atomic_load(&b.ready) < threads)
		sched_yield();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	atomic_store_explicit(&b.go, 1, memory_order_release);
	nanosleep(&nap, NULL);
	atomic_store(&b.stop, 1);
	for (unsigned int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_rwlock_destroy(&b.prw);

	/* A lock that let two writers in, or a reader next to one, loses increments. */
	for (int i = 1; i < WORDS; i++) {
		if (b.data[i] != b.data[0]) {
			fprintf(stderr, "bench_rwlock: %s broke exclusion\n", kind_names[kind]);
			exit(1);
		}
	}
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	return atomic_load(&b.ops) / secs;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static unsigned int parse_uint(const char *s, unsigned int lo, unsigned int hi, char opt)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || !*s || v < lo || v > hi) {
		fprintf(stderr, "bench_rwlock: -%c wants a number from %u to %u, not '%s'\n", opt,
			lo, hi, s);
		exit(2);
	}
	return (unsigned int)v;
}

int main(int argc, char **argv)
{
	unsigned int ms = 100, rounds = 5, write_pct = 5, max_threads = 8;
	double res[LOCK_KINDS][MAX_THREADS + 1], samples[LOCK_KINDS][16];
	int opt;

	while ((opt = getopt(argc, argv, "d:r:w:t:h")) != -1) {
		switch (opt) {
		case 'd':
			ms = parse_uint(optarg, 10, 2000, 'd');
			break;
		case 'r':
			rounds = parse_uint(optarg, 1, 15, 'r');
			break;
		case 'w':
			write_pct = parse_uint(optarg, 0, 100, 'w');
			break;
		case 't':
			max_threads = parse_uint(optarg, 1, MAX_THREADS, 't');
			break;
		default:
			fprintf(stderr,
				"usage: %s [-d ms per round] [-r rounds] [-w write %%] [-t max "
				"threads]\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}

	printf("## rwlock vs pthread_rwlock: %u%% writes, median of %u rounds of %u ms, %ld "
	       "CPUs\n\n",
	       write_pct, rounds, ms, sysconf(_SC_NPROCESSORS_ONLN));
	printf("| threads | rwlock Mops/s | pthread_rwlock Mops/s | ratio | "
	       "pthread writer-pref Mops/s | ratio |\n");
	printf("|--------:|--------------:|----------------------:|------:|"
	       "--------------------------:|------:|\n");
	for (unsigned int threads = 1; threads <= max_threads; threads *= 2) {
		for (unsigned int r = 0; r < rounds; r++)
			for (int k = 0; k < LOCK_KINDS; k++)
				samples[k][r] = run_round(k, threads, ms, write_pct);
		for (int k = 0; k < LOCK_KINDS; k++)
			res[k][threads] = median(samples[k], rounds);
		printf("| %7u | %13.2f | %21.2f | %5.2f | %26.2f | %5.2f |\n", threads,
		       res[LOCK_RWLOCK][threads] / 1e6, res[LOCK_PTHREAD][threads] / 1e6,
		       res[LOCK_RWLOCK][threads] / res[LOCK_PTHREAD][threads],
		       res[LOCK_PTHREAD_WRPREF][threads] / 1e6,
		       res[LOCK_RWLOCK][threads] / res[LOCK_PTHREAD_WRPREF][threads]);
		fflush(stdout);
	}
	printf("\nratio = rwlock throughput / pthread throughput (> 1: rwlock faster)\n");
	return 0;
}
