/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A writer-preferring reader-writer spin lock for short critical sections in
 * user space (the rule cache).
 *
 * The whole lock state is one 64-bit word, changed only by compare-and-swap:
 * bit 63 says a writer holds or is claiming the lock, bits 0..62 count the
 * readers inside.  A writer sets its bit first, which stops new readers, and
 * then waits for the readers already inside to drain; so a steady stream of
 * readers cannot starve it.  Waiters spin with a pause instruction for a
 * bounded number of rounds and then sched_yield(), so a holder that has been
 * descheduled gets its CPU back instead of watching a spinner burn it.
 *
 * The write owner is recorded so the two self-deadlocks a spin lock would
 * otherwise turn into a silent hang (write-after-write and read-after-write
 * by the same thread) come back as -EDEADLK.  Readers are only counted, not
 * named, so two misuses stay undetected and would hang: taking a read lock
 * already held for reading while a writer waits (readers must not nest), and
 * asking for the write lock while holding a read lock (no upgrades).
 */
#ifndef IPBLOCK_RWLOCK_H
#define IPBLOCK_RWLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct rwlock {
	_Atomic uint64_t word;	 /* writer bit | reader count */
	_Atomic uintptr_t owner; /* id of the write holder, 0 when none */
};

#define RWLOCK_WRITER	   (UINT64_C(1) << 63)
#define RWLOCK_READERS_MAX (RWLOCK_WRITER - 1)

/* Rounds of pause between two sched_yield() calls while waiting. */
#define RWLOCK_SPIN_LIMIT 128

/* clang-format off */
#define RWLOCK_INIT { 0, 0 }
/* clang-format on */

/* Prepare an unlocked lock (same as RWLOCK_INIT). */
void rwlock_init(struct rwlock *l);

/* Shared lock; waits while a writer holds or waits.  -EDEADLK if we hold it for writing. */
int rwlock_read_lock(struct rwlock *l);

/* Shared lock without waiting: -EBUSY when a writer holds or waits, -EDEADLK as above. */
int rwlock_read_trylock(struct rwlock *l);

/* Drop a shared lock; -EPERM when no reader is inside. */
int rwlock_read_unlock(struct rwlock *l);

/* Exclusive lock; waits for the writer then the readers.  -EDEADLK if we already hold it. */
int rwlock_write_lock(struct rwlock *l);

/* Exclusive lock without waiting: -EBUSY when anyone is inside, -EDEADLK as above. */
int rwlock_write_trylock(struct rwlock *l);

/* Drop the exclusive lock; -EPERM when the calling thread does not hold it. */
int rwlock_write_unlock(struct rwlock *l);

/* Whether the calling thread holds the write lock (for assertions). */
bool rwlock_write_held(const struct rwlock *l);

#endif /* IPBLOCK_RWLOCK_H */
