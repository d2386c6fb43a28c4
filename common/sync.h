/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bring one rule set (the tries and the flat tables of set A or B) from
 * what it holds to a wanted rule array: the diff, written by up to four
 * threads that pull prefix ranges from a lock-free queue, and the set's
 * tables brought along by a job of their own.
 */
#ifndef IPBLOCK_SYNC_H
#define IPBLOCK_SYNC_H

#include <stddef.h>

#include "pins.h"
#include "ruleset.h"
#include "tables.h"

/* What the set's flat tables do once sync_set() has brought its tries to want. */
enum sync_tables {
	SYNC_TABLES_NONE, /* nothing: the caller sees to them */
	SYNC_TABLES_DIFF, /* apply the diff, or compile afresh when most changes */
	SYNC_TABLES_COPY, /* as SYNC_TABLES_DIFF, or copy the other set's, which holds want */
};

/*
 * Bring set from have (its exact content, sorted) to want[0..nw) (sorted,
 * unique, ids given).  Deletes go first, all of them, so that a trie never
 * holds more than the larger of the two on the way.  The set must be one
 * no packet reads.  On an error the tries stand somewhere between have and
 * want; t->damaged says when the tables were left behind too.
 */
int sync_set(const struct pins *p, struct tables *t, int set, const struct ruleset *have,
	     const struct rule *want, size_t nw, enum sync_tables how);

#endif /* IPBLOCK_SYNC_H */
