/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The change protocol: every change of the rules goes through here, so
 * that every packet is judged by a complete rule set at every instant.
 * One rule at a time (add or update, delete), or a whole set at once
 * (replace, import, flush) by the switch between set A and set B; rule ids
 * handed out and kept; the dirty mark that lets the next writer repair
 * what a writer killed half-way left; the grace period after each switch.
 * Callers hold the pin directory's lock (pins_lock()) around each change.
 */
#ifndef IPBLOCK_MAPS_H
#define IPBLOCK_MAPS_H

#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "pins.h"
#include "ruleset.h"
#include "tables.h"

/*
 * A process's handle for changing the rules: the maps, and this process's
 * mapping of their flat tables (made by the first change that needs it).
 * Not to be copied once used.
 */
struct maps {
	const struct pins *pins;
	struct tables tables;
	bool marked; /* this process set the dirty mark of the change under way */
};

/* Start a handle on p, which must outlive it. */
void maps_init(struct maps *m, const struct pins *p);

/* Drop this process's mapping of the tables; the handle may be used again. */
void maps_release(struct maps *m);

/*
 * Add or update one rule in both sets and their flat tables (r->id is
 * ignored: with the flat lookup the prefix keeps the id it has, else gets a
 * free one).  -ENOSPC when the family's tries are full; nothing changes then.
 */
int maps_rule_set(struct maps *m, const struct rule *r);

/* Delete one rule, by exact prefix, from both sets.  -ENOENT when absent. */
int maps_rule_delete(struct maps *m, const struct cidr *p);

/* What maps_replace_rules() and maps_import_rules() did, or would need. */
struct maps_replace_stats {
	size_t added, updated, deleted; /* prefixes, relative to the rule set before */
	size_t v4, v6;			/* rules per family in the new set, also on -ENOSPC */
	uint32_t cap_v4, cap_v6;	/* capacity per family */
};

/*
 * Make the rule set exactly rules[0..n) (sorted and unique; an unsorted
 * array is sorted on a copy, a repeated prefix is -EINVAL) so that every
 * packet is judged by the complete old set or the complete new one: bring
 * set B to the new rules, switch the program to B, bring A to them, switch
 * back.  -ENOSPC, before any change, when a family would exceed its
 * capacity (st says how many rules the set needs); on an error while B is
 * inactive B is put back and no verdict changed.  st may be NULL.  The
 * rules' ids are ignored: the maps give each prefix its id (the one it
 * has, else a free one).
 */
int maps_replace_rules(struct maps *m, const struct rule *rules, size_t n,
		       struct maps_replace_stats *st);

/*
 * Add rules[0..n) (sorted and unique, as above) to the current rule set,
 * replacing the action of prefixes already there, in one atomic switch:
 * no packet ever meets a half-imported list.  -ENOSPC before any change
 * when the union does not fit.
 */
int maps_import_rules(struct maps *m, const struct rule *rules, size_t n,
		      struct maps_replace_stats *st);

/*
 * Delete every rule of both families and sets, as a replace with the empty
 * set (no packet meets half the rules).  *removed (may be NULL) gets the count.
 */
int maps_flush(struct maps *m, size_t *removed);

/*
 * Recompile both sets' flat tables from the tries, with the atomicity of a
 * replace (every packet meets a complete table).  Writers run it
 * themselves when they find a change left half-done (IPBLOCK_CONFIG_DIRTY).
 * -EOPNOTSUPP for maps made for the tries alone.
 */
int maps_flat_rebuild(struct maps *m);

#endif /* IPBLOCK_MAPS_H */
