/* SPDX-License-Identifier: GPL-2.0 */
/* Small helpers shared by the bench programs (time, IP checksums). */
#ifndef IPBLOCK_BENCH_UTIL_H
#define IPBLOCK_BENCH_UTIL_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Monotonic time in seconds. */
static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Ones' complement sum of 16-bit big-endian words, not yet folded. */
static inline uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

/* Fold a sum16() into the checksum field's value (network order). */
static inline uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

#endif /* IPBLOCK_BENCH_UTIL_H */
