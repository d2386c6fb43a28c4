/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bring one rule set (the tries of set A or B, and its flat table) from
 * what it holds to a wanted rule array: the diff, written by up to four
 * threads that pull prefix ranges from a shared atomic counter, and the set's
 * new table made by a job of its own.
 */
#ifndef IPBLOCK_SYNC_H
#define IPBLOCK_SYNC_H

#include <stddef.h>

#include "pins.h"
#include "ruleset.h"
#include "tables.h"

/* What sync_set() does for the set's flat table. */
enum sync_tables {
	SYNC_TABLES_NONE, /* nothing: the caller sees to it */
	/*
	 * A new table holding want, not yet live (tables_publish()): the
	 * other set's table copied and the diff from judged applied, or,
	 * when much changes or the copy's slots would be too full, compiled
	 * afresh.
	 */
	SYNC_TABLES_NEW,
	SYNC_TABLES_BUILD, /* a new table compiled afresh from want, whatever the diff */
};

/*
 * Bring set from have (its trie's exact content, sorted) to want[0..nw)
 * (sorted, unique, ids given).  Deletes go first, all of them, so that a
 * trie never holds more than the larger of the two on the way.  judged is
 * what the other set's table was compiled from (the rules judged now),
 * which SYNC_TABLES_NEW copies (NULL: have; the trie of an inactive set
 * may hold less).  The set must be one no packet reads.  On an error the tries stand
 * somewhere between have and want, and the set's new table is to be freed.
 */
int sync_set(const struct pins *p, struct tables *t, int set, const struct ruleset *have,
	     const struct ruleset *judged, const struct rule *want, size_t nw,
	     enum sync_tables how);

#endif /* IPBLOCK_SYNC_H */
