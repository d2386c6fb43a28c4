// SPDX-License-Identifier: GPL-2.0
/* Behaviour of the reader-writer spin lock: exclusion, writer preference, misuse. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "rwlock.h"
#include "sanitizer.h"

/*
 * cmocka's assertions may only fail on the main thread (they longjmp), so
 * worker threads count their failures here and the test asserts it is 0.
 */
static _Atomic int thread_errors;
#define CHECK_T(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			atomic_fetch_add(&thread_errors, 1);                                       \
	} while (0)

/* Sanitizers slow every access 5-20x; fewer rounds keep the run short. */
#define SCALE(n) (UNDER_SANITIZER ? (n) / 8 : (n))

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Run fn(arg) on another thread and return its int result. */
struct call {
	int (*fn)(struct rwlock *l);
	struct rwlock *l;
	int ret;
};

static void *call_thread(void *arg)
{
	struct call *c = arg;

	c->ret = c->fn(c->l);
	return NULL;
}

static int call_elsewhere(int (*fn)(struct rwlock *l), struct rwlock *l)
{
	struct call c = { .fn = fn, .l = l, .ret = 1 };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, call_thread, &c), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	return c.ret;
}

/*
 * Shared state whose invariant (a == b, sum[] all equal) the writers break in
 * the middle of their critical section.  Plain fields on purpose: TSan reports
 * any access the lock fails to order.
 */
#define NSLOTS 8
struct shared {
	struct rwlock lock;
	uint64_t a;
	uint64_t slots[NSLOTS];
	uint64_t b;
	_Atomic uint64_t broken_seen;
	_Atomic uint64_t reads_done;
	int iterations;
};

static void *hammer_reader(void *arg)
{
	struct shared *s = arg;

	for (int i = 0; i < s->iterations; i++) {
		uint64_t broken = 0;

		CHECK_T(rwlock_read_lock(&s->lock) == 0);
		if (s->a != s->b)
			broken++;
		for (int k = 0; k < NSLOTS; k++)
			if (s->slots[k] != s->a)
				broken++;
		CHECK_T(rwlock_read_unlock(&s->lock) == 0);
		if (broken)
			atomic_fetch_add(&s->broken_seen, 1);
		atomic_fetch_add_explicit(&s->reads_done, 1, memory_order_relaxed);
	}
	return NULL;
}

static void *hammer_writer(void *arg)
{
	struct shared *s = arg;

	for (int i = 0; i < s->iterations / 8; i++) {
		CHECK_T(rwlock_write_lock(&s->lock) == 0);
		s->a++;
		for (int k = 0; k < NSLOTS; k++)
			s->slots[k]++;
		s->b++;
		CHECK_T(rwlock_write_unlock(&s->lock) == 0);
	}
	return NULL;
}

static void test_readers_never_see_a_half_done_write(void **state)
{
	enum { READERS = 4, WRITERS = 2 };
	static struct shared s;
	pthread_t t[READERS + WRITERS];

	(void)state;
	rwlock_init(&s.lock);
	s.iterations = SCALE(400000);
	for (int i = 0; i < READERS + WRITERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL,
						i < READERS ? hammer_reader : hammer_writer, &s),
				 0);
	for (int i = 0; i < READERS + WRITERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);

	assert_int_equal(atomic_load(&s.broken_seen), 0);
	assert_int_equal(atomic_load(&s.reads_done), (uint64_t)READERS * s.iterations);
	/* Lost increments would mean two writers were inside at once. */
	assert_int_equal(s.a, (uint64_t)WRITERS * (s.iterations / 8));
	assert_int_equal(s.b, s.a);
	assert_int_equal(atomic_load(&s.lock.word), 0);
	assert_int_equal(atomic_load(&thread_errors), 0);
}

struct stream {
	struct rwlock lock;
	_Atomic int stop;
	_Atomic uint64_t reads;
	_Atomic int readers_inside_max;
	_Atomic int readers_inside;
	uint64_t deadline_ns;
};

/* A reader that re-enters as soon as it leaves and lingers inside for a while. */
static void *stream_reader(void *arg)
{
	struct stream *s = arg;

	while (!atomic_load(&s->stop) && now_ns() < s->deadline_ns) {
		uint64_t until;
		int inside;

		CHECK_T(rwlock_read_lock(&s->lock) == 0);
		inside = atomic_fetch_add(&s->readers_inside, 1) + 1;
		if (inside > atomic_load(&s->readers_inside_max))
			atomic_store(&s->readers_inside_max, inside);
		until = now_ns() + 20000;
		while (now_ns() < until)
			;
		atomic_fetch_sub(&s->readers_inside, 1);
		CHECK_T(rwlock_read_unlock(&s->lock) == 0);
		atomic_fetch_add(&s->reads, 1);
	}
	return NULL;
}

static void test_writer_gets_in_despite_continuous_readers(void **state)
{
	enum { READERS = 4, WRITES = 20 };
	/* Generous: a reader-preferring lock would wait until the readers stop. */
	const uint64_t bound_ns = 2000000000ull;
	static struct stream s;
	pthread_t t[READERS];
	uint64_t worst = 0, total = 0, before;

	(void)state;
	rwlock_init(&s.lock);
	s.deadline_ns = now_ns() + 10000000000ull;
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stream_reader, &s), 0);
	/* Let the stream build up until readers overlap. */
	while (atomic_load(&s.reads) < 200 && now_ns() < s.deadline_ns)
		sched_yield();

	for (int i = 0; i < WRITES; i++) {
		uint64_t t0 = now_ns(), waited;

		before = atomic_load(&s.reads);
		assert_int_equal(rwlock_write_lock(&s.lock), 0);
		waited = now_ns() - t0;
		assert_int_equal(atomic_load(&s.readers_inside), 0);
		assert_int_equal(rwlock_write_unlock(&s.lock), 0);
		total += waited;
		if (waited > worst)
			worst = waited;
		/* Give the readers time to pile in again before the next write. */
		while (atomic_load(&s.reads) < before + 20 && now_ns() < s.deadline_ns)
			sched_yield();
	}
	atomic_store(&s.stop, 1);
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);

	printf("# writer wait under %d streaming readers: mean %.1f us, worst %.1f us "
	       "(readers overlapped up to %d, %llu reads)\n",
	       READERS, total / 1e3 / WRITES, worst / 1e3, atomic_load(&s.readers_inside_max),
	       (unsigned long long)atomic_load(&s.reads));
	assert_true(worst < bound_ns);
	assert_int_equal(atomic_load(&thread_errors), 0);
}

struct blocked_writer {
	struct rwlock *lock;
	_Atomic int got_it;
};

static void *blocked_writer_thread(void *arg)
{
	struct blocked_writer *w = arg;

	CHECK_T(rwlock_write_lock(w->lock) == 0);
	atomic_store(&w->got_it, 1);
	CHECK_T(rwlock_write_unlock(w->lock) == 0);
	return NULL;
}

static void test_waiting_writer_turns_new_readers_away(void **state)
{
	static struct rwlock l = RWLOCK_INIT;
	struct blocked_writer w = { .lock = &l };
	pthread_t t;

	(void)state;
	assert_int_equal(rwlock_read_lock(&l), 0);
	assert_int_equal(pthread_create(&t, NULL, blocked_writer_thread, &w), 0);
	/* Bounded wait for the writer to raise its bit. */
	for (int i = 0; i < 100000 && !(atomic_load(&l.word) & RWLOCK_WRITER); i++)
		sched_yield();
	assert_true(atomic_load(&l.word) & RWLOCK_WRITER);

	/* Only a reader is inside, yet neither we nor anyone else may join it. */
	assert_int_equal(rwlock_read_trylock(&l), -EBUSY);
	assert_int_equal(call_elsewhere(rwlock_read_trylock, &l), -EBUSY);
	assert_int_equal(atomic_load(&w.got_it), 0);

	assert_int_equal(rwlock_read_unlock(&l), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&w.got_it), 1);
	assert_int_equal(atomic_load(&l.word), 0);
	assert_int_equal(atomic_load(&thread_errors), 0);
}

static void test_relocking_own_write_lock_is_a_deadlock_error(void **state)
{
	struct rwlock l;

	(void)state;
	rwlock_init(&l);
	assert_false(rwlock_write_held(&l));
	assert_int_equal(rwlock_write_lock(&l), 0);
	assert_true(rwlock_write_held(&l));

	assert_int_equal(rwlock_write_lock(&l), -EDEADLK);
	assert_int_equal(rwlock_read_lock(&l), -EDEADLK);
	assert_int_equal(rwlock_write_trylock(&l), -EDEADLK);
	assert_int_equal(rwlock_read_trylock(&l), -EDEADLK);
	/* The refusals left the lock exactly as it was. */
	assert_int_equal(atomic_load(&l.word), RWLOCK_WRITER);

	assert_int_equal(rwlock_write_unlock(&l), 0);
	assert_false(rwlock_write_held(&l));
	/* Released: the same thread may take it again, both ways. */
	assert_int_equal(rwlock_write_lock(&l), 0);
	assert_int_equal(rwlock_write_unlock(&l), 0);
	assert_int_equal(rwlock_read_lock(&l), 0);
	assert_int_equal(rwlock_read_unlock(&l), 0);
}

static void test_unlocking_what_you_do_not_hold_is_refused(void **state)
{
	struct rwlock l = RWLOCK_INIT;

	(void)state;
	assert_int_equal(rwlock_write_unlock(&l), -EPERM);
	assert_int_equal(rwlock_read_unlock(&l), -EPERM);

	assert_int_equal(rwlock_write_lock(&l), 0);
	/* Another thread cannot release our write lock... */
	assert_int_equal(call_elsewhere(rwlock_write_unlock, &l), -EPERM);
	assert_int_equal(call_elsewhere(rwlock_write_trylock, &l), -EBUSY);
	/* ...nor can a read unlock chip at the writer bit. */
	assert_int_equal(rwlock_read_unlock(&l), -EPERM);
	assert_int_equal(atomic_load(&l.word), RWLOCK_WRITER);
	assert_int_equal(rwlock_write_unlock(&l), 0);
	assert_int_equal(rwlock_write_unlock(&l), -EPERM);
	assert_int_equal(atomic_load(&l.word), 0);
}

static void test_trylock_edges(void **state)
{
	struct rwlock l = RWLOCK_INIT;

	(void)state;
	/* Readers share, and keep a writer out. */
	assert_int_equal(rwlock_read_trylock(&l), 0);
	assert_int_equal(call_elsewhere(rwlock_read_trylock, &l), 0);
	assert_int_equal(atomic_load(&l.word), 2);
	assert_int_equal(rwlock_write_trylock(&l), -EBUSY);
	assert_int_equal(call_elsewhere(rwlock_write_trylock, &l), -EBUSY);
	/* A failed write trylock leaves no writer bit behind. */
	assert_int_equal(atomic_load(&l.word), 2);
	assert_int_equal(rwlock_read_unlock(&l), 0);
	assert_int_equal(call_elsewhere(rwlock_read_unlock, &l), 0);
	assert_int_equal(rwlock_read_unlock(&l), -EPERM);

	/* A writer keeps everyone else out. */
	assert_int_equal(rwlock_write_trylock(&l), 0);
	assert_int_equal(call_elsewhere(rwlock_read_trylock, &l), -EBUSY);
	assert_int_equal(call_elsewhere(rwlock_write_trylock, &l), -EBUSY);
	assert_int_equal(rwlock_write_unlock(&l), 0);

	/* A saturated reader count refuses rather than overflow into the writer bit. */
	rwlock_init(&l);
	atomic_store(&l.word, RWLOCK_READERS_MAX);
	assert_int_equal(rwlock_read_trylock(&l), -EBUSY);
	assert_int_equal(atomic_load(&l.word), RWLOCK_READERS_MAX);
	assert_int_equal(rwlock_read_unlock(&l), 0);
	assert_int_equal(rwlock_read_trylock(&l), 0);
	assert_int_equal(atomic_load(&l.word), RWLOCK_READERS_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readers_never_see_a_half_done_write),
		cmocka_unit_test(test_writer_gets_in_despite_continuous_readers),
		cmocka_unit_test(test_waiting_writer_turns_new_readers_away),
		cmocka_unit_test(test_relocking_own_write_lock_is_a_deadlock_error),
		cmocka_unit_test(test_unlocking_what_you_do_not_hold_is_refused),
		cmocka_unit_test(test_trylock_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
