// SPDX-License-Identifier: GPL-2.0
/* The tests' random numbers (rng.h). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "rng.h"

uint64_t rng_state = 1;

void rng_seed(const char *name)
{
	const char *s = getenv(name);

	rng_state = s ? strtoull(s, NULL, 0)
		      : ((uint64_t)time(NULL) << 20 ^ (uint64_t)getpid()) * 2654435761u + 1;
	/* xorshift never leaves 0. */
	if (!rng_state)
		rng_state = 1;
	printf("# %s=%llu\n", name, (unsigned long long)rng_state);
}

uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

uint32_t below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}
