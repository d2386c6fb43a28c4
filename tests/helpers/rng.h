/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The tests' random numbers: xorshift64, one stream per process, seeded
 * from an environment variable or the clock and printed, so that a failing
 * run can be replayed with the seed it printed.
 */
#ifndef IPBLOCK_TEST_RNG_H
#define IPBLOCK_TEST_RNG_H

#include <stdint.h>

/* The stream's state; a test may set it (a forked child, a replay). */
extern uint64_t rng_state;

/* Seed from $name (decimal or 0x hex) or else the clock and pid; prints "# name=seed". */
void rng_seed(const char *name);

uint64_t rnd(void);

/* A number in [0, n); n > 0. */
uint32_t below(uint32_t n);

#endif /* IPBLOCK_TEST_RNG_H */
