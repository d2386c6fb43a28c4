// SPDX-License-Identifier: GPL-2.0
/* Per-rule counters: segments, zeroing, sums; see hits.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "hits.h"

/* Elements a batch call reads or zeroes: bounds the buffer on many-CPU machines. */
#define HITS_BATCH 1024

static int outer_of(const struct pins *p, int family)
{
	return pins_flat_fd(p, family, IPBLOCK_FLAT_HITS);
}

/* fd of segment g, -ENOENT when there is none. */
static int seg_fd(const struct pins *p, int family, uint32_t g)
{
	uint32_t id;
	int fd;

	if (bpf_map_lookup_elem(outer_of(p, family), &g, &id))
		return -errno;
	fd = bpf_map_get_fd_by_id(id);
	return fd < 0 ? -errno : fd;
}

int hits_cover(const struct pins *p, int family, uint32_t nsegs)
{
	int outer = outer_of(p, family);

	if (nsegs > FLAT_SEGS)
		return -ENOSPC;
	for (uint32_t g = 0; g < nsegs; g++) {
		uint32_t id;
		int fd, ret = 0;

		if (!bpf_map_lookup_elem(outer, &g, &id))
			continue;
		if (errno != ENOENT)
			return -errno;
		fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "ipblock_hits", 4, FLAT_HITS_VALUE,
				    FLAT_HITS_SEG_ELEMS, NULL);
		if (fd < 0)
			return -errno;
		if (bpf_map_update_elem(outer, &g, &fd, BPF_ANY))
			ret = -errno;
		close(fd);
		if (ret)
			return ret;
	}
	return 0;
}

int hits_trim(const struct pins *p, int family, uint32_t nsegs)
{
	int outer = outer_of(p, family);

	/* Segments are contiguous from 0: the first hole ends them. */
	for (uint32_t g = nsegs; g < FLAT_SEGS; g++)
		if (bpf_map_delete_elem(outer, &g))
			return errno == ENOENT ? 0 : -errno;
	return 0;
}

/* A buffer for HITS_BATCH elements of every CPU, and the CPU count. */
static void *percpu_buf(int *ncpu)
{
	*ncpu = libbpf_num_possible_cpus();
	if (*ncpu <= 0)
		return NULL;
	return calloc((size_t)HITS_BATCH * *ncpu, sizeof(struct ipblock_rule_counter));
}

/* Zero keys[0..n) of one segment, in batches where the kernel has them. */
static int seg_zero(int fd, uint32_t *keys, size_t n, const void *zeroes)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);

	for (size_t at = 0; at < n; at += HITS_BATCH) {
		__u32 count = (__u32)(n - at < HITS_BATCH ? n - at : HITS_BATCH);

		if (count > 1 && !bpf_map_update_batch(fd, &keys[at], zeroes, &count, &opts))
			continue;
		count = (__u32)(n - at < HITS_BATCH ? n - at : HITS_BATCH);
		for (__u32 i = 0; i < count; i++)
			if (bpf_map_update_elem(fd, &keys[at + i], zeroes, BPF_ANY))
				return -errno;
	}
	return 0;
}

int hits_zero(const struct pins *p, int family, const uint32_t *ids, size_t n)
{
	uint32_t *keys = NULL;
	void *zeroes = NULL;
	int ncpu, ret = 0;

	if (!n)
		return 0;
	keys = malloc(n * sizeof(*keys));
	zeroes = percpu_buf(&ncpu);
	if (!keys || !zeroes) {
		ret = -ENOMEM;
		goto out;
	}
	/* Segment by segment: ids of one segment, in any order. */
	for (uint32_t g = 0; g < FLAT_SEGS && !ret; g++) {
		size_t k = 0;
		bool more = false;
		int fd;

		for (size_t i = 0; i < n; i++) {
			if (ids[i] >> FLAT_HITS_SEG_SHIFT == g)
				keys[k++] = ids[i] & (FLAT_HITS_SEG_ELEMS - 1);
			else if (ids[i] >> FLAT_HITS_SEG_SHIFT > g)
				more = true;
		}
		if (k) {
			fd = seg_fd(p, family, g);
			if (fd == -ENOENT)
				continue; /* no counters yet: nothing to zero */
			if (fd < 0) {
				ret = fd;
				break;
			}
			ret = seg_zero(fd, keys, k, zeroes);
			close(fd);
		}
		if (!more)
			break;
	}
out:
	free(keys);
	free(zeroes);
	return ret;
}

/* Add one segment's counters into t->c from id base on. */
static int seg_read(int fd, struct hits_table *t, uint32_t base, void *buf, int ncpu)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	uint32_t keys[HITS_BATCH], in = 0, out = 0;
	bool first = true, per_elem = false;

	for (uint32_t at = 0; at < FLAT_HITS_SEG_ELEMS;) {
		__u32 count = HITS_BATCH;
		int err = 0;

		if (!per_elem) {
			err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, buf, &count,
						   &opts);
			if (err && errno != ENOENT) {
				if (!first)
					return -errno;
				per_elem = true; /* a kernel without batches of arrays */
			}
		}
		if (per_elem) {
			count = HITS_BATCH;
			for (__u32 i = 0; i < count; i++) {
				keys[i] = at + i;
				if (bpf_map_lookup_elem(fd, &keys[i],
							(char *)buf +
								(size_t)i * ncpu * FLAT_HITS_VALUE))
					return -errno;
			}
		}
		for (__u32 i = 0; i < count; i++) {
			const struct ipblock_rule_counter *c =
				(const struct ipblock_rule_counter *)buf + (size_t)i * ncpu;
			struct hits_total *h = &t->c[base + keys[i]];

			for (int cpu = 0; cpu < ncpu; cpu++) {
				h->packets += c[cpu].packets;
				h->bytes += c[cpu].bytes;
				if (c[cpu].last_ns > h->last_ns)
					h->last_ns = c[cpu].last_ns;
			}
		}
		at += count;
		if (!per_elem && err)
			break; /* ENOENT: the last batch */
		first = false;
		in = out;
	}
	return 0;
}

int hits_read(const struct pins *p, int family, struct hits_table *out)
{
	uint32_t nsegs = 0, id;
	void *buf = NULL;
	int ncpu, ret = 0;

	*out = (struct hits_table){};
	while (nsegs < FLAT_SEGS && !bpf_map_lookup_elem(outer_of(p, family), &nsegs, &id))
		nsegs++;
	if (!nsegs)
		return 0;
	out->c = calloc((size_t)nsegs * FLAT_HITS_SEG_ELEMS, sizeof(*out->c));
	buf = percpu_buf(&ncpu);
	if (!out->c || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	out->n = nsegs * FLAT_HITS_SEG_ELEMS;
	for (uint32_t g = 0; g < nsegs && !ret; g++) {
		int fd = seg_fd(p, family, g);

		if (fd == -ENOENT)
			continue; /* taken out meanwhile: its rules are gone */
		if (fd < 0) {
			ret = fd;
			break;
		}
		ret = seg_read(fd, out, g * FLAT_HITS_SEG_ELEMS, buf, ncpu);
		close(fd);
	}
out:
	free(buf);
	if (ret)
		hits_table_free(out);
	return ret;
}

void hits_table_free(struct hits_table *t)
{
	free(t->c);
	*t = (struct hits_table){};
}

struct hits_total hits_of(const struct hits_table *t, uint32_t id)
{
	return id < t->n ? t->c[id] : (struct hits_total){};
}

time_t hits_wallclock(uint64_t last_ns)
{
	struct timespec mono, real;
	int64_t ago;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	ago = ((int64_t)mono.tv_sec * 1000000000 + mono.tv_nsec) - (int64_t)last_ns;
	if (ago < 0)
		ago = 0;
	return (time_t)(((int64_t)real.tv_sec * 1000000000 + real.tv_nsec - ago) / 1000000000);
}
