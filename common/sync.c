// SPDX-License-Identifier: GPL-2.0
/* Bring one set to a wanted rule array: writer threads and the tables' job; see sync.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "sync.h"
#include "trie.h"

/* --- the tries: writers pulling prefix ranges -------------------------------------- */

/* One writer's share of a sync phase: a prefix range of have and want. */
struct sync_job {
	const struct pins *pins;
	int set;
	bool del;
	const struct rule *have, *want;
	size_t nh, nw;
	int ret;
};

static int batch_old(const struct rule *old, void *ctx)
{
	return trie_batch_add(ctx, old);
}

static int batch_new(const struct rule *new, void *ctx)
{
	return trie_batch_add(ctx, new);
}

static int batch_changed(const struct rule *old, const struct rule *new, void *ctx)
{
	(void)old;
	return trie_batch_add(ctx, new);
}

static void sync_job_run(struct sync_job *j)
{
	static const struct ruleset_diff dels = { .gone = batch_old };
	static const struct ruleset_diff puts = { .added = batch_new, .changed = batch_changed };
	struct trie_batch *b = trie_batch_new(j->pins, j->set, j->del);

	j->ret = -ENOMEM;
	if (!b)
		return;
	j->ret = ruleset_diff(j->have, j->nh, j->want, j->nw, j->del ? &dels : &puts, b);
	if (!j->ret)
		j->ret = trie_batch_flush(b);
	trie_batch_free(b);
}

#define MAX_WRITERS 4

/* Below this many rules a sync is not worth a thread. */
#define MIN_THREADED 32768

/*
 * Writers for a sync of this size.  The trie's lock covers only the walk;
 * copying in, allocating and the syscall itself run in parallel, so a
 * second writer on the same trie pays (README: Design).
 */
static size_t writers_for(size_t work)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (work < MIN_THREADED || cpus < 2)
		return 1;
	return cpus < MAX_WRITERS ? (size_t)cpus : MAX_WRITERS;
}

/* Ranges per writer: a writer whose ranges turn out cheap takes more. */
#define CHUNKS_PER_WRITER 8

/*
 * The writers of one sync phase share a counter of range numbers: each
 * takes the next range until none is left.  Insert cost varies with where
 * a prefix lands in the trie and with contention on its lock, so pulling
 * work balances better than handing each writer a fixed share.  The ranges
 * are cut before the writers start, so handing one out is a fetch-add.
 */
struct sync_pool {
	struct sync_job *jobs;
	size_t *hs, *ws;     /* range t is have[hs[t], hs[t + 1]) and want[ws[t], ws[t + 1]) */
	size_t n;	     /* ranges */
	_Atomic size_t next; /* the next range to hand out */
	_Atomic int ret;
};

static void *sync_worker(void *arg)
{
	struct sync_pool *p = arg;
	size_t t;

	while ((t = atomic_fetch_add(&p->next, 1)) < p->n) {
		struct sync_job *j = &p->jobs[t];
		int none = 0;

		if (atomic_load(&p->ret))
			continue; /* drain: another range failed */
		sync_job_run(j);
		if (j->ret)
			atomic_compare_exchange_strong(&p->ret, &none, j->ret);
	}
	return NULL;
}

/*
 * Cut have and want into pool->n ranges: a boundary is a prefix of the
 * larger array and its place in the other, so every prefix falls in the
 * same range in both.
 */
static void cut_ranges(struct sync_pool *pool, const struct ruleset *have, const struct rule *want,
		       size_t nw)
{
	size_t n = pool->n;

	pool->hs[n] = have->n;
	pool->ws[n] = nw;
	for (size_t t = 1; t < n; t++) {
		if (nw >= have->n) {
			pool->ws[t] = t * nw / n;
			pool->hs[t] =
				ruleset_lower_bound(have->r, have->n, &want[pool->ws[t]].prefix);
		} else {
			pool->hs[t] = t * have->n / n;
			pool->ws[t] = ruleset_lower_bound(want, nw, &have->r[pool->hs[t]].prefix);
		}
	}
}

/* One phase (deletes, or puts) over every range, by k writers. */
static int run_phase(struct sync_pool *pool, size_t k, const struct pins *p, int set, bool del,
		     const struct ruleset *have, const struct rule *want, size_t nw)
{
	pthread_t tid[MAX_WRITERS];
	bool started[MAX_WRITERS] = {};

	for (size_t t = 0; t < pool->n; t++) {
		pool->jobs[t] = (struct sync_job){
			.pins = p,
			.set = set,
			.del = del,
			/* An empty side may be a NULL array: no arithmetic on it. */
			.have = have->n ? have->r + pool->hs[t] : have->r,
			.nh = pool->hs[t + 1] - pool->hs[t],
			.want = nw ? want + pool->ws[t] : want,
			.nw = pool->ws[t + 1] - pool->ws[t],
		};
	}
	/* Before the writers start: pthread_create orders it before their fetch-adds. */
	atomic_store(&pool->next, 0);
	for (size_t t = 1; t < k; t++)
		started[t] = !pthread_create(&tid[t], NULL, sync_worker, pool);
	sync_worker(pool);
	for (size_t t = 1; t < k; t++)
		if (started[t])
			pthread_join(tid[t], NULL);
	return atomic_load(&pool->ret);
}

/* --- the table: made beside the tries -------------------------------------------- */

/*
 * The inactive set's new table, per family: the active set's copied and
 * the diff applied change by change (a delete asks the trie what covered
 * the prefix, so that waits for the trie), or compiled afresh when most of
 * the table changes or its slots would be too full: a build does not ask
 * the trie, so one thread does it while the writers fill the trie.
 */
enum follow_way {
	WAY_APPLY,
	WAY_BUILD,
};

struct follow_job {
	struct tables *tables;
	int set;
	struct {
		enum follow_way way;
		uint8_t slot_bits;
		struct ruleset_changes v; /* WAY_APPLY: the diff */
		const struct rule *want;  /* the family's part of want */
		size_t n;
	} fam[2];
	int ret;
};

/* Rules longer than /24 in r[0..n). */
static size_t long_rules(const struct rule *r, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += r[i].prefix.len > FLAT_REGION_BITS;
	return k;
}

/*
 * Copying the active table and applying the diff pays while the diff is a
 * small part of the table and the copy's slots hold the result; the
 * result's own slot size must also not be far smaller (a table that shrank
 * is compiled small).
 */
static int way_for(struct tables_family *tf, int set, const struct ruleset_changes *v,
		   const struct rule *want, size_t n, enum sync_tables how, uint8_t *bits)
{
	struct flat *act = tables_flat(tf, !set);
	struct flat_stats st = {};
	int ret = flat_slot_bits_for(long_rules(want, n), bits);

	if (ret)
		return ret;
	if (act)
		flat_stats(act, &st);
	if (how == SYNC_TABLES_BUILD || !act || v->n > n / 4 || act->slot_bits > *bits + 2 ||
	    (uint64_t)long_rules(want, n) + st.dead_slots > (1ull << act->slot_bits) / 2)
		return WAY_BUILD;
	*bits = act->slot_bits;
	return WAY_APPLY;
}

static void follow_free(struct follow_job *j)
{
	ruleset_changes_free(&j->fam[0].v);
	ruleset_changes_free(&j->fam[1].v);
	free(j);
}

/* What the table of set needs, per family. */
static int follow_plan(struct follow_job **jp, struct tables *t, int set,
		       const struct ruleset *judged, const struct rule *want, size_t nw,
		       enum sync_tables how)
{
	struct follow_job *j = calloc(1, sizeof(*j));
	int ret = 0;

	*jp = NULL;
	if (!j)
		return -ENOMEM;
	j->tables = t;
	j->set = set;
	for (int f = 0; f < 2 && !ret; f++) {
		int family = f ? AF_INET6 : AF_INET;
		struct tables_family *tf = tables_on(t, family);
		const struct rule *h;
		size_t nh;

		if (!tf)
			continue;
		ruleset_family(judged->r, judged->n, family, &h, &nh);
		ruleset_family(want, nw, family, &j->fam[f].want, &j->fam[f].n);
		ret = ruleset_changes(h, nh, j->fam[f].want, j->fam[f].n, &j->fam[f].v);
		if (!ret)
			ret = way_for(tf, set, &j->fam[f].v, j->fam[f].want, j->fam[f].n, how,
				      &j->fam[f].slot_bits);
		if (ret >= 0)
			j->fam[f].way = (enum follow_way)ret, ret = 0;
		if (j->fam[f].way != WAY_APPLY)
			ruleset_changes_free(&j->fam[f].v);
	}
	if (ret)
		follow_free(j);
	else
		*jp = j;
	return ret;
}

static bool follow_needs_trie(const struct follow_job *j)
{
	return j->fam[0].way == WAY_APPLY || j->fam[1].way == WAY_APPLY;
}

static int follow_family(struct tables_family *tf, int set, uint8_t bits,
			 const struct ruleset_changes *v, const struct rule *want, size_t n,
			 enum follow_way way)
{
	int ret;

	/* No rules: no table (its blocks, all zero, answer "no rule"); one comes with the first
	 * rule. */
	if (!n)
		return tables_free(tf, set);
	ret = tables_create(tf, set, bits, false);

	if (ret)
		return ret;
	if (way == WAY_BUILD)
		return flat_build(tables_flat(tf, set), want, n);
	ret = tables_copy(tf, set, !set);
	return ret ? ret : flat_apply(tables_flat(tf, set), v->c, v->n);
}

/* Run the families whose way needs the trie (trie) or not (!trie). */
static int follow_run(struct follow_job *j, bool trie)
{
	for (int f = 0; f < 2; f++) {
		struct tables_family *tf = tables_on(j->tables, f ? AF_INET6 : AF_INET);
		int ret;

		if (!tf || (j->fam[f].way == WAY_APPLY) != trie)
			continue;
		ret = follow_family(tf, j->set, j->fam[f].slot_bits, &j->fam[f].v, j->fam[f].want,
				    j->fam[f].n, j->fam[f].way);
		if (ret)
			return ret;
	}
	return 0;
}

static void *follow_thread(void *arg)
{
	struct follow_job *j = arg;

	j->ret = follow_run(j, false);
	return NULL;
}

/* --- both -------------------------------------------------------------------------------- */

int sync_set(const struct pins *p, struct tables *t, int set, const struct ruleset *have,
	     const struct ruleset *judged, const struct rule *want, size_t nw, enum sync_tables how)
{
	size_t k = writers_for(have->n + nw);
	struct sync_pool pool = { .n = k > 1 ? k * CHUNKS_PER_WRITER : 1 };
	struct follow_job *fj = NULL;
	bool early = false;
	pthread_t ft;
	int ret = -ENOMEM;

	pool.hs = calloc(pool.n + 1, sizeof(*pool.hs));
	pool.ws = calloc(pool.n + 1, sizeof(*pool.ws));
	pool.jobs = calloc(pool.n, sizeof(*pool.jobs));
	if (!pool.hs || !pool.ws || !pool.jobs)
		goto out;
	if (how != SYNC_TABLES_NONE) {
		ret = follow_plan(&fj, t, set, judged ? judged : have, want, nw, how);
		if (ret)
			goto out;
		/* Tables compiled afresh do not ask the trie: a thread builds them meanwhile. */
		early = !pthread_create(&ft, NULL, follow_thread, fj);
		if (!early)
			ret = follow_run(fj, false);
		if (ret)
			goto out;
	}
	cut_ranges(&pool, have, want, nw);
	ret = run_phase(&pool, k, p, set, true, have, want, nw);
	if (!ret)
		ret = run_phase(&pool, k, p, set, false, have, want, nw);
	if (early) {
		pthread_join(ft, NULL);
		if (!ret)
			ret = fj->ret;
	}
	/* A diff applied to a copy asks the trie: once the trie is what it compiles from. */
	if (!ret && fj && follow_needs_trie(fj))
		ret = follow_run(fj, true);
out:
	if (fj)
		follow_free(fj);
	free(pool.jobs);
	free(pool.hs);
	free(pool.ws);
	return ret;
}
