// SPDX-License-Identifier: GPL-2.0
/* Typed access to ipblock's maps, pinned or private (tests). */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "lfqueue.h"
#include "maps.h"
#include "rulecache.h"

#define TRIE_LAYOUT(name, key)                                                                     \
	{                                                                                          \
		name, BPF_MAP_TYPE_LPM_TRIE, sizeof(key), sizeof(struct ipblock_rule),             \
			BPF_F_NO_PREALLOC, 0                                                       \
	}

const struct maps_layout maps_layouts[MAPS_COUNT] = {
	TRIE_LAYOUT(IPBLOCK_MAP_V4, struct ipblock_key_v4),
	TRIE_LAYOUT(IPBLOCK_MAP_V6, struct ipblock_key_v6),
	TRIE_LAYOUT(IPBLOCK_MAP_V4_B, struct ipblock_key_v4),
	TRIE_LAYOUT(IPBLOCK_MAP_V6_B, struct ipblock_key_v6),
	{ IPBLOCK_MAP_CONFIG, BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct ipblock_config), 0,
	  1 },
	{ IPBLOCK_MAP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32),
	  sizeof(struct ipblock_counter), 0, IPBLOCK_STAT_MAX },
};

int *maps_fd_slot(struct ipblock_maps *m, size_t i)
{
	int *slots[MAPS_COUNT] = { &m->v4_fd,  &m->v6_fd,     &m->v4b_fd,
				   &m->v6b_fd, &m->config_fd, &m->stats_fd };

	return slots[i];
}

static const char *map_type_name(uint32_t type)
{
	const char *name = libbpf_bpf_map_type_str(type);

	return name ? name : "unknown";
}

int maps_check_pinned(const char *pin_dir, const struct maps_layout *l, char *err, size_t errlen)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[4096];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, l->name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		ret = -errno;
		if (ret == -EINVAL) {
			snprintf(err, errlen, "%s is pinned but is not a BPF map", path);
			ret = -EPROTO;
		}
		goto out;
	}
	if (info.type != l->type)
		snprintf(err, errlen, "pinned map %s is a %s map, this build expects %s", path,
			 map_type_name(info.type), map_type_name(l->type));
	else if (info.key_size != l->key_size)
		snprintf(err, errlen, "pinned map %s has %u-byte keys, this build expects %u", path,
			 info.key_size, l->key_size);
	else if (info.value_size != l->value_size)
		snprintf(err, errlen, "pinned map %s has %u-byte values, this build expects %u",
			 path, info.value_size, l->value_size);
	else if (info.map_flags != l->flags)
		snprintf(err, errlen, "pinned map %s has flags 0x%x, this build expects 0x%x", path,
			 info.map_flags, l->flags);
	else if (l->max_entries && info.max_entries != l->max_entries)
		snprintf(err, errlen, "pinned map %s has %u entries, this build expects %u", path,
			 info.max_entries, l->max_entries);
	else
		goto out;
	ret = -EPROTO;
out:
	close(fd);
	return ret;
}

int maps_pins_present(const char *pin_dir, size_t *found, char *err, size_t errlen)
{
	*found = 0;
	for (size_t i = 0; i < MAPS_COUNT; i++) {
		int ret = maps_check_pinned(pin_dir, &maps_layouts[i], err, errlen);

		if (ret == -ENOENT)
			continue;
		if (ret && ret != -EPROTO)
			snprintf(err, errlen, "cannot inspect %s/%s: %s", pin_dir,
				 maps_layouts[i].name, strerror(-ret));
		if (ret)
			return ret;
		(*found)++;
	}
	return 0;
}

void maps_close(struct ipblock_maps *m)
{
	for (size_t i = 0; i < MAPS_COUNT; i++) {
		int *fd = maps_fd_slot(m, i);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
}

int maps_open_pinned(const char *pin_dir, struct ipblock_maps *m, char *err, size_t errlen)
{
	char path[4096];
	int ret;

	*m = (struct ipblock_maps)IPBLOCK_MAPS_INIT;
	for (size_t i = 0; i < MAPS_COUNT; i++) {
		int *fd = maps_fd_slot(m, i);

		ret = maps_check_pinned(pin_dir, &maps_layouts[i], err, errlen);
		if (ret)
			goto fail;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, maps_layouts[i].name);
		*fd = bpf_obj_get(path);
		if (*fd < 0) {
			ret = -errno;
			goto fail;
		}
	}
	m->lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->lock_fd < 0) {
		ret = -errno;
		goto fail;
	}
	return 0;
fail:
	maps_close(m);
	return ret;
}

int maps_lock(const struct ipblock_maps *m, bool exclusive)
{
	if (m->lock_fd < 0)
		return 0;
	return flock(m->lock_fd, exclusive ? LOCK_EX : LOCK_SH) ? -errno : 0;
}

void maps_unlock(const struct ipblock_maps *m)
{
	if (m->lock_fd >= 0)
		flock(m->lock_fd, LOCK_UN);
}

/* Fill the trie key for p; returns the fd of p's family in the given set. */
static int rule_key_set(const struct ipblock_maps *m, int set, const struct cidr *p, void *key)
{
	if (p->family == AF_INET) {
		struct ipblock_key_v4 *k = key;

		k->prefixlen = p->len;
		memcpy(k->addr, p->addr, sizeof(k->addr));
		return set ? m->v4b_fd : m->v4_fd;
	}
	struct ipblock_key_v6 *k = key;

	k->prefixlen = p->len;
	memcpy(k->addr, p->addr, sizeof(k->addr));
	return set ? m->v6b_fd : m->v6_fd;
}

static int set_update(const struct ipblock_maps *m, int set, const struct cidr *p,
		      const struct ipblock_rule *val)
{
	struct ipblock_key_v6 key = {};
	struct ipblock_rule v = *val;
	int fd = rule_key_set(m, set, p, &key);

	v.prefixlen = p->len;
	return bpf_map_update_elem(fd, &key, &v, BPF_ANY) ? -errno : 0;
}

static int set_delete(const struct ipblock_maps *m, int set, const struct cidr *p)
{
	struct ipblock_key_v6 key = {};
	int fd = rule_key_set(m, set, p, &key);

	/* Deletion in an LPM trie is by exact prefix. */
	return bpf_map_delete_elem(fd, &key) ? -errno : 0;
}

static int set_get(const struct ipblock_maps *m, int set, const struct cidr *p,
		   struct ipblock_rule *val)
{
	struct ipblock_key_v6 key = {};
	int fd = rule_key_set(m, set, p, &key);
	struct ipblock_rule found;

	/*
	 * An LPM lookup answers with the longest rule no longer than p that
	 * covers p's address; it is p itself only if the lengths agree.
	 */
	if (bpf_map_lookup_elem(fd, &key, &found))
		return -errno;
	if (found.prefixlen != p->len)
		return -ENOENT;
	*val = found;
	return 0;
}

int maps_rule_set(const struct ipblock_maps *m, const struct cidr *p,
		  const struct ipblock_rule *val)
{
	struct ipblock_rule old;
	bool existed = set_get(m, 1, p, &old) == 0;
	int ret;

	/* B first: both sets are the same size, so a full B means a full A. */
	ret = set_update(m, 1, p, val);
	if (ret)
		return ret;
	ret = set_update(m, 0, p, val);
	if (ret) {
		/* Put B back as it was: nothing half-done. */
		if (existed)
			set_update(m, 1, p, &old);
		else
			set_delete(m, 1, p);
	}
	return ret;
}

int maps_rule_get(const struct ipblock_maps *m, const struct cidr *p, struct ipblock_rule *val)
{
	return set_get(m, 0, p, val);
}

int maps_rule_delete(const struct ipblock_maps *m, const struct cidr *p)
{
	int ret_b = set_delete(m, 1, p);
	int ret_a = set_delete(m, 0, p);

	/* Gone from either set is a delete; absent from both is -ENOENT. */
	if (ret_a == 0 || ret_b == 0)
		return 0;
	return ret_a;
}

static void key_to_cidr(int family, const void *key, struct cidr *p)
{
	memset(p, 0, sizeof(*p));
	p->family = family;
	if (family == AF_INET) {
		const struct ipblock_key_v4 *k = key;

		p->len = k->prefixlen;
		memcpy(p->addr, k->addr, sizeof(k->addr));
	} else {
		const struct ipblock_key_v6 *k = key;

		p->len = k->prefixlen;
		memcpy(p->addr, k->addr, sizeof(k->addr));
	}
}

static size_t key_size(int family)
{
	return family == AF_INET ? sizeof(struct ipblock_key_v4) : sizeof(struct ipblock_key_v6);
}

static int trie_fd(const struct ipblock_maps *m, int set, int family)
{
	if (family == AF_INET)
		return set ? m->v4b_fd : m->v4_fd;
	return set ? m->v6b_fd : m->v6_fd;
}

/*
 * Rules per batch syscall: enough to make the syscall's own cost vanish,
 * few enough that the staging buffers stay small (under a megabyte).
 */
#define BATCH 8192

/*
 * Set once a kernel refuses batch operations on an LPM trie (older than
 * the generic batch support): every later call goes one rule at a time.
 */
static int batch_off;

static bool batch_enabled(void)
{
	return !__atomic_load_n(&batch_off, __ATOMIC_RELAXED);
}

void maps_set_batch(bool enabled)
{
	__atomic_store_n(&batch_off, !enabled, __ATOMIC_RELAXED);
}

/* Whether a batch call's error means "not implemented" rather than a real failure. */
static bool batch_refused(int err, __u32 done)
{
	if (done || (err != -EINVAL && err != -EOPNOTSUPP && err != -524 /* ENOTSUPP */))
		return false;
	__atomic_store_n(&batch_off, 1, __ATOMIC_RELAXED);
	return true;
}

/* Called per chunk of rules read from a trie; a non-zero return stops the read. */
typedef int (*chunk_cb)(int family, const uint8_t *keys, const struct ipblock_rule *vals, size_t n,
			void *ctx);

/* The fallback walk: get_next_key + lookup per rule, handed over in chunks. */
static int read_trie_slow(int fd, int family, uint8_t *keys, struct ipblock_rule *vals, chunk_cb cb,
			  void *ctx)
{
	size_t ksz = key_size(family), n = 0;
	struct ipblock_key_v6 prev;
	bool first = true;
	int ret;

	for (;;) {
		uint8_t *k = keys + n * ksz;

		if (bpf_map_get_next_key(fd, first ? NULL : &prev, k)) {
			ret = -errno;
			if (ret != -ENOENT)
				return ret;
			break;
		}
		memcpy(&prev, k, ksz);
		first = false;
		if (bpf_map_lookup_elem(fd, k, &vals[n]))
			continue; /* deleted under our feet */
		if (++n == BATCH) {
			ret = cb(family, keys, vals, n, ctx);
			if (ret)
				return ret;
			n = 0;
		}
	}
	return n ? cb(family, keys, vals, n, ctx) : 0;
}

/*
 * Read one trie in chunks of BATCH rules.  The batch token of the generic
 * batch lookup is the last key returned, so a walk sees each key once as
 * long as nobody deletes the token key meanwhile; writers hold the pin
 * directory's lock, so callers that hold it too see a stable trie.
 */
static int read_trie(int fd, int family, chunk_cb cb, void *ctx)
{
	size_t ksz = key_size(family);
	uint8_t *keys = malloc(BATCH * ksz);
	struct ipblock_rule *vals = malloc(BATCH * sizeof(*vals));
	struct ipblock_key_v6 in, out;
	bool first = true;
	int ret = -ENOMEM;

	if (!keys || !vals)
		goto out;
	while (batch_enabled()) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		__u32 cnt = BATCH;
		int err =
			bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, vals, &cnt, &opts);

		if (err && err != -ENOENT) {
			if (first && batch_refused(err, cnt))
				break;
			ret = err;
			goto out;
		}
		ret = cnt ? cb(family, keys, vals, cnt, ctx) : 0;
		if (ret || err == -ENOENT)
			goto out; /* -ENOENT: the walk reached the end */
		memcpy(&in, &out, ksz);
		first = false;
	}
	ret = read_trie_slow(fd, family, keys, vals, cb, ctx);
out:
	free(keys);
	free(vals);
	return ret;
}

struct foreach_ctx {
	maps_rule_cb cb;
	void *ctx;
};

static int foreach_chunk(int family, const uint8_t *keys, const struct ipblock_rule *vals, size_t n,
			 void *ctx)
{
	struct foreach_ctx *f = ctx;
	size_t ksz = key_size(family);
	struct cidr p;
	int ret;

	for (size_t i = 0; i < n; i++) {
		key_to_cidr(family, keys + i * ksz, &p);
		ret = f->cb(&p, &vals[i], f->ctx);
		if (ret)
			return ret;
	}
	return 0;
}

int maps_rule_foreach(const struct ipblock_maps *m, maps_rule_cb cb, void *ctx)
{
	struct foreach_ctx f = { cb, ctx };
	int ret = read_trie(m->v4_fd, AF_INET, foreach_chunk, &f);

	return ret ? ret : read_trie(m->v6_fd, AF_INET6, foreach_chunk, &f);
}

struct count_ctx {
	size_t v4, v6;
};

static int count_chunk(int family, const uint8_t *keys, const struct ipblock_rule *vals, size_t n,
		       void *ctx)
{
	struct count_ctx *c = ctx;

	(void)keys;
	(void)vals;
	if (family == AF_INET)
		c->v4 += n;
	else
		c->v6 += n;
	return 0;
}

int maps_rule_count(const struct ipblock_maps *m, size_t *v4, size_t *v6)
{
	struct count_ctx c = {};
	int ret = read_trie(m->v4_fd, AF_INET, count_chunk, &c);

	if (!ret)
		ret = read_trie(m->v6_fd, AF_INET6, count_chunk, &c);
	if (ret)
		return ret;
	if (v4)
		*v4 = c.v4;
	if (v6)
		*v6 = c.v6;
	return 0;
}

int maps_capacity(const struct ipblock_maps *m, int family, uint32_t *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(family == AF_INET ? m->v4_fd : m->v6_fd, &info, &len))
		return -errno;
	*max = info.max_entries;
	return 0;
}

/*
 * Delete keys[0..n) from a trie.  Absent keys are skipped and not counted:
 * a batch stops at the first one, so the walk resumes just past it.
 */
static int delete_keys(int fd, const uint8_t *keys, size_t ksz, size_t n, size_t *deleted)
{
	size_t i = 0;

	while (i < n && batch_enabled()) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		__u32 cnt = (__u32)(n - i);
		int err = bpf_map_delete_batch(fd, keys + i * ksz, &cnt, &opts);

		if (deleted)
			*deleted += cnt;
		if (!err)
			return 0;
		if (err == -ENOENT) {
			i += cnt + 1;
			continue;
		}
		if (batch_refused(err, cnt))
			break;
		return err;
	}
	for (; i < n; i++) {
		if (bpf_map_delete_elem(fd, keys + i * ksz)) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (deleted)
			(*deleted)++;
	}
	return 0;
}

/* Write keys[0..n) -> vals[0..n) into a trie; stops at the first failure (-ENOSPC when full). */
static int update_keys(int fd, const uint8_t *keys, const struct ipblock_rule *vals, size_t ksz,
		       size_t n)
{
	size_t i = 0;

	while (i < n && batch_enabled()) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		__u32 cnt = (__u32)(n - i);
		int err = bpf_map_update_batch(fd, keys + i * ksz, vals + i, &cnt, &opts);

		if (!err)
			return 0;
		if (batch_refused(err, cnt))
			break;
		return err;
	}
	for (; i < n; i++)
		if (bpf_map_update_elem(fd, keys + i * ksz, &vals[i], BPF_ANY))
			return -errno;
	return 0;
}

int maps_active_set(const struct ipblock_maps *m, uint32_t *set)
{
	struct ipblock_config cfg;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(m->config_fd, &zero, &cfg))
		return -errno;
	*set = cfg.active_set;
	return 0;
}

static int set_active(const struct ipblock_maps *m, uint32_t set)
{
	struct ipblock_config cfg = { .active_set = set };
	__u32 zero = 0;

	/* One 4-byte store in an array value: the program sees old or new. */
	return bpf_map_update_elem(m->config_fd, &zero, &cfg, BPF_ANY) ? -errno : 0;
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
static void wait_for_readers(void)
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

/* --- sorting ----------------------------------------------------------------- */

/* IPv4 sort key: address << 8 | length orders as cidr_compare() does. */
struct v4_item {
	uint64_t key;
	uint32_t idx;
};

struct v6_item {
	uint64_t hi, lo;
	uint32_t len, idx;
};

/*
 * LSD radix sort, one byte per pass: stable, so equal prefixes keep their
 * input order, and a million keys take a few tens of milliseconds against
 * a few hundred for a comparison sort.  Passes whose byte is the same in
 * every key (the length byte of a /24 list, say) are skipped.
 */
static struct v4_item *radix_v4(struct v4_item *a, struct v4_item *tmp, size_t n)
{
	for (unsigned int shift = 0; shift < 40; shift += 8) {
		size_t count[256] = { 0 }, sum = 0;
		bool trivial = false;

		for (size_t i = 0; i < n; i++)
			count[(a[i].key >> shift) & 0xff]++;
		for (int d = 0; d < 256; d++) {
			size_t c = count[d];

			trivial |= c == n;
			count[d] = sum;
			sum += c;
		}
		if (trivial)
			continue;
		for (size_t i = 0; i < n; i++)
			tmp[count[(a[i].key >> shift) & 0xff]++] = a[i];
		struct v4_item *t = a;

		a = tmp;
		tmp = t;
	}
	return a;
}

static int v6_cmp(const void *pa, const void *pb)
{
	const struct v6_item *a = pa, *b = pb;

	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	/* The input position last: qsort() is not stable by itself. */
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static uint64_t be64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

/*
 * Move r (and tags) into the order perm gives (position i receives the
 * rule at perm[i]), one cycle at a time: no second copy of the rules, which
 * at a million rules is 28 MB less at the peak.  perm is used up.
 */
static void permute(struct maps_rule *r, uint32_t *tags, uint32_t *perm, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct maps_rule save;
		uint32_t save_tag = 0;
		size_t j = i;

		if (perm[i] == i)
			continue;
		save = r[i];
		if (tags)
			save_tag = tags[i];
		for (;;) {
			size_t k = perm[j];

			perm[j] = (uint32_t)j;
			if (k == i) {
				r[j] = save;
				if (tags)
					tags[j] = save_tag;
				break;
			}
			r[j] = r[k];
			if (tags)
				tags[j] = tags[k];
			j = k;
		}
	}
}

int maps_rules_sort(struct maps_rule *r, uint32_t *tags, size_t n)
{
	size_t n4 = 0, n6 = 0, at = 0;
	struct v4_item *a4 = NULL, *t4 = NULL, *s4;
	struct v6_item *a6 = NULL;
	uint32_t *perm = NULL;
	int ret = -ENOMEM;

	if (n < 2)
		return 0;
	if (n > UINT32_MAX)
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		n4 += r[i].prefix.family == AF_INET;
	n6 = n - n4;
	a4 = malloc((n4 + 1) * sizeof(*a4));
	t4 = malloc((n4 + 1) * sizeof(*t4));
	a6 = malloc((n6 + 1) * sizeof(*a6));
	if (!a4 || !t4 || !a6)
		goto done;

	n4 = n6 = 0;
	for (size_t i = 0; i < n; i++) {
		const struct cidr *p = &r[i].prefix;

		if (p->family == AF_INET)
			a4[n4++] = (struct v4_item){
				.key = (be64_at(p->addr) >> 32) << 8 | p->len,
				.idx = (uint32_t)i,
			};
		else
			a6[n6++] = (struct v6_item){ .hi = be64_at(p->addr),
						     .lo = be64_at(p->addr + 8),
						     .len = p->len,
						     .idx = (uint32_t)i };
	}
	s4 = radix_v4(a4, t4, n4);
	qsort(a6, n6, sizeof(*a6), v6_cmp);
	/* The radix scratch is done with: give it back before the next allocation. */
	if (s4 == a4) {
		free(t4);
		t4 = NULL;
	} else {
		free(a4);
		a4 = NULL;
	}
	perm = malloc(n * sizeof(*perm));
	if (!perm)
		goto done;
	for (size_t i = 0; i < n4; i++)
		perm[at++] = s4[i].idx;
	for (size_t i = 0; i < n6; i++)
		perm[at++] = a6[i].idx;
	free(a4);
	free(t4);
	free(a6);
	a4 = t4 = NULL;
	a6 = NULL;
	permute(r, tags, perm, n);
	ret = 0;
done:
	free(perm);
	free(a4);
	free(t4);
	free(a6);
	return ret;
}

/* --- reading and writing whole sets ----------------------------------------- */

struct rule_vec {
	struct maps_rule *r;
	size_t n, cap;
};

static int vec_reserve(struct rule_vec *v, size_t more)
{
	struct maps_rule *r;
	size_t cap;

	if (v->n + more <= v->cap)
		return 0;
	cap = v->cap ? v->cap : 4096;
	while (cap < v->n + more)
		cap += cap / 2;
	r = realloc(v->r, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	v->r = r;
	v->cap = cap;
	return 0;
}

static int vec_chunk(int family, const uint8_t *keys, const struct ipblock_rule *vals, size_t n,
		     void *ctx)
{
	struct rule_vec *v = ctx;
	size_t ksz = key_size(family);
	int ret = vec_reserve(v, n);

	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct maps_rule *r = &v->r[v->n++];

		key_to_cidr(family, keys + i * ksz, &r->prefix);
		r->val = vals[i];
	}
	return 0;
}

/* Every rule of one set, both families, sorted. */
static int read_set(const struct ipblock_maps *m, int set, struct rule_vec *v)
{
	int ret;

	*v = (struct rule_vec){};
	ret = read_trie(trie_fd(m, set, AF_INET), AF_INET, vec_chunk, v);
	if (!ret)
		ret = read_trie(trie_fd(m, set, AF_INET6), AF_INET6, vec_chunk, v);
	if (!ret && v->cap > v->n + 1) {
		/* Give back the growth slack before sorting allocates its own. */
		struct maps_rule *r = realloc(v->r, (v->n + 1) * sizeof(*r));

		if (r) {
			v->r = r;
			v->cap = v->n + 1;
		}
	}
	if (!ret)
		ret = maps_rules_sort(v->r, NULL, v->n);
	if (ret) {
		free(v->r);
		*v = (struct rule_vec){};
	}
	return ret;
}

int maps_rules_read(const struct ipblock_maps *m, struct maps_rule **out, size_t *n)
{
	struct rule_vec v;
	uint32_t active = 0;
	int ret = maps_active_set(m, &active);

	if (ret)
		return ret;
	ret = read_set(m, active ? 1 : 0, &v);
	if (ret)
		return ret;
	*out = v.r;
	*n = v.n;
	return 0;
}

struct read_job {
	const struct ipblock_maps *m;
	int set;
	struct rule_vec v;
	int ret;
};

static void *read_job_run(void *arg)
{
	struct read_job *j = arg;

	j->ret = read_set(j->m, j->set, &j->v);
	return NULL;
}

/*
 * Read set A and set B at once: each walk costs about a microsecond a rule
 * of kernel time, and the two tries share nothing, so a second thread
 * halves the wait on a multi-core machine.
 */
static int read_both(const struct ipblock_maps *m, struct rule_vec *a, struct rule_vec *b)
{
	struct read_job ja = { .m = m, .set = 0 };
	pthread_t t;
	bool threaded = pthread_create(&t, NULL, read_job_run, &ja) == 0;
	int ret = read_set(m, 1, b);

	if (threaded)
		pthread_join(t, NULL);
	else
		read_job_run(&ja);
	*a = ja.v;
	if (!ret)
		ret = ja.ret;
	if (ret) {
		free(a->r);
		free(b->r);
		*a = *b = (struct rule_vec){};
	}
	return ret;
}

static bool same_value(const struct ipblock_rule *a, const struct ipblock_rule *b)
{
	return a->action == b->action && a->flags == b->flags && a->rule_id == b->rule_id;
}

/*
 * Staging for one kind of change (deletes or updates) to one set: rules
 * arrive in cidr_compare() order, so a family change flushes the buffer.
 */
struct stage {
	const struct ipblock_maps *m;
	int set, family;
	bool del;
	size_t n;
	uint8_t keys[BATCH * sizeof(struct ipblock_key_v6)];
	struct ipblock_rule vals[BATCH];
};

static int stage_flush(struct stage *s)
{
	int fd = trie_fd(s->m, s->set, s->family);
	size_t ksz = key_size(s->family);
	int ret;

	if (!s->n)
		return 0;
	ret = s->del ? delete_keys(fd, s->keys, ksz, s->n, NULL)
		     : update_keys(fd, s->keys, s->vals, ksz, s->n);
	s->n = 0;
	return ret;
}

static int stage_add(struct stage *s, const struct maps_rule *r)
{
	const struct cidr *p = &r->prefix;
	int ret;

	if (s->n && p->family != s->family) {
		ret = stage_flush(s);
		if (ret)
			return ret;
	}
	s->family = p->family;
	if (p->family == AF_INET) {
		struct ipblock_key_v4 *k = (struct ipblock_key_v4 *)s->keys + s->n;

		k->prefixlen = p->len;
		memcpy(k->addr, p->addr, sizeof(k->addr));
	} else {
		struct ipblock_key_v6 *k = (struct ipblock_key_v6 *)s->keys + s->n;

		k->prefixlen = p->len;
		memcpy(k->addr, p->addr, sizeof(k->addr));
	}
	s->vals[s->n] = r->val;
	s->vals[s->n].prefixlen = p->len;
	if (++s->n == BATCH)
		return stage_flush(s);
	return 0;
}

/*
 * Walk two sorted rule sets side by side.  For each prefix only in have,
 * only in want, or in both with another value, call the matching hook
 * (NULL hooks are skipped).
 */
struct diff_hooks {
	int (*gone)(const struct maps_rule *old, void *ctx);
	int (*added)(const struct maps_rule *new, void *ctx);
	int (*changed)(const struct maps_rule *old, const struct maps_rule *new, void *ctx);
};

static int diff_walk(const struct maps_rule *have, size_t nh, const struct maps_rule *want,
		     size_t nw, const struct diff_hooks *h, void *ctx)
{
	size_t i = 0, j = 0;
	int ret = 0;

	while (!ret && (i < nh || j < nw)) {
		int c = i == nh ? 1 : j == nw ? -1 : cidr_compare(&have[i].prefix, &want[j].prefix);

		if (c < 0) {
			ret = h->gone ? h->gone(&have[i], ctx) : 0;
			i++;
		} else if (c > 0) {
			ret = h->added ? h->added(&want[j], ctx) : 0;
			j++;
		} else {
			if (!same_value(&have[i].val, &want[j].val) && h->changed)
				ret = h->changed(&have[i], &want[j], ctx);
			i++;
			j++;
		}
	}
	return ret;
}

static int stage_old(const struct maps_rule *old, void *ctx)
{
	return stage_add(ctx, old);
}

static int stage_new(const struct maps_rule *new, void *ctx)
{
	return stage_add(ctx, new);
}

static int stage_changed(const struct maps_rule *old, const struct maps_rule *new, void *ctx)
{
	(void)old;
	return stage_add(ctx, new);
}

/* One writer's share of a sync phase: a prefix range of have and want. */
struct sync_job {
	const struct ipblock_maps *m;
	int set;
	bool del;
	const struct maps_rule *have, *want;
	size_t nh, nw;
	int ret;
};

static void *sync_job_run(void *arg)
{
	static const struct diff_hooks dels = { .gone = stage_old };
	static const struct diff_hooks puts = { .added = stage_new, .changed = stage_changed };
	struct sync_job *j = arg;
	struct stage *s = malloc(sizeof(*s));

	j->ret = -ENOMEM;
	if (!s)
		return NULL;
	*s = (struct stage){ .m = j->m, .set = j->set, .del = j->del };
	j->ret = diff_walk(j->have, j->nh, j->want, j->nw, j->del ? &dels : &puts, s);
	if (!j->ret)
		j->ret = stage_flush(s);
	free(s);
	return NULL;
}

/* First index of r[0..n) whose prefix is not below p. */
static size_t lower_bound(const struct maps_rule *r, size_t n, const struct cidr *p)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cidr_compare(&r[mid].prefix, p) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

#define MAX_WRITERS 4

/*
 * Writers for a sync of this size.  The trie's lock covers only the walk;
 * copying in, allocating and the syscall itself run in parallel, so a
 * second writer on the same trie cuts a million inserts from about 0.85 s
 * to 0.55 s here.  Small syncs are not worth a thread.
 */
static size_t writers_for(size_t work)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (work < 4 * BATCH || cpus < 2)
		return 1;
	return cpus < MAX_WRITERS ? (size_t)cpus : MAX_WRITERS;
}

/* Ranges per writer: a writer whose ranges turn out cheap takes more. */
#define CHUNKS_PER_WRITER 8

/*
 * The writers of one sync phase share a bounded lock-free queue of range
 * numbers: each pops the next range until none is left.  Insert cost varies
 * with where a prefix lands in the trie and with contention on its lock, so
 * pulling work balances better than handing each writer a fixed share.
 */
struct sync_pool {
	struct lfq *q;
	struct sync_job *jobs;
	_Atomic int ret;
};

static void *sync_worker(void *arg)
{
	struct sync_pool *p = arg;
	struct lfq_item it;

	/* Every range is queued before the writers start: empty means done. */
	while (lfq_pop(p->q, &it) == 0) {
		struct sync_job *j = &p->jobs[it.key];
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
 * Bring one set from have (its exact content) to want.  Deletes go first,
 * all of them, so that the trie never holds more than max(have, want)
 * rules on the way.  Each phase is cut into prefix ranges pulled by the
 * writers from a queue: a range boundary is a prefix of the larger array
 * and its place in the other, so every prefix falls in the same range in
 * both.
 */
static int sync_set(const struct ipblock_maps *m, int set, const struct rule_vec *have,
		    const struct maps_rule *want, size_t nw)
{
	size_t k = writers_for(have->n + nw);
	size_t n = k > 1 ? k * CHUNKS_PER_WRITER : 1;
	size_t *hs = calloc(n + 1, sizeof(*hs)), *ws = calloc(n + 1, sizeof(*ws));
	struct sync_job *jobs = calloc(n, sizeof(*jobs));
	struct sync_pool pool = { .jobs = jobs };
	pthread_t tid[MAX_WRITERS];
	bool started[MAX_WRITERS] = {};
	int ret = -ENOMEM;

	if (!hs || !ws || !jobs || lfq_create(&pool.q, n))
		goto out;
	hs[n] = have->n;
	ws[n] = nw;
	for (size_t t = 1; t < n; t++) {
		if (nw >= have->n) {
			ws[t] = t * nw / n;
			hs[t] = lower_bound(have->r, have->n, &want[ws[t]].prefix);
		} else {
			hs[t] = t * have->n / n;
			ws[t] = lower_bound(want, nw, &have->r[hs[t]].prefix);
		}
	}
	ret = 0;
	for (int phase = 0; phase < 2 && !ret; phase++) {
		for (size_t t = 0; t < n; t++) {
			jobs[t] = (struct sync_job){
				.m = m,
				.set = set,
				.del = phase == 0,
				/* An empty side may be a NULL array: no arithmetic on it. */
				.have = have->n ? have->r + hs[t] : have->r,
				.nh = hs[t + 1] - hs[t],
				.want = nw ? want + ws[t] : want,
				.nw = ws[t + 1] - ws[t],
			};
			ret = lfq_push(pool.q, &(struct lfq_item){ .key = t });
			if (ret)
				goto out;
		}
		for (size_t t = 1; t < k; t++)
			started[t] = !pthread_create(&tid[t], NULL, sync_worker, &pool);
		sync_worker(&pool);
		for (size_t t = 1; t < k; t++)
			if (started[t])
				pthread_join(tid[t], NULL);
		ret = atomic_load(&pool.ret);
	}
out:
	lfq_destroy(pool.q);
	free(jobs);
	free(hs);
	free(ws);
	return ret;
}

int maps_flush(const struct ipblock_maps *m, size_t *removed)
{
	struct rule_vec a, b;
	int ret = read_both(m, &a, &b);

	/* B first, as maps_rule_delete() does: the active set A goes last. */
	if (!ret)
		ret = sync_set(m, 1, &b, NULL, 0);
	if (!ret)
		ret = sync_set(m, 0, &a, NULL, 0);
	if (removed)
		*removed = ret ? 0 : a.n;
	free(a.r);
	free(b.r);
	return ret;
}

static int count_gone(const struct maps_rule *old, void *ctx)
{
	(void)old;
	((struct maps_replace_stats *)ctx)->deleted++;
	return 0;
}

static int count_added(const struct maps_rule *new, void *ctx)
{
	(void)new;
	((struct maps_replace_stats *)ctx)->added++;
	return 0;
}

static int count_changed(const struct maps_rule *old, const struct maps_rule *new, void *ctx)
{
	(void)old;
	(void)new;
	((struct maps_replace_stats *)ctx)->updated++;
	return 0;
}

static bool same_set(const struct rule_vec *a, const struct rule_vec *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (cidr_compare(&a->r[i].prefix, &b->r[i].prefix) ||
		    !same_value(&a->r[i].val, &b->r[i].val))
			return false;
	return true;
}

/* Fill st's counts and capacities; -ENOSPC when want does not fit. */
static int check_capacity(const struct ipblock_maps *m, const struct maps_rule *want, size_t nw,
			  struct maps_replace_stats *st)
{
	int ret;

	*st = (struct maps_replace_stats){};
	ret = maps_capacity(m, AF_INET, &st->cap_v4);
	if (!ret)
		ret = maps_capacity(m, AF_INET6, &st->cap_v6);
	if (ret)
		return ret;
	for (size_t i = 0; i < nw; i++) {
		if (want[i].prefix.family == AF_INET)
			st->v4++;
		else
			st->v6++;
	}
	return st->v4 > st->cap_v4 || st->v6 > st->cap_v6 ? -ENOSPC : 0;
}

/*
 * The switch itself, given both sets' content (a, b).  B is brought to want
 * while A is active; then the program moves to B, and only after every run
 * that could still read A has ended is A brought to want and made active
 * again.  Every packet therefore meets the complete old set (A) or the
 * complete new one (B, then A).
 */
static int replace_with(const struct ipblock_maps *m, const struct maps_rule *want, size_t nw,
			struct rule_vec *a, struct rule_vec *b, struct maps_replace_stats *st)
{
	static const struct diff_hooks counters = { count_gone, count_added, count_changed };
	uint32_t active = 0;
	int ret;

	ret = check_capacity(m, want, nw, st);
	if (!ret)
		ret = maps_active_set(m, &active);
	if (ret)
		return ret;

	if (active != 0) {
		/*
		 * An earlier replace stopped with B active: B is what the
		 * program judges by, so A catches up with it and takes over
		 * before B is touched.
		 */
		ret = sync_set(m, 0, a, b->r, b->n);
		if (!ret)
			ret = set_active(m, 0);
		if (ret)
			return ret;
		wait_for_readers();
		free(a->r);
		a->r = malloc((b->n + 1) * sizeof(*a->r));
		if (!a->r)
			return -ENOMEM;
		memcpy(a->r, b->r, b->n * sizeof(*a->r));
		a->n = a->cap = b->n;
	}
	diff_walk(a->r, a->n, want, nw, &counters, st);

	/* B is inactive: a failure here changed no verdict. */
	ret = sync_set(m, 1, b, want, nw);
	if (ret) {
		/* Put B back; a rule not yet written is simply absent (ENOENT). */
		struct rule_vec w = { (struct maps_rule *)want, nw, nw };

		sync_set(m, 1, &w, b->r, b->n);
		return ret;
	}
	ret = set_active(m, 1);
	if (ret)
		return ret;
	wait_for_readers();
	/* At rest A and B agree and B's old content was already read: reuse it. */
	ret = sync_set(m, 0, same_set(a, b) ? b : a, want, nw);
	if (ret)
		return ret; /* B stays active; the next replace repairs A first */
	ret = set_active(m, 0);
	if (!ret)
		wait_for_readers();
	return ret;
}

/*
 * Check that rules is sorted and unique; sort a copy into *sorted when it
 * is only out of order.  *sorted stays NULL when rules can be used as is.
 */
static int prepare_rules(const struct maps_rule *rules, size_t n, struct maps_rule **sorted)
{
	bool ordered = true;

	*sorted = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct cidr *p = &rules[i].prefix;

		if ((p->family != AF_INET && p->family != AF_INET6) || p->len > cidr_max_len(p))
			return -EINVAL;
		if (i && cidr_compare(&rules[i - 1].prefix, p) >= 0)
			ordered = false;
	}
	if (ordered)
		return 0;
	*sorted = malloc((n + 1) * sizeof(**sorted));
	if (!*sorted)
		return -ENOMEM;
	memcpy(*sorted, rules, n * sizeof(**sorted));
	if (maps_rules_sort(*sorted, NULL, n))
		goto fail;
	for (size_t i = 1; i < n; i++)
		if (!cidr_compare(&(*sorted)[i - 1].prefix, &(*sorted)[i].prefix)) {
			free(*sorted);
			*sorted = NULL;
			return -EINVAL;
		}
	return 0;
fail:
	free(*sorted);
	*sorted = NULL;
	return -ENOMEM;
}

int maps_replace_rules(const struct ipblock_maps *m, const struct maps_rule *rules, size_t n,
		       struct maps_replace_stats *st)
{
	struct maps_replace_stats ignored;
	struct rule_vec a = {}, b = {};
	struct maps_rule *sorted;
	int ret = prepare_rules(rules, n, &sorted);

	if (ret)
		return ret;
	if (sorted)
		rules = sorted;
	/* A list that cannot fit is refused before the sets are read. */
	ret = check_capacity(m, rules, n, st ? st : &ignored);
	if (!ret)
		ret = read_both(m, &a, &b);
	if (!ret)
		ret = replace_with(m, rules, n, &a, &b, st ? st : &ignored);
	free(a.r);
	free(b.r);
	free(sorted);
	return ret;
}

/* Merge two sorted unique sets; on a shared prefix the second one's value wins. */
static int merge_sets(const struct maps_rule *x, size_t nx, const struct maps_rule *y, size_t ny,
		      struct rule_vec *out)
{
	size_t i = 0, j = 0;

	*out = (struct rule_vec){};
	if (vec_reserve(out, nx + ny + 1))
		return -ENOMEM;
	while (i < nx || j < ny) {
		int c = i == nx ? 1 : j == ny ? -1 : cidr_compare(&x[i].prefix, &y[j].prefix);

		if (c < 0) {
			out->r[out->n++] = x[i++];
		} else {
			out->r[out->n++] = y[j++];
			i += c == 0;
		}
	}
	return 0;
}

int maps_import_rules(const struct ipblock_maps *m, const struct maps_rule *rules, size_t n,
		      struct maps_replace_stats *st)
{
	struct maps_replace_stats ignored;
	struct rule_vec a, b, want = {};
	struct maps_rule *sorted;
	uint32_t active = 0;
	int ret = prepare_rules(rules, n, &sorted);

	if (ret)
		return ret;
	ret = maps_active_set(m, &active);
	if (!ret)
		ret = read_both(m, &a, &b);
	if (ret)
		goto out;
	/* The union is taken over what the program judges by now. */
	ret = merge_sets(active ? b.r : a.r, active ? b.n : a.n, sorted ? sorted : rules, n, &want);
	if (!ret)
		ret = replace_with(m, want.r, want.n, &a, &b, st ? st : &ignored);
	free(a.r);
	free(b.r);
out:
	free(want.r);
	free(sorted);
	return ret;
}

static int cache_entry_cb(const struct rule_entry *e, void *ctx)
{
	struct rule_vec *v = ctx;
	int ret = vec_reserve(v, 1);

	if (ret)
		return ret;
	v->r[v->n++] = (struct maps_rule){
		.prefix = e->prefix,
		.val = { .action = e->action, .flags = e->flags, .rule_id = e->rule_id },
	};
	return 0;
}

int maps_replace(const struct ipblock_maps *m, const struct rulecache *new, size_t *changes)
{
	struct maps_replace_stats st = {};
	struct rule_vec v = {};
	int ret;

	/* rulecache_foreach() walks in cidr_compare() order: already sorted. */
	ret = rulecache_foreach(new, cache_entry_cb, &v);
	if (!ret)
		ret = maps_replace_rules(m, v.r, v.n, &st);
	if (changes)
		*changes = st.added + st.updated + st.deleted;
	free(v.r);
	return ret;
}

int maps_stats_read(const struct ipblock_maps *m, struct ipblock_counter *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ipblock_counter *percpu;

	if (ncpu < 0)
		return ncpu;
	percpu = calloc(ncpu, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	for (__u32 slot = 0; slot < IPBLOCK_STAT_MAX; slot++) {
		out[slot] = (struct ipblock_counter){};
		if (bpf_map_lookup_elem(m->stats_fd, &slot, percpu)) {
			int ret = -errno;

			free(percpu);
			return ret;
		}
		for (int cpu = 0; cpu < ncpu; cpu++) {
			out[slot].packets += percpu[cpu].packets;
			out[slot].bytes += percpu[cpu].bytes;
		}
	}
	free(percpu);
	return 0;
}

const char *maps_stat_name(enum ipblock_stat s)
{
	switch (s) {
	case IPBLOCK_STAT_PASS_NOMATCH:
		return "passed (no rule)";
	case IPBLOCK_STAT_PASS_ALLOW:
		return "passed (allow rule)";
	case IPBLOCK_STAT_DROP:
		return "dropped (deny rule)";
	case IPBLOCK_STAT_PASS_OTHER:
		return "passed (not IP or truncated)";
	default:
		return "?";
	}
}

const char *ipblock_action_name(uint8_t action)
{
	switch (action) {
	case IPBLOCK_ACTION_ALLOW:
		return "allow";
	case IPBLOCK_ACTION_DENY:
		return "deny";
	default:
		return "?";
	}
}

int ipblock_action_parse(const char *s, uint8_t *action)
{
	if (!strcmp(s, "allow"))
		*action = IPBLOCK_ACTION_ALLOW;
	else if (!strcmp(s, "deny"))
		*action = IPBLOCK_ACTION_DENY;
	else
		return -EINVAL;
	return 0;
}
