// SPDX-License-Identifier: GPL-2.0
/* The change protocol: one rule, whole sets, ids, the dirty mark; see maps.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

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
 * Start a change of the rules of family (AF_UNSPEC: both): map its tables,
 * recompile every table if the last writer died half-way, and leave the
 * dirty mark for as long as tries and tables may disagree.  *on: the
 * tables are in use.  Mapping touches every page table of the maps, so a
 * one-rule change maps only its own family.
 */
static int change_begin(struct maps *m, int family, bool *on)
{
	struct tables_family *t4 = NULL, *t6 = NULL;
	struct ipblock_config cfg;
	int ret = 0;

	*on = false;
	if (family != AF_INET6)
		ret = tables_map(&m->tables, m->pins, AF_INET, &t4);
	if (!ret && family != AF_INET)
		ret = tables_map(&m->tables, m->pins, AF_INET6, &t6);
	if (ret)
		return ret;
	*on = t4 || t6;
	if (!*on)
		return 0;
	m->tables.damaged = false;
	ret = pins_config_read(m->pins, &cfg);
	if (!ret && (cfg.flags & IPBLOCK_CONFIG_DIRTY)) {
		ret = tables_map(&m->tables, m->pins, AF_INET, &t4);
		if (!ret)
			ret = tables_map(&m->tables, m->pins, AF_INET6, &t6);
		if (!ret)
			ret = rebuild(m);
		if (!ret)
			ret = pins_config_read(m->pins, &cfg);
	}
	if (ret)
		return ret;
	cfg.flags |= IPBLOCK_CONFIG_DIRTY;
	return pins_config_write(m->pins, &cfg);
}

/*
 * End a change: clear the dirty mark unless the tables were left behind.
 * A mark that cannot be cleared only costs the next writer a rebuild.
 */
static void change_end(struct maps *m, bool on)
{
	struct ipblock_config cfg;

	if (!on || m->tables.damaged || pins_config_read(m->pins, &cfg))
		return;
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
 * Both tries of r's family, B first: the same size, so a full B means a
 * full A.  When A refuses, B is put back as it was; if even that fails the
 * tables are marked damaged, so that the dirty mark stays and the next
 * writer's rebuild brings B back to A.
 */
static int tries_set(struct maps *m, const struct rule *r, bool in_b, const struct rule *old_b)
{
	int ret = trie_put(m->pins, 1, r), undo;

	if (ret)
		return ret;
	ret = trie_put(m->pins, 0, r);
	if (ret) {
		undo = in_b ? trie_put(m->pins, 1, old_b) : trie_delete(m->pins, 1, &r->prefix);
		if (undo)
			m->tables.damaged = true;
	}
	return ret;
}

/*
 * With the flat tables, r gets an id (the one its prefix has, else a free
 * one) and both tables follow the tries: B first, then A, each an update
 * that judges every address by the old or the new rule at every instant.
 */
int maps_rule_set(struct maps *m, const struct rule *r)
{
	const struct cidr *p = &r->prefix;
	struct tables_family *tf;
	struct rule old[2], v = *r;
	bool in[2], on, fresh = false;
	int ret = change_begin(m, p->family, &on);

	if (ret)
		return ret;
	tf = tables_on(&m->tables, p->family);
	v.id = 0;
	for (int s = 0; s < 2; s++)
		in[s] = trie_get(m->pins, s, p, &old[s]) == 0;
	if (tf) {
		v.id = in[0] && old[0].id ? old[0].id : in[1] ? old[1].id : 0;
		if (!v.id) {
			ret = flat_ids_alloc(&tf->ids, p->len, &v.id);
			if (ret)
				goto out;
			fresh = true;
		}
	}
	ret = tries_set(m, &v, in[1], &old[1]);
	if (ret) {
		if (fresh)
			flat_ids_release(&tf->ids, v.id);
		goto out;
	}
	for (int s = 1; tf && s >= 0; s--) {
		int err = flat_add(&tf->t[s], &v, in[s] ? old[s].id : 0);

		if (err) {
			m->tables.damaged = true;
			ret = err;
		}
	}
out:
	change_end(m, on);
	return ret;
}

int maps_rule_delete(struct maps *m, const struct cidr *p)
{
	struct tables_family *tf;
	struct rule old[2];
	int ret[2], err;
	bool on;

	err = change_begin(m, p->family, &on);
	if (err)
		return err;
	tf = tables_on(&m->tables, p->family);
	for (int s = 1; s >= 0; s--) {
		bool had = trie_get(m->pins, s, p, &old[s]) == 0;

		ret[s] = trie_delete(m->pins, s, p);
		if (tf && had && !ret[s] && old[s].id) {
			/* The trie first: the table asks it for what p covered. */
			err = flat_delete(&tf->t[s], &old[s]);
			if (err && err != -ENOENT) {
				m->tables.damaged = true;
				ret[s] = err;
			}
		}
	}
	change_end(m, on);
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
 * (per-rule counters) follows the rule.  With the tries alone ids are 0.
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
			continue;
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
	return 0;
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
 * reserved, any other replaced by a free one.  The tables of the set being
 * compiled were cleared, so only the other set's rules hold ids.
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
	return ret;
}

/* --- recompiling the tables ---------------------------------------------------------- */

/* Empty set's tables (both families). */
static void clear_set(struct maps *m, int set)
{
	for (int f = 0; f < 2; f++) {
		struct tables_family *tf = tables_on(&m->tables, f ? AF_INET6 : AF_INET);

		if (tf)
			flat_clear(&tf->t[set]);
	}
}

/* Compile set's tables from w (the first pass), or copy the other set's (the second). */
static int fill_set(struct maps *m, int set, const struct ruleset *w, bool copy)
{
	int ret = 0;

	for (int f = 0; f < 2 && !ret; f++) {
		int family = f ? AF_INET6 : AF_INET;
		struct tables_family *tf = tables_on(&m->tables, family);
		const struct rule *part;
		size_t n;

		if (!tf)
			continue;
		ruleset_family(w->r, w->n, family, &part, &n);
		ret = copy ? flat_copy(&tf->t[set], &tf->t[!set])
			   : flat_build(&tf->t[set], part, n);
	}
	return ret;
}

/*
 * Compile both sets' tables from the tries anew.  The set not judged now
 * is brought to the rules judged now (trie and table), the program moves
 * to it, then the other set follows, and A ends active, as at rest.
 */
static int rebuild(struct maps *m)
{
	struct ruleset a = {}, b = {}, w = {};
	uint32_t active = 0;
	int ret = pins_active_set(m->pins, &active), x = active ? 0 : 1;

	if (!ret)
		ret = trie_read_both(m->pins, &a, &b);
	if (ret)
		return ret; /* nothing changed yet */
	ret = ruleset_copy(&w, active ? b.r : a.r, active ? b.n : a.n);
	for (int pass = 0; pass < 2 && !ret; pass++) {
		int set = pass ? !x : x;

		clear_set(m, set);
		if (pass == 0)
			ret = rebuild_ids(m, w.r, w.n);
		if (!ret)
			ret = sync_set(m->pins, &m->tables, set, set ? &b : &a, w.r, w.n,
				       SYNC_TABLES_NONE);
		if (!ret)
			ret = fill_set(m, set, &w, pass == 1);
		/* Then the program judges by the set just compiled; A last. */
		if (!ret && (pass == 0 || set == 0))
			ret = pins_set_active(m->pins, (uint32_t)set);
		if (!ret)
			grace_period();
	}
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
	bool on;
	int ret = change_begin(m, AF_UNSPEC, &on);

	if (!ret && !on)
		return -EOPNOTSUPP;
	if (!ret)
		ret = rebuild(m);
	change_end(m, on);
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
 * An earlier replace stopped with B active: B is what the program judges
 * by, so A catches up with it and takes over before B is touched; a then
 * holds what b holds.
 */
static int take_back_a(struct maps *m, struct ruleset *a, const struct ruleset *b)
{
	int ret = sync_set(m->pins, &m->tables, 0, a, b->r, b->n, SYNC_TABLES_COPY);

	if (!ret)
		ret = switch_to(m, 0);
	if (!ret)
		ret = ruleset_copy(a, b->r, b->n);
	return ret;
}

/*
 * The switch itself, given both sets' content (a, b).  B is brought to want
 * while A is active; then the program moves to B, and only after every run
 * that could still read A has ended is A brought to want and made active
 * again.  Every packet therefore meets the complete old set (A) or the
 * complete new one (B, then A).
 */
static int replace_with(struct maps *m, struct rule *want, size_t nw, struct ruleset *a,
			struct ruleset *b, struct maps_replace_stats *st)
{
	struct ruleset_delta d;
	uint32_t active = 0;
	int ret;

	ret = check_capacity(m, want, nw, st);
	if (!ret)
		ret = pins_active_set(m->pins, &active);
	if (!ret && active != 0)
		ret = take_back_a(m, a, b);
	if (!ret)
		ret = assign_ids(m, want, nw, a, b);
	if (ret)
		return ret;
	ruleset_delta(a->r, a->n, want, nw, &d);
	st->added = d.added;
	st->updated = d.changed;
	st->deleted = d.gone;

	/* B is inactive: a failure here changed no verdict. */
	ret = sync_set(m->pins, &m->tables, 1, b, want, nw, SYNC_TABLES_DIFF);
	if (ret) {
		/*
		 * Put B back; a rule not yet written is simply absent
		 * (ENOENT).  B's tables follow only a complete sync, so they
		 * never left b -- unless putting the trie back fails too:
		 * then the dirty mark stays and the next writer rebuilds.
		 */
		struct ruleset w = { want, nw, nw };

		if (sync_set(m->pins, &m->tables, 1, &w, b->r, b->n, SYNC_TABLES_NONE))
			m->tables.damaged = true;
		return ret;
	}
	ret = switch_to(m, 1);
	if (ret)
		return ret;
	/* At rest A and B agree and B's old content was already read: reuse it. */
	ret = sync_set(m->pins, &m->tables, 0, ruleset_equal(a->r, a->n, b->r, b->n) ? b : a, want,
		       nw, SYNC_TABLES_COPY);
	if (ret)
		return ret; /* B stays active; the next replace repairs A first */
	return switch_to(m, 0);
}

/* replace_with() inside a change: tables mapped, repaired, marked dirty. */
static int replace_change(struct maps *m, struct rule *want, size_t nw,
			  struct maps_replace_stats *st)
{
	struct ruleset a = {}, b = {};
	bool on;
	int ret = change_begin(m, AF_UNSPEC, &on);

	if (ret)
		return ret;
	ret = trie_read_both(m->pins, &a, &b);
	if (!ret)
		ret = replace_with(m, want, nw, &a, &b, st);
	if (ret)
		ids_reclaim(m);
	change_end(m, on);
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
	bool on;
	int ret = ruleset_sorted(rules, n, &sorted);

	if (ret)
		return ret;
	ret = change_begin(m, AF_UNSPEC, &on);
	if (ret)
		goto out;
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
	change_end(m, on);
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
