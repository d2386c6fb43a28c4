// SPDX-License-Identifier: GPL-2.0
/* Writer-preferring reader-writer spin lock; see rwlock.h for the design. */
#include <errno.h>
#include <sched.h>

#include "rwlock.h"

/*
 * The address of a thread-local byte names the calling thread: unique among
 * live threads, never 0, and free to compute (no gettid() system call).
 */
static _Thread_local char self_tag;

static inline uintptr_t self_id(void)
{
	return (uintptr_t)&self_tag;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/*
 * Spinning only pays while the holder is running; past the limit it is
 * likely descheduled (more threads than CPUs), so hand the CPU over.
 */
static inline void backoff(unsigned int *spins)
{
	if (++*spins < RWLOCK_SPIN_LIMIT) {
		cpu_relax();
	} else {
		*spins = 0;
		sched_yield();
	}
}

/*
 * Only the owner ever stores its own id, and it clears it before letting the
 * lock go, so a relaxed load can only equal self_id() while we hold it.
 */
static inline bool held_by_self(const struct rwlock *l)
{
	return atomic_load_explicit(&l->owner, memory_order_relaxed) == self_id();
}

void rwlock_init(struct rwlock *l)
{
	atomic_init(&l->word, 0);
	atomic_init(&l->owner, 0);
}

/* One attempt: 0, -EBUSY (writer present), -EAGAIN (lost a race, retry at once). */
static inline int read_try_once(struct rwlock *l, uint64_t *seen)
{
	uint64_t v = *seen;

	if (v & RWLOCK_WRITER)
		return -EBUSY;
	if (v == RWLOCK_READERS_MAX)
		return -EBUSY;
	if (atomic_compare_exchange_weak_explicit(&l->word, seen, v + 1, memory_order_acquire,
						  memory_order_relaxed))
		return 0;
	return -EAGAIN;
}

int rwlock_read_lock(struct rwlock *l)
{
	unsigned int spins = 0;
	uint64_t seen;
	int err;

	if (held_by_self(l))
		return -EDEADLK;
	seen = atomic_load_explicit(&l->word, memory_order_relaxed);
	for (;;) {
		err = read_try_once(l, &seen);
		if (!err)
			return 0;
		if (err == -EBUSY) {
			backoff(&spins);
			seen = atomic_load_explicit(&l->word, memory_order_relaxed);
		}
		/* -EAGAIN: the failed CAS already refreshed seen. */
	}
}

int rwlock_read_trylock(struct rwlock *l)
{
	uint64_t seen;
	int err;

	if (held_by_self(l))
		return -EDEADLK;
	seen = atomic_load_explicit(&l->word, memory_order_relaxed);
	/* Retrying only after another reader moved the count is lock-free. */
	do {
		err = read_try_once(l, &seen);
	} while (err == -EAGAIN);
	return err;
}

int rwlock_read_unlock(struct rwlock *l)
{
	uint64_t seen = atomic_load_explicit(&l->word, memory_order_relaxed);

	/*
	 * A CAS rather than a blind decrement, so an unbalanced unlock is
	 * refused instead of borrowing from the writer bit.
	 */
	do {
		if ((seen & RWLOCK_READERS_MAX) == 0)
			return -EPERM;
	} while (!atomic_compare_exchange_weak_explicit(
		&l->word, &seen, seen - 1, memory_order_release, memory_order_relaxed));
	return 0;
}

int rwlock_write_lock(struct rwlock *l)
{
	unsigned int spins = 0;
	uint64_t seen;

	if (held_by_self(l))
		return -EDEADLK;
	seen = atomic_load_explicit(&l->word, memory_order_relaxed);
	for (;;) {
		if (seen & RWLOCK_WRITER) {
			backoff(&spins);
			seen = atomic_load_explicit(&l->word, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&l->word, &seen, seen | RWLOCK_WRITER,
							  memory_order_acquire,
							  memory_order_relaxed))
			break;
	}
	atomic_store_explicit(&l->owner, self_id(), memory_order_relaxed);

	/*
	 * The bit is ours and keeps new readers out; the acquire load pairs
	 * with each leaving reader's release so their reads happen before our
	 * writes.
	 */
	spins = 0;
	while (atomic_load_explicit(&l->word, memory_order_acquire) != RWLOCK_WRITER)
		backoff(&spins);
	return 0;
}

int rwlock_write_trylock(struct rwlock *l)
{
	uint64_t expected = 0;

	if (held_by_self(l))
		return -EDEADLK;
	if (!atomic_compare_exchange_strong_explicit(&l->word, &expected, RWLOCK_WRITER,
						     memory_order_acquire, memory_order_relaxed))
		return -EBUSY;
	atomic_store_explicit(&l->owner, self_id(), memory_order_relaxed);
	return 0;
}

int rwlock_write_unlock(struct rwlock *l)
{
	if (!held_by_self(l))
		return -EPERM;
	atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
	/* Readers and writers are kept out while the bit is set: the word is exactly it. */
	atomic_fetch_and_explicit(&l->word, ~RWLOCK_WRITER, memory_order_release);
	return 0;
}

bool rwlock_write_held(const struct rwlock *l)
{
	return held_by_self(l);
}
