// SPDX-License-Identifier: GPL-2.0
/* The flat tables as this process maps them, and their segments; see tables.h. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "flat_store.h"
#include "hits.h"
#include "tables.h"
#include "trie.h"

/* One pool's segments: inner array value size and entries, table elements a segment. */
struct pool_geom {
	uint32_t value_size;
	uint32_t entries;
	uint32_t per_seg; /* chunks, records, slots, counters or ids */
	enum ipblock_flat_map map;
	const char *name; /* the inner maps' name, for bpftool */
};

static const struct pool_geom geoms[TABLES_KINDS] = {
	[TABLES_CHUNKS] = { FLAT_CHUNK_VALUE, FLAT_CHUNK_SEG_ELEMS, 1u << FLAT_CHUNK_SEG_SHIFT,
			    IPBLOCK_FLAT_CHUNKS, "ipblock_chunks" },
	[TABLES_EXT] = { FLAT_EXT_VALUE, FLAT_EXT_SEG_ELEMS, FLAT_EXT_SEG_ELEMS, IPBLOCK_FLAT_EXT,
			 "ipblock_ext" },
	[TABLES_SLOTS] = { FLAT_SLOT_VALUE, FLAT_SLOT_SEG_ELEMS, FLAT_SLOT_SEG_ELEMS,
			   IPBLOCK_FLAT_SLOTS, "ipblock_slots" },
	[TABLES_CNT] = { FLAT_CNT_VALUE, FLAT_CNT_SEG_ELEMS, FLAT_CNT_SEG_ELEMS, IPBLOCK_FLAT_CNT,
			 "ipblock_cnt" },
	[TABLES_IDS] = { FLAT_IDS_VALUE, FLAT_IDS_SEG_ELEMS, FLAT_IDS_SEG_ELEMS, IPBLOCK_FLAT_IDS,
			 "ipblock_ids" },
};

#define BLOCKS_BYTES (((uint64_t)FLAT_BLOCKS_ELEMS * FLAT_BLOCKS_VALUE + 4095) & ~4095ull)

/* Most threads put into or take out of an outer map at once. */
#define MAX_UPDATERS 16

static uint64_t seg_bytes(enum tables_pool_kind k)
{
	return ((uint64_t)geoms[k].value_size * geoms[k].entries + 4095) & ~4095ull;
}

static int outer_fd(const struct tables_family *tf, enum tables_pool_kind k)
{
	return pins_flat_fd(tf->pins, tf->family, geoms[k].map);
}

/* Where segment g of set's pool k sits in its outer map. */
static uint32_t outer_key(enum tables_pool_kind k, int set, uint32_t g)
{
	return k == TABLES_IDS ? g : (uint32_t)set * FLAT_SEGS + g;
}

static struct flat_hdr *hdr_of(const struct tables_family *tf, int set)
{
	return (struct flat_hdr *)&tf->blocks[FLAT_HDR_BASE + set * FLAT_HDR_ELEMS];
}

static uint32_t *blocks_of(const struct tables_family *tf, int set)
{
	return (uint32_t *)&tf->blocks[(uint32_t)set << (FLAT_BLOCK_BITS - 1)];
}

/* --- segments -------------------------------------------------------------------- */

static int pool_reserve(struct tables_pool *p, enum tables_pool_kind k)
{
	void *mem = mmap(NULL, seg_bytes(k) * FLAT_SEGS, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (mem == MAP_FAILED)
		return -errno;
	*p = (struct tables_pool){ .base = mem };
	return 0;
}

static void pool_release(struct tables_pool *p, enum tables_pool_kind k)
{
	for (uint32_t i = 0; i < p->queued; i++)
		close(p->fds[i]);
	free(p->fds);
	if (p->base)
		munmap(p->base, seg_bytes(k) * FLAT_SEGS);
	*p = (struct tables_pool){};
}

/* Map inner map fd as the pool's next segment. */
static int seg_map(struct tables_pool *p, enum tables_pool_kind k, int fd)
{
	void *at = p->base + (uint64_t)p->nsegs * seg_bytes(k);

	if (p->nsegs >= FLAT_SEGS)
		return -ENOSPC;
	if (mmap(at, seg_bytes(k), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
	    MAP_FAILED)
		return -errno;
	p->nsegs++;
	return 0;
}

/* Map the segments [from, to) that set's outer map already holds. */
static int pool_attach(struct tables_family *tf, struct tables_pool *p, enum tables_pool_kind k,
		       int set, uint32_t to)
{
	for (uint32_t g = p->nsegs; g < to; g++) {
		uint32_t key = outer_key(k, set, g), id;
		int fd, ret;

		if (bpf_map_lookup_elem(outer_fd(tf, k), &key, &id))
			return errno == ENOENT ? -EPROTO : -errno;
		fd = bpf_map_get_fd_by_id(id);
		if (fd < 0)
			return -errno;
		ret = seg_map(p, k, fd);
		close(fd);
		if (ret)
			return ret;
	}
	return 0;
}

/* How many segments the ids pool has: the outer map holds them from 0 on. */
static uint32_t ids_segments(const struct tables_family *tf)
{
	uint32_t g = 0, id;

	while (g < FLAT_SEGS && !bpf_map_lookup_elem(outer_fd(tf, TABLES_IDS), &g, &id))
		g++;
	return g;
}

struct outer_job {
	int fd;
	const uint32_t *keys;
	const int *vals; /* NULL: delete */
	size_t first, end;
	int ret;
};

/*
 * One batch call for the job's slice: Linux 6.8 and later wait for one
 * grace period per batch of a map-in-map, not one per element.  Where
 * batches are refused (older kernels) or stop half-way, the slice is done
 * again element by element, which is harmless: an update puts the same
 * value, a delete of what is gone is no error.
 */
static void *outer_worker(void *arg)
{
	struct outer_job *j = arg;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 count = (__u32)(j->end - j->first);
	int err;

	if (!count)
		return NULL;
	if (j->vals)
		err = bpf_map_update_batch(j->fd, &j->keys[j->first], &j->vals[j->first], &count,
					   &opts);
	else
		err = bpf_map_delete_batch(j->fd, &j->keys[j->first], &count, &opts);
	if (!err)
		return NULL;
	for (size_t i = j->first; i < j->end && !j->ret; i++) {
		err = j->vals ? bpf_map_update_elem(j->fd, &j->keys[i], &j->vals[i], BPF_ANY)
			      : bpf_map_delete_elem(j->fd, &j->keys[i]);
		if (err && !(errno == ENOENT && !j->vals))
			j->ret = -errno;
	}
	return NULL;
}

/* vals[i] to put at keys[i] of an outer map (vals NULL: delete keys[i]). */
struct outer_group {
	int fd;
	const uint32_t *keys;
	const int *vals;
	size_t n;
};

/*
 * Carry out groups of outer-map changes, all at once, by several threads,
 * each a slice of one group: the kernel ends every update of a map-in-map
 * (or every batch, from 6.8) with an RCU grace period, and concurrent
 * waits share one, so the pools of a table cost one wait, not one each.
 */
static int outer_groups(const struct outer_group *g, size_t ng)
{
	struct outer_job jobs[MAX_UPDATERS];
	pthread_t tid[MAX_UPDATERS];
	bool started[MAX_UPDATERS] = {};
	size_t k = 0, per;
	int ret = 0;

	if (ng > MAX_UPDATERS)
		return -EINVAL;
	per = ng ? MAX_UPDATERS / ng : 0;
	for (size_t i = 0; i < ng; i++) {
		size_t s = g[i].n < per ? g[i].n : per;

		for (size_t t = 0; t < s; t++)
			jobs[k++] = (struct outer_job){ .fd = g[i].fd,
							.keys = g[i].keys,
							.vals = g[i].vals,
							.first = t * g[i].n / s,
							.end = (t + 1) * g[i].n / s };
	}
	for (size_t t = 1; t < k; t++)
		started[t] = !pthread_create(&tid[t], NULL, outer_worker, &jobs[t]);
	/* A thread that did not start: its share is done here. */
	for (size_t t = 0; t < k; t++)
		if (!started[t])
			outer_worker(&jobs[t]);
	for (size_t t = 0; t < k; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		if (jobs[t].ret && !ret)
			ret = jobs[t].ret;
	}
	return ret;
}

static int outer_many(int fd, const uint32_t *keys, const int *vals, size_t n)
{
	struct outer_group g = { fd, keys, vals, n };

	return outer_groups(&g, 1);
}

/*
 * Grow pool k of set to segs segments: new inner maps, mapped at once;
 * into the outer map at once when live, else queued for tables_publish().
 */
static int pool_grow(struct tables_family *tf, struct tables_pool *p, enum tables_pool_kind k,
		     int set, uint32_t segs, bool live)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
	int ret = 0;

	if (segs > FLAT_SEGS)
		return -ENOSPC;
	if (segs <= p->nsegs)
		return 0;
	if (!live) {
		int *fds = realloc(p->fds, (p->queued + segs - p->nsegs) * sizeof(*fds));

		if (!fds)
			return -ENOMEM;
		p->fds = fds;
	}
	while (p->nsegs < segs && !ret) {
		int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, geoms[k].name, 4, geoms[k].value_size,
					geoms[k].entries, &opts);

		if (fd < 0)
			return -errno;
		ret = seg_map(p, k, fd);
		if (ret) {
			close(fd);
			break;
		}
		if (live) {
			uint32_t key = outer_key(k, set, p->nsegs - 1);

			if (bpf_map_update_elem(outer_fd(tf, k), &key, &fd, BPF_ANY))
				ret = -errno;
			close(fd);
		} else {
			p->fds[p->queued++] = fd;
		}
	}
	return ret;
}

/* The segments a pool needs for n of its elements. */
static uint32_t segs_for(enum tables_pool_kind k, uint64_t n)
{
	return (uint32_t)((n + geoms[k].per_seg - 1) / geoms[k].per_seg);
}

/* flat_mem.grow of a set's table: chunks and records. */
static int set_grow(void *ctx, enum flat_pool pool, uint64_t want, uint32_t *cap)
{
	struct tables_set *s = ctx;
	enum tables_pool_kind k = pool == FLAT_POOL_CHUNKS ? TABLES_CHUNKS : TABLES_EXT;
	/* A quarter more than asked: fewer grace periods while a pool fills. */
	uint32_t segs = segs_for(k, want + want / 4);
	struct tables_pool *p = &s->pool[k];
	int ret;

	if (segs > FLAT_SEGS)
		segs = FLAT_SEGS;
	if (segs < segs_for(k, want))
		return -ENOSPC;
	ret = pool_grow(s->fam, p, k, s->set, segs, s->live);
	if (ret)
		return ret;
	*cap = p->nsegs * geoms[k].per_seg;
	/* Chunk numbers fit 16 bits of a block entry's 31: no more than one per block. */
	if (k == TABLES_CHUNKS && *cap > FLAT_BLOCKS)
		*cap = FLAT_BLOCKS;
	return 0;
}

/* flat_mem.grow of the ids, which only user space reads: in the outer map at once. */
static int ids_grow(void *ctx, enum flat_pool pool, uint64_t want, uint32_t *cap)
{
	struct tables_family *tf = ctx;
	int ret;

	(void)pool;
	ret = pool_grow(tf, &tf->ids_pool, TABLES_IDS, 0, segs_for(TABLES_IDS, want), true);
	/* The ids' counters: before any of the new ids can judge a packet. */
	if (!ret)
		ret = hits_cover(tf->pins, tf->family, tf->ids_pool.nsegs);
	if (ret)
		return ret;
	*cap = tf->ids_pool.nsegs * geoms[TABLES_IDS].per_seg;
	tf->ids.rules = (struct flat_rule *)tf->ids_pool.base;
	return 0;
}

/* --- a set's table ------------------------------------------------------------------ */

static void set_release(struct tables_set *s)
{
	for (int k = 0; k < TABLES_IDS; k++)
		pool_release(&s->pool[k], k);
	memset(&s->t, 0, sizeof(s->t));
	s->has_table = false;
	s->live = false;
}

static int set_reserve(struct tables_set *s)
{
	int ret = 0;

	for (int k = 0; k < TABLES_IDS && !ret; k++)
		ret = pool_reserve(&s->pool[k], k);
	return ret;
}

/* Attach s->t to the set's memory as it is mapped now. */
static int set_attach(struct tables_family *tf, struct tables_set *s, uint8_t slot_bits)
{
	struct flat_area a = {
		.blocks = blocks_of(tf, s->set),
		.hdr = hdr_of(tf, s->set),
		.chunks = (uint32_t *)s->pool[TABLES_CHUNKS].base,
		.ext = (struct flat_ext *)s->pool[TABLES_EXT].base,
		.slots = (struct flat_slot *)s->pool[TABLES_SLOTS].base,
		.cnt = (uint64_t *)s->pool[TABLES_CNT].base,
		.chunk_cap = s->pool[TABLES_CHUNKS].nsegs * geoms[TABLES_CHUNKS].per_seg,
		.ext_cap = s->pool[TABLES_EXT].nsegs * geoms[TABLES_EXT].per_seg,
		.slot_bits = slot_bits,
	};
	int ret;

	if (a.chunk_cap > FLAT_BLOCKS)
		a.chunk_cap = FLAT_BLOCKS;
	s->mem = (struct flat_mem){ .grow = set_grow, .ctx = s };
	ret = flat_attach(&s->t, tf->family, &a, &tf->ids, (unsigned int)s->set, &s->mem,
			  trie_parent, &tf->trie_fd[s->set]);
	if (!ret)
		s->has_table = true;
	return ret;
}

/* Map the table the set's header describes, if any. */
static int set_map(struct tables_family *tf, int set)
{
	struct tables_set *s = &tf->set[set];
	uint32_t chunks, ext;
	uint8_t bits;
	int ret;

	flat_area_need(hdr_of(tf, set), &chunks, &ext, &bits);
	if (!bits)
		return 0;
	if (bits < FLAT_MIN_SLOT_BITS || bits > FLAT_MAX_SLOT_BITS)
		return -EPROTO;
	ret = set_reserve(s);
	if (!ret)
		ret = pool_attach(tf, &s->pool[TABLES_CHUNKS], TABLES_CHUNKS, set,
				  segs_for(TABLES_CHUNKS, chunks));
	if (!ret)
		ret = pool_attach(tf, &s->pool[TABLES_EXT], TABLES_EXT, set,
				  segs_for(TABLES_EXT, ext));
	if (!ret)
		ret = pool_attach(tf, &s->pool[TABLES_SLOTS], TABLES_SLOTS, set,
				  segs_for(TABLES_SLOTS, 1ull << bits));
	if (!ret)
		ret = pool_attach(tf, &s->pool[TABLES_CNT], TABLES_CNT, set,
				  segs_for(TABLES_CNT, 1ull << bits));
	if (!ret)
		ret = set_attach(tf, s, bits);
	if (ret)
		set_release(s);
	else
		s->live = true;
	return ret;
}

struct flat *tables_flat(struct tables_family *tf, int set)
{
	return tf->set[set].has_table ? &tf->set[set].t : NULL;
}

int tables_create(struct tables_family *tf, int set, uint8_t slot_bits, bool live)
{
	struct tables_set *s = &tf->set[set];
	int ret = 0;

	if (slot_bits < FLAT_MIN_SLOT_BITS || slot_bits > FLAT_MAX_SLOT_BITS)
		return -EINVAL;
	if (s->has_table || hdr_of(tf, set)->magic)
		ret = tables_free(tf, set);
	if (!ret)
		ret = set_reserve(s);
	if (!ret)
		ret = pool_grow(tf, &s->pool[TABLES_SLOTS], TABLES_SLOTS, set,
				segs_for(TABLES_SLOTS, 1ull << slot_bits), live);
	if (!ret)
		ret = pool_grow(tf, &s->pool[TABLES_CNT], TABLES_CNT, set,
				segs_for(TABLES_CNT, 1ull << slot_bits), live);
	if (!ret) {
		s->live = live;
		ret = set_attach(tf, s, slot_bits);
	}
	if (ret)
		set_release(s);
	return ret;
}

int tables_copy(struct tables_family *tf, int dst, int src)
{
	struct tables_set *d = &tf->set[dst], *s = &tf->set[src];
	uint8_t from = (uint8_t)(1u << src), to = (uint8_t)(1u << dst);
	int ret = 0;

	if (!d->has_table || !s->has_table || d->t.slot_bits != s->t.slot_bits || dst == src)
		return -EINVAL;
	for (int k = 0; k < TABLES_IDS && !ret; k++)
		ret = pool_grow(tf, &d->pool[k], k, dst, s->pool[k].nsegs, d->live);
	if (ret)
		return ret;
	for (int k = 0; k < TABLES_IDS; k++)
		memcpy(d->pool[k].base, s->pool[k].base, s->pool[k].nsegs * seg_bytes(k));
	memcpy(blocks_of(tf, dst), blocks_of(tf, src), FLAT_BLOCKS * sizeof(uint32_t));
	memcpy(hdr_of(tf, dst), hdr_of(tf, src), FLAT_HDR_ELEMS * FLAT_BLOCKS_VALUE);
	d->t.chunk_cap = s->t.chunk_cap;
	d->t.ext_cap = s->t.ext_cap;
	for (uint32_t i = 1; i < tf->ids.n; i++) {
		struct flat_rule *r = &tf->ids.rules[i];

		r->sets = (uint8_t)((r->sets & ~to) | (r->sets & from ? to : 0));
		r->deny_sets = (uint8_t)((r->deny_sets & ~to) | (r->deny_sets & from ? to : 0));
	}
	return 0;
}

int tables_publish(struct tables_family *tf, int set)
{
	struct tables_set *s = &tf->set[set];
	struct outer_group g[TABLES_IDS];
	uint32_t *keys = malloc(TABLES_IDS * FLAT_SEGS * sizeof(*keys));
	size_t ng = 0;
	int ret;

	if (!keys)
		return -ENOMEM;
	/* Every pool's queued segments into its outer map, in one go. */
	for (int k = 0; k < TABLES_IDS; k++) {
		struct tables_pool *p = &s->pool[k];
		uint32_t *kk = keys + (size_t)k * FLAT_SEGS;

		if (!p->queued)
			continue;
		for (uint32_t i = 0; i < p->queued; i++)
			kk[i] = outer_key(k, set, p->nsegs - p->queued + i);
		g[ng++] = (struct outer_group){ outer_fd(tf, k), kk, p->fds, p->queued };
	}
	ret = outer_groups(g, ng);
	free(keys);
	if (ret)
		return ret;
	for (int k = 0; k < TABLES_IDS; k++) {
		struct tables_pool *p = &s->pool[k];

		for (uint32_t i = 0; i < p->queued; i++)
			close(p->fds[i]);
		p->queued = 0;
	}
	s->live = true;
	return 0;
}

int tables_free(struct tables_family *tf, int set)
{
	struct tables_set *s = &tf->set[set];
	struct outer_group g[TABLES_IDS];
	uint32_t chunks, ext, *keys;
	uint8_t bits;
	int ret;

	/* What the header says was made, or what this process made. */
	flat_area_need(hdr_of(tf, set), &chunks, &ext, &bits);
	uint32_t n[TABLES_IDS] = {
		segs_for(TABLES_CHUNKS, chunks),
		segs_for(TABLES_EXT, ext),
		bits ? segs_for(TABLES_SLOTS, 1ull << bits) : 0,
		bits ? segs_for(TABLES_CNT, 1ull << bits) : 0,
	};

	keys = malloc(TABLES_IDS * FLAT_SEGS * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (int k = 0; k < TABLES_IDS; k++) {
		uint32_t m = n[k] > s->pool[k].nsegs ? n[k] : s->pool[k].nsegs;
		uint32_t *kk = keys + (size_t)k * FLAT_SEGS;

		for (uint32_t i = 0; i < m; i++)
			kk[i] = outer_key(k, set, i);
		g[k] = (struct outer_group){ outer_fd(tf, k), kk, NULL, m };
	}
	ret = outer_groups(g, TABLES_IDS);
	free(keys);
	if (ret)
		return ret;
	set_release(s);
	s->stale = false;
	memset(blocks_of(tf, set), 0, FLAT_BLOCKS * sizeof(uint32_t));
	memset(hdr_of(tf, set), 0, FLAT_HDR_ELEMS * FLAT_BLOCKS_VALUE);
	flat_ids_drop_set(&tf->ids, (unsigned int)set);
	return 0;
}

int tables_hits_cover(struct tables_family *tf)
{
	int ret = hits_cover(tf->pins, tf->family, tf->ids_pool.nsegs);

	return ret ? ret : hits_trim(tf->pins, tf->family, tf->ids_pool.nsegs);
}

int tables_ids_trim(struct tables_family *tf)
{
	struct tables_pool *p = &tf->ids_pool;
	uint32_t per = geoms[TABLES_IDS].per_seg, *keys, g;
	int ret;

	for (g = p->nsegs; g > 0; g--) {
		bool used = false;

		for (uint32_t i = (g - 1) * per; i < g * per && !used; i++)
			used = i && (tf->ids.rules[i].sets ||
				     (tf->ids.rules[i].flags & FLAT_RULE_RESERVED));
		if (used)
			break;
	}
	if (g == p->nsegs)
		return 0;
	keys = malloc((p->nsegs - g) * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (uint32_t k = g; k < p->nsegs; k++)
		keys[k - g] = outer_key(TABLES_IDS, 0, k);
	ret = outer_many(outer_fd(tf, TABLES_IDS), keys, NULL, p->nsegs - g);
	free(keys);
	/* Their counters go with them: ids handed out again start from zero. */
	if (!ret)
		ret = hits_trim(tf->pins, tf->family, g);
	if (ret)
		return ret;
	/* Unmapped back to the reservation: the range stays ours. */
	if (mmap(p->base + (uint64_t)g * seg_bytes(TABLES_IDS),
		 (uint64_t)(p->nsegs - g) * seg_bytes(TABLES_IDS), PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -errno;
	p->nsegs = g;
	tf->ids.n = g * per;
	if (tf->ids.n && tf->ids.rules[0].reserved >= tf->ids.n)
		tf->ids.rules[0].reserved = 0;
	return 0;
}

/* --- a family -------------------------------------------------------------------------- */

static struct tables_family *family_of(struct tables *t, int family)
{
	return &t->fam[family == AF_INET ? 0 : 1];
}

/* Undo a whole or half-made mapping of one family. */
static void family_unmap(struct tables_family *tf)
{
	for (int s = 0; s < 2; s++)
		set_release(&tf->set[s]);
	pool_release(&tf->ids_pool, TABLES_IDS);
	if (tf->blocks)
		munmap(tf->blocks, BLOCKS_BYTES);
	*tf = (struct tables_family){};
}

static int map_family(struct tables_family *tf, const struct pins *p, int family)
{
	uint32_t n = 0, active = 0;
	void *mem;
	int ret;

	tf->pins = p;
	tf->family = family;
	for (int s = 0; s < 2; s++) {
		tf->set[s].fam = tf;
		tf->set[s].set = s;
		tf->trie_fd[s] = pins_trie_fd(p, s, family);
	}
	ret = pins_entries(p, family == AF_INET ? IPBLOCK_MAP_FLAT4_BLOCKS : IPBLOCK_MAP_FLAT6_BLOCKS,
			   &n);
	if (ret)
		return ret;
	if (n != FLAT_BLOCKS_ELEMS)
		return -EPROTO;
	mem = mmap(NULL, BLOCKS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		   pins_flat_fd(p, family, IPBLOCK_FLAT_BLOCKS), 0);
	if (mem == MAP_FAILED)
		return -errno;
	tf->blocks = mem;
	ret = pool_reserve(&tf->ids_pool, TABLES_IDS);
	if (!ret)
		ret = pool_attach(tf, &tf->ids_pool, TABLES_IDS, 0, ids_segments(tf));
	if (ret)
		return ret;
	tf->ids_mem = (struct flat_mem){ .grow = ids_grow, .ctx = tf };
	flat_ids_attach(&tf->ids, tf->ids_pool.base,
			tf->ids_pool.nsegs * geoms[TABLES_IDS].per_seg, &tf->ids_mem);
	ret = pins_active_set(p, &active);
	for (int s = 0; s < 2 && !ret; s++) {
		ret = set_map(tf, s);
		if (ret && (uint32_t)s != active) {
			tf->set[s].stale = true;
			ret = 0;
		}
	}
	return ret;
}

int tables_map(struct tables *t, const struct pins *p, int family, struct tables_family **out)
{
	struct tables_family *tf = family_of(t, family);
	int ret;

	*out = NULL;
	if (tf->mapped) {
		*out = tf;
		return 0;
	}
	ret = map_family(tf, p, family);
	if (ret) {
		family_unmap(tf);
		return ret;
	}
	tf->mapped = true;
	*out = tf;
	return 0;
}

struct tables_family *tables_on(struct tables *t, int family)
{
	struct tables_family *tf = family_of(t, family);

	return tf->mapped ? tf : NULL;
}

void tables_release(struct tables *t)
{
	for (int f = 0; f < 2; f++)
		family_unmap(&t->fam[f]);
	t->damaged = false;
}

/*
 * memlock of an outer map and of every inner map it holds.  Each set's
 * segments sit at keys from set * FLAT_SEGS on, without holes (pools grow
 * and are freed from the end), so the walk stops at each run's first empty
 * key: one lookup per segment, not one per possible key (tens of thousands
 * of system calls, which cost seconds where system calls are dear, e.g.
 * under emulation with page-table isolation).
 */
static int outer_memory(int fd, uint32_t entries, uint64_t *bytes)
{
	uint64_t b = 0;
	int ret = pins_memlock(fd, &b);

	*bytes += b;
	for (uint32_t base = 0; base < entries && !ret; base += FLAT_SEGS) {
		for (uint32_t key = base; key < base + FLAT_SEGS && key < entries && !ret; key++) {
			uint32_t id;
			int inner;

			if (bpf_map_lookup_elem(fd, &key, &id))
				break;
			inner = bpf_map_get_fd_by_id(id);
			if (inner < 0)
				continue; /* freed meanwhile */
			b = 0;
			ret = pins_memlock(inner, &b);
			close(inner);
			*bytes += b;
		}
	}
	return ret;
}

int tables_memory(const struct pins *p, struct tables_memory *out)
{
	int ret = 0;

	*out = (struct tables_memory){};
	for (int i = 0; i < IPBLOCK_MAP_COUNT && !ret; i++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		if (bpf_obj_get_info_by_fd(p->fd[i], &info, &len))
			return -errno;
		if (info.type == BPF_MAP_TYPE_LPM_TRIE)
			ret = pins_memlock(p->fd[i], &out->tries);
		else if (i == IPBLOCK_MAP_FLAT4_HITS || i == IPBLOCK_MAP_FLAT6_HITS)
			ret = outer_memory(p->fd[i], info.max_entries, &out->hits);
		else if (info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS)
			ret = outer_memory(p->fd[i], info.max_entries, &out->tables);
		else if (i >= IPBLOCK_MAP_FLAT4_BLOCKS)
			ret = pins_memlock(p->fd[i], &out->tables);
		else
			ret = pins_memlock(p->fd[i], &out->other);
	}
	out->total = out->tries + out->tables + out->hits + out->other;
	return ret;
}

int tables_info(struct tables *t, const struct pins *p, int family, int set,
		struct tables_info *out)
{
	struct tables_family *tf;
	struct flat_stats st;
	struct flat *f;
	int ret = tables_map(t, p, family, &tf);

	if (ret)
		return ret;
	f = tables_flat(tf, set);
	if (!f)
		return -ENOENT;
	flat_stats(f, &st);
	*out = (struct tables_info){
		.long_rules = st.long_rules,
		.ext_regions = st.ext_regions,
		.split_regions = st.split_regions,
		.nodes = st.nodes,
		.mixed_blocks = st.mixed_blocks,
		.blocks = st.blocks,
		.slots = st.slots,
		.live_slots = st.live_slots,
		.chunk_cap = st.chunk_cap,
		.ext_cap = st.ext_cap,
		.ids_cap = tf->ids.n,
	};
	for (uint32_t i = 1; i < tf->ids.n; i++)
		out->ids_used += tf->ids.rules[i].sets != 0;
	return 0;
}
