// SPDX-License-Identifier: GPL-2.0
/* The change protocol: one rule, whole sets, ids, the dirty mark; see maps.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "hits.h"
#include "maps.h"
#include "sync.h"
#include "trie.h"

void maps_init(struct maps *m, const struct pins *p)
{
	*m = (struct maps){ .pins = p };
}

void maps_release(struct maps *m)
{
	tables_release(&m->tables);
}

/* --- a change: the dirty mark and the grace period ------------------------------ */

static int rebuild(struct maps *m);

/*
 * The active set has a table (the first change after the maps were made
 * gives it an empty one), and the other set none: a table a writer left
 * there (it died building it, or before freeing it) goes.
 */
static int tables_settle(struct maps *m, struct tables_family *tf)
{
	uint32_t active = 0;
	int ret = pins_active_set(m->pins, &active), x;

	if (ret)
		return ret;
	x = active ? 0 : 1;
	if (tf->set[x].has_table || tf->set[x].stale)
		ret = tables_free(tf, x);
	if (!ret && !tables_flat(tf, (int)active))
		ret = tables_create(tf, (int)active, FLAT_MIN_SLOT_BITS, true);
	if (!ret)
		ret = tables_hits_cover(tf);
	return ret;
}

/*
 * Start a change of the rules of family (AF_UNSPEC: both): map its tables,
 * recompile them if the last writer died half-way, and leave the dirty
 * mark for as long as tries and tables may disagree.  Mapping touches
 * every segment, so a one-rule change maps only its own family.
 */
static int change_begin(struct maps *m, int family)
{
	struct tables_family *t4 = NULL, *t6 = NULL;
	struct ipblock_config cfg;
	int ret = 0;

	m->tables.damaged = false;
	ret = pins_config_read(m->pins, &cfg);
	if (!ret && (cfg.flags & IPBLOCK_CONFIG_DIRTY))
		family = AF_UNSPEC;
	if (!ret && family != AF_INET6)
		ret = tables_map(&m->tables, m->pins, AF_INET, &t4);
	if (!ret && family != AF_INET)
		ret = tables_map(&m->tables, m->pins, AF_INET6, &t6);
	if (!ret && (cfg.flags & IPBLOCK_CONFIG_DIRTY))
		ret = rebuild(m);
	if (!ret && t4)
		ret = tables_settle(m, t4);
	if (!ret && t6)
		ret = tables_settle(m, t6);
	if (!ret)
		ret = pins_config_read(m->pins, &cfg);
	if (ret)
		return ret;
	cfg.flags |= IPBLOCK_CONFIG_DIRTY;
	ret = pins_config_write(m->pins, &cfg);
	m->marked = !ret;
	return ret;
}

/*
 * End a change: clear the dirty mark unless the tables were left behind.
 * A mark that cannot be cleared only costs the next writer a rebuild.
 */
static void change_end(struct maps *m)
{
	struct ipblock_config cfg;

	if (!m->marked || m->tables.damaged || pins_config_read(m->pins, &cfg))
		return;
	m->marked = false;
	cfg.flags &= ~IPBLOCK_CONFIG_DIRTY;
	pins_config_write(m->pins, &cfg);
}

/*
 * After a switch, a program run that read the old active_set may still be
 * looking up in the set just left; that set must not change until the run
 * is over.  XDP runs inside an RCU read-side section, and the kernel ends
 * every update of a map-in-map with synchronize_rcu() so that user space
 * knows no program still sees the old inner map: one such update on a
 * throw-away map is a grace period on demand.  Kernels or sandboxes that
 * refuse it get a pause far longer than any program run instead.
 */
static void grace_period(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts);
	int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ipblock_gp_in", 4, 4, 1, NULL);
	int outer = -1;
	__u32 zero = 0;

	if (inner >= 0) {
		opts.inner_map_fd = inner;
		outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "ipblock_gp", 4, 4, 1, &opts);
	}
	if (outer < 0 || bpf_map_update_elem(outer, &zero, &inner, BPF_ANY)) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	if (outer >= 0)
		close(outer);
	if (inner >= 0)
		close(inner);
}

/* Switch the program to set, then wait until no run can still be in the other. */
static int switch_to(struct maps *m, uint32_t set)
{
	int ret = pins_set_active(m->pins, set);

	if (!ret)
		grace_period();
	return ret;
}

/* --- one rule ------------------------------------------------------------------------ */

/*
 * Both tries of r's family, the inactive first: the same size, so a full
 * inactive trie means a full active one.  When the active refuses, the
 * inactive is put back as it was; if even that fails the tables are
 * marked damaged, so that the dirty mark stays and the next writer's
 * rebuild brings it back to the active one.
 */
static int tries_set(struct maps *m, int active, const struct rule *r, bool in_x,
		     const struct rule *old_x)
{
	int x = !active, ret = trie_put(m->pins, x, r), undo;

	if (ret)
		return ret;
	ret = trie_put(m->pins, active, r);
	if (ret) {
		undo = in_x ? trie_put(m->pins, x, old_x) : trie_delete(m->pins, x, &r->prefix);
		if (undo)
			m->tables.damaged = true;
	}
	return ret;
}

static int regrow(struct maps *m);

/*
 * Zero the counters of the ids among r[0..n) that counted for another rule
 * before (FLAT_RULE_RESET), while no table holds them yet, so that a rule's
 * counters count that rule only.
 */
static int ids_zero_hits(struct maps *m, const struct rule *r, size_t n)
{
	uint32_t *ids = NULL;
	int ret = 0;

	for (int f = 0; f < 2 && !ret; f++) {
		int family = f ? AF_INET6 : AF_INET;
		struct tables_family *tf = tables_on(&m->tables, family);
		size_t k = 0;

		if (!tf)
			continue;
		for (size_t i = 0; i < n; i++) {
			uint32_t id = r[i].id;

			if (r[i].prefix.family != family || !id || id >= tf->ids.n ||
			    !(tf->ids.rules[id].flags & FLAT_RULE_RESET))
				continue;
			if (!ids && !(ids = malloc(n * sizeof(*ids))))
				return -ENOMEM;
			ids[k++] = id;
		}
		ret = hits_zero(m->pins, family, ids, k);
		for (size_t i = 0; i < k && !ret; i++)
			tf->ids.rules[ids[i]].flags &= ~FLAT_RULE_RESET;
	}
	free(ids);
	return ret;
}

/*
 * r gets an id (the one its prefix has, else a free one), both tries take
 * it and the active table follows, an update that judges every address by
 * the old or the new rule at every instant.  A table whose slots are too
 * full for it is compiled afresh, bigger, from the tries (which hold r
 * already), and the program switched to it.
 */
int maps_rule_set(struct maps *m, const struct rule *r)
{
	const struct cidr *p = &r->prefix;
	struct tables_family *tf;
	struct rule old[2], v = *r;
	bool in[2], fresh = false;
	uint32_t active = 0;
	int ret = change_begin(m, p->family);

	if (!ret)
		ret = pins_active_set(m->pins, &active);
	if (ret)
		goto out;
	tf = tables_on(&m->tables, p->family);
	for (int s = 0; s < 2; s++)
		in[s] = trie_get(m->pins, s, p, &old[s]) == 0;
	v.id = in[active] && old[active].id ? old[active].id : in[!active] ? old[!active].id : 0;
	if (!v.id) {
		ret = flat_ids_alloc(&tf->ids, p->len, &v.id);
		if (ret)
			goto out;
		fresh = true;
		ret = ids_zero_hits(m, &v, 1);
		if (ret) {
			flat_ids_release(&tf->ids, v.id);
			goto out;
		}
	}
	ret = tries_set(m, (int)active, &v, in[!active], &old[!active]);
	if (ret) {
		if (fresh)
			flat_ids_release(&tf->ids, v.id);
		goto out;
	}
	ret = flat_add(tables_flat(tf, (int)active), &v, in[active] ? old[active].id : 0);
	if (ret == -ENOBUFS)
		ret = regrow(m);
	else if (ret)
		m->tables.damaged = true;
out:
	change_end(m);
	return ret;
}

/*
 * Whether a table's slots are so empty that a smaller one pays: more than
 * four times the size a table compiled for its rules would get (load under
 * 1/16), the same test sync.c makes before copying a table.
 */
static bool too_empty(struct flat *t)
{
	struct flat_stats st;
	uint8_t bits;

	flat_stats(t, &st);
	return !flat_slot_bits_for(st.long_rules, &bits) && t->slot_bits > bits + 2;
}

int maps_rule_delete(struct maps *m, const struct cidr *p)
{
	struct tables_family *tf;
	struct rule old[2];
	uint32_t active = 0;
	int ret[2] = { -ENOENT, -ENOENT }, err;

	err = change_begin(m, p->family);
	if (!err)
		err = pins_active_set(m->pins, &active);
	if (err) {
		change_end(m);
		return err;
	}
	tf = tables_on(&m->tables, p->family);
	for (int k = 0; k < 2; k++) {
		int s = k ? (int)active : !active;
		bool had = trie_get(m->pins, s, p, &old[s]) == 0;

		ret[s] = trie_delete(m->pins, s, p);
		if (s == (int)active && had && !ret[s] && old[s].id) {
			/* The trie first: the table asks it for what p covered. */
			err = flat_delete(tables_flat(tf, s), &old[s]);
			if (err && err != -ENOENT) {
				m->tables.damaged = true;
				ret[s] = err;
			} else if (too_empty(tables_flat(tf, s))) {
				/* Memory follows the rules down too. */
				regrow(m);
			}
		}
	}
	change_end(m);
	/* Gone from either set is a delete; absent from both is -ENOENT. */
	if (ret[0] == 0 || ret[1] == 0)
		return ret[0] && ret[0] != -ENOENT   ? ret[0]
		       : ret[1] && ret[1] != -ENOENT ? ret[1]
						     : 0;
	return ret[0];
}

/* --- rule ids ------------------------------------------------------------------------ */

/*
 * Give every rule of want its id: the one its prefix has in the set judged
 * now, else in the other set, else a free one.  A prefix is one rule in
 * both sets and keeps its id across a replace, so what is indexed by id
 * (per-rule counters) follows the rule.
 */
static int assign_ids(struct maps *m, struct rule *want, size_t nw, const struct ruleset *act,
		      const struct ruleset *other)
{
	size_t i = 0, j = 0;

	for (size_t k = 0; k < nw; k++) {
		struct rule *r = &want[k];
		struct tables_family *tf = tables_on(&m->tables, r->prefix.family);
		uint32_t id = 0;
		int ret;

		r->id = 0;
		if (!tf)
			return -EINVAL;
		while (i < act->n && cidr_compare(&act->r[i].prefix, &r->prefix) < 0)
			i++;
		while (j < other->n && cidr_compare(&other->r[j].prefix, &r->prefix) < 0)
			j++;
		if (i < act->n && !cidr_compare(&act->r[i].prefix, &r->prefix))
			id = act->r[i].id;
		if (!id && j < other->n && !cidr_compare(&other->r[j].prefix, &r->prefix))
			id = other->r[j].id;
		if (!id) {
			ret = flat_ids_alloc(&tf->ids, r->prefix.len, &id);
			if (ret)
				return ret;
		}
		r->id = id;
	}
	return ids_zero_hits(m, want, nw);
}

/* Ids no rule holds any more at the end of the ids give their memory back. */
static void ids_trim(struct maps *m)
{
	for (int f = 0; f < 2; f++) {
		struct tables_family *tf = tables_on(&m->tables, f ? AF_INET6 : AF_INET);

		/* Failing only costs memory until the next replace. */
		if (tf)
			tables_ids_trim(tf);
	}
}

/* Forget ids reserved but never given to a rule (after a failed change). */
static void ids_reclaim(struct maps *m)
{
	for (int f = 0; f < 2; f++) {
		struct tables_family *tf = tables_on(&m->tables, f ? AF_INET6 : AF_INET);

		if (tf)
			flat_ids_reclaim(&tf->ids);
	}
}

/*
 * Make the ids of w (the rules judged now) usable for a rebuild: a valid
 * id (nonzero, in range, not already taken by an earlier rule) is kept and
 * reserved, any other replaced by a free one.  The set being compiled has
 * no table, so only the other set's rules hold ids.
 */
#define KEPT 0x80000000u

static int rebuild_ids(struct maps *m, struct rule *w, size_t n)
{
	uint8_t *seen[2] = {};
	int ret = 0;

	ids_reclaim(m);
	for (int f = 0; f < 2 && !ret; f++) {
		struct tables_family *tf = tables_on(&m->tables, f ? AF_INET6 : AF_INET);

		if (tf && !(seen[f] = calloc(tf->ids.n / 8 + 1, 1)))
			ret = -ENOMEM;
	}
	/* Keep the valid ids first, so that none is handed to another rule. */
	for (int pass = 0; pass < 2 && !ret; pass++) {
		for (size_t k = 0; k < n && !ret; k++) {
			int f = w[k].prefix.family == AF_INET ? 0 : 1;
			struct tables_family *tf = tables_on(&m->tables, w[k].prefix.family);
			uint32_t id = w[k].id;
			bool valid;

			if (!tf)
				continue;
			valid = id && id < tf->ids.n && !(seen[f][id / 8] & (1u << (id % 8)));
			if (pass == 0 && valid) {
				seen[f][id / 8] |= (uint8_t)(1u << (id % 8));
				tf->ids.rules[id].flags |= FLAT_RULE_RESERVED;
				w[k].id |= KEPT; /* ids stay below it */
			} else if (pass == 0) {
				w[k].id = 0;
			} else if (id & KEPT) {
				w[k].id = id & ~KEPT;
			} else {
				ret = flat_ids_alloc(&tf->ids, w[k].prefix.len, &w[k].id);
			}
		}
	}
	free(seen[0]);
	free(seen[1]);
	return ret ? ret : ids_zero_hits(m, w, n);
}

/* --- recompiling the tables ---------------------------------------------------------- */

/* Put the inactive set's new tables (both families) where the program finds them. */
static int publish(struct maps *m, int set)
{
	int ret = 0;

	for (int f = 0; f < 2 && !ret; f++) {
		struct tables_family *tf = tables_on(&m->tables, f ? AF_INET6 : AF_INET);

		if (tf)
			ret = tables_publish(tf, set);
	}
	return ret;
}

/* Free set's tables (both families): no packet reads the set any more. */
static int free_set(struct maps *m, int set)
{
	int ret = 0;

	for (int f = 0; f < 2; f++) {
		struct tables_family *tf = tables_on(&m->tables, f ? AF_INET6 : AF_INET);
		int err = tf ? tables_free(tf, set) : 0;

		if (err && !ret)
			ret = err;
	}
	return ret;
}

/*
 * Compile the tables anew from the active set's trie, with the atomicity of
 * a replace: the inactive set gets that trie's rules and a table compiled
 * from them, the program moves to it, and the old table goes.
 */
static int rebuild(struct maps *m)
{
	struct ruleset a = {}, b = {}, w = {};
	uint32_t active = 0;
	int ret = pins_active_set(m->pins, &active), x = active ? 0 : 1;

	if (!ret)
		ret = trie_read_both(m->pins, &a, &b);
	if (!ret)
		ret = ruleset_copy(&w, active ? b.r : a.r, active ? b.n : a.n);
	if (!ret)
		ret = free_set(m, x);
	if (!ret)
		ret = rebuild_ids(m, w.r, w.n);
	if (!ret)
		ret = sync_set(m->pins, &m->tables, x, x ? &b : &a, NULL, w.r, w.n,
			       SYNC_TABLES_BUILD);
	if (!ret)
		ret = publish(m, x);
	if (!ret)
		ret = switch_to(m, (uint32_t)x);
	if (!ret)
		ret = free_set(m, !x);
	/* The old set's trie takes the ids the rules were given. */
	if (!ret)
		ret = sync_set(m->pins, &m->tables, !x, x ? &a : &b, NULL, w.r, w.n,
			       SYNC_TABLES_NONE);
	if (ret)
		m->tables.damaged = true;
	ids_reclaim(m);
	ruleset_free(&a);
	ruleset_free(&b);
	ruleset_free(&w);
	return ret;
}

int maps_flat_rebuild(struct maps *m)
{
	int ret = change_begin(m, AF_UNSPEC);

	if (!ret)
		ret = rebuild(m);
	change_end(m);
	return ret;
}

/* --- whole sets ------------------------------------------------------------------------ */

/* Fill st's counts and capacities; -ENOSPC when want does not fit. */
static int check_capacity(struct maps *m, const struct rule *want, size_t nw,
			  struct maps_replace_stats *st)
{
	int ret;

	*st = (struct maps_replace_stats){};
	ret = pins_capacity(m->pins, AF_INET, &st->cap_v4);
	if (!ret)
		ret = pins_capacity(m->pins, AF_INET6, &st->cap_v6);
	if (ret)
		return ret;
	ruleset_count(want, nw, &st->v4, &st->v6);
	return st->v4 > st->cap_v4 || st->v6 > st->cap_v6 ? -ENOSPC : 0;
}

/*
 * The switch itself, given both sets' content (a, b).  The inactive set x
 * is brought to want (its trie, and a new table) while the active set
 * judges; then the program moves to x, and only after every run that could
 * still read the old set has ended does its table go and its trie follow.
 * Every packet therefore meets the complete old set or the complete new
 * one.
 */
static int replace_with(struct maps *m, struct rule *want, size_t nw, struct ruleset *a,
			struct ruleset *b, struct maps_replace_stats *st)
{
	struct ruleset_delta d;
	struct ruleset *act, *xs, kept = {};
	uint32_t active = 0;
	int ret, x;

	ret = check_capacity(m, want, nw, st);
	if (!ret)
		ret = pins_active_set(m->pins, &active);
	if (ret)
		return ret;
	x = active ? 0 : 1;
	act = active ? b : a;
	xs = x ? b : a;
	ret = assign_ids(m, want, nw, act, xs);
	if (ret)
		return ret;
	ruleset_delta(act->r, act->n, want, nw, &d);
	st->added = d.added;
	st->updated = d.changed;
	st->deleted = d.gone;

	/* x is inactive: a failure here changed no verdict. */
	ret = sync_set(m->pins, &m->tables, x, xs, act, want, nw, SYNC_TABLES_NEW);
	if (!ret)
		ret = publish(m, x);
	if (ret) {
		/*
		 * Put x back; a rule not yet written is simply absent
		 * (ENOENT).  If that fails too the dirty mark stays and the
		 * next writer rebuilds.
		 */
		struct ruleset w = { want, nw, nw };

		if (sync_set(m->pins, &m->tables, x, &w, NULL, xs->r, xs->n, SYNC_TABLES_NONE) ||
		    free_set(m, x))
			m->tables.damaged = true;
		return ret;
	}
	ret = switch_to(m, (uint32_t)x);
	if (!ret)
		ret = free_set(m, !x);
	/*
	 * The old set's trie only loses the prefixes the new set lacks, so that
	 * its memory follows a shrinking rule set; what it gains or changes
	 * waits for the next replace, which diffs against what it holds.  An
	 * import into an empty set thus fills one trie, not two.
	 */
	if (!ret)
		ret = ruleset_common(act->r, act->n, want, nw, &kept);
	if (!ret)
		ret = sync_set(m->pins, &m->tables, !x, act, NULL, kept.r, kept.n,
			       SYNC_TABLES_NONE);
	ruleset_free(&kept);
	if (ret)
		m->tables.damaged = true; /* the next writer's rebuild catches up */
	else
		ids_trim(m);
	return ret;
}

/*
 * The active table compiled afresh at the size its rules need (its slots
 * grown for one more rule, or shrunk after deletes): a replace with the
 * rules the program judges by now.
 */
static int regrow(struct maps *m)
{
	struct ruleset a = {}, b = {}, w = {};
	struct maps_replace_stats st;
	uint32_t active = 0;
	int ret = pins_active_set(m->pins, &active);

	if (!ret)
		ret = trie_read_both(m->pins, &a, &b);
	if (!ret)
		ret = ruleset_copy(&w, active ? b.r : a.r, active ? b.n : a.n);
	if (!ret)
		ret = replace_with(m, w.r, w.n, &a, &b, &st);
	if (ret)
		ids_reclaim(m);
	ruleset_free(&a);
	ruleset_free(&b);
	ruleset_free(&w);
	return ret;
}

/* replace_with() inside a change: tables mapped, repaired, marked dirty. */
static int replace_change(struct maps *m, struct rule *want, size_t nw,
			  struct maps_replace_stats *st)
{
	struct ruleset a = {}, b = {};
	int ret = change_begin(m, AF_UNSPEC);

	if (ret) {
		change_end(m);
		return ret;
	}
	ret = trie_read_both(m->pins, &a, &b);
	if (!ret)
		ret = replace_with(m, want, nw, &a, &b, st);
	if (ret)
		ids_reclaim(m);
	change_end(m);
	ruleset_free(&a);
	ruleset_free(&b);
	return ret;
}

int maps_replace_rules(struct maps *m, const struct rule *rules, size_t n,
		       struct maps_replace_stats *st)
{
	struct maps_replace_stats ignored;
	struct ruleset want = {};
	int ret = ruleset_sorted(rules, n, &want);

	/* A copy of ours in any case: the rules' ids are filled in. */
	if (!ret && !want.r)
		ret = ruleset_copy(&want, rules, n);
	if (ret)
		return ret;
	/* A list that cannot fit is refused before the sets are read. */
	ret = check_capacity(m, want.r, want.n, st ? st : &ignored);
	if (!ret)
		ret = replace_change(m, want.r, want.n, st ? st : &ignored);
	ruleset_free(&want);
	return ret;
}

int maps_import_rules(struct maps *m, const struct rule *rules, size_t n,
		      struct maps_replace_stats *st)
{
	struct maps_replace_stats ignored;
	struct ruleset a = {}, b = {}, want = {}, sorted;
	uint32_t active = 0;
	int ret = ruleset_sorted(rules, n, &sorted);

	if (ret)
		return ret;
	ret = change_begin(m, AF_UNSPEC);
	if (ret) {
		change_end(m);
		goto out;
	}
	ret = pins_active_set(m->pins, &active);
	if (!ret)
		ret = trie_read_both(m->pins, &a, &b);
	/* The union is taken over what the program judges by now. */
	if (!ret)
		ret = ruleset_merge(active ? b.r : a.r, active ? b.n : a.n,
				    sorted.r ? sorted.r : rules, n, &want);
	if (!ret)
		ret = replace_with(m, want.r, want.n, &a, &b, st ? st : &ignored);
	if (ret)
		ids_reclaim(m);
	change_end(m);
out:
	ruleset_free(&a);
	ruleset_free(&b);
	ruleset_free(&want);
	ruleset_free(&sorted);
	return ret;
}

/* Every rule goes, as one replace: no packet meets half the rules. */
int maps_flush(struct maps *m, size_t *removed)
{
	struct maps_replace_stats st = {};
	int ret = maps_replace_rules(m, NULL, 0, &st);

	if (removed)
		*removed = ret ? 0 : st.deleted;
	return ret;
}
