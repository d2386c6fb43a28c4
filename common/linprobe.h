/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Linear probing's back-shift delete, for the open-addressing tables of the
 * rule cache and of the flat tables' per-region counters.
 */
#ifndef IPBLOCK_LINPROBE_H
#define IPBLOCK_LINPROBE_H

#include <stdint.h>

/*
 * Close the hole at slot i of a table of mask + 1 slots by pulling back the
 * later slots of its probe run whose home is not cyclically in (i, j]:
 * lookups stay right with no tombstones.  home(ctx, j) is slot j's home, or
 * -1 when slot j is empty (the run's end); move(ctx, from, to) copies a
 * slot.  Returns the slot left over, which the caller empties.
 */
static inline uint32_t linprobe_delete(uint32_t i, uint32_t mask, void *ctx,
				       int64_t (*home)(void *ctx, uint32_t j),
				       void (*move)(void *ctx, uint32_t from, uint32_t to))
{
	for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		int64_t k = home(ctx, j);

		if (k < 0)
			return i;
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		move(ctx, j, i);
		i = j;
	}
}

#endif /* IPBLOCK_LINPROBE_H */
