// SPDX-License-Identifier: GPL-2.0
/* The LPM tries: keys, one-rule access, batched set reads and writes; see trie.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "trie.h"

/*
 * Rules per batch syscall: enough to make the syscall's own cost vanish,
 * few enough that the staging buffers stay small (under a megabyte).
 */
#define BATCH 8192

/* --- keys and values ---------------------------------------------------------- */

static size_t key_size(int family)
{
	return family == AF_INET ? sizeof(struct ipblock_key_v4) : sizeof(struct ipblock_key_v6);
}

void trie_key(const struct cidr *p, void *key)
{
	if (p->family == AF_INET) {
		struct ipblock_key_v4 *k = key;

		k->prefixlen = p->len;
		memcpy(k->addr, p->addr, sizeof(k->addr));
	} else {
		struct ipblock_key_v6 *k = key;

		k->prefixlen = p->len;
		memcpy(k->addr, p->addr, sizeof(k->addr));
	}
}

/* The prefix of a key of family's layout. */
static void key_prefix(int family, const void *key, struct cidr *p)
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

/* The kernel's value for r. */
static struct ipblock_rule value_of(const struct rule *r)
{
	return (struct ipblock_rule){
		.action = r->action, .prefixlen = r->prefix.len, .flags = r->flags, .rule_id = r->id
	};
}

/* The rule of prefix p whose value the kernel holds is v. */
static void rule_of(const struct cidr *p, const struct ipblock_rule *v, struct rule *out)
{
	*out = (struct rule){
		.prefix = *p, .action = v->action, .flags = v->flags, .id = v->rule_id
	};
}

/* --- one rule at a time ------------------------------------------------------------ */

int trie_get(const struct pins *pins, int set, const struct cidr *p, struct rule *out)
{
	struct ipblock_key_v6 key = {};
	struct ipblock_rule found;

	trie_key(p, &key);
	/*
	 * An LPM lookup answers with the longest rule no longer than p that
	 * covers p's address; it is p itself only if the lengths agree.
	 */
	if (bpf_map_lookup_elem(pins_trie_fd(pins, set, p->family), &key, &found))
		return -errno;
	if (found.prefixlen != p->len)
		return -ENOENT;
	rule_of(p, &found, out);
	return 0;
}

int trie_get_active(const struct pins *pins, const struct cidr *p, struct rule *out)
{
	uint32_t active = 0;
	int ret = pins_active_set(pins, &active);

	return ret ? ret : trie_get(pins, active ? 1 : 0, p, out);
}

/* Whether the trie holds exactly the prefix of key (an LPM lookup may answer a shorter one). */
static bool trie_exact(int fd, const struct ipblock_key_v6 *key, struct ipblock_rule *out)
{
	return !bpf_map_lookup_elem(fd, key, out) && out->prefixlen == key->prefixlen;
}

int trie_put(const struct pins *pins, int set, const struct rule *r)
{
	int fd = pins_trie_fd(pins, set, r->prefix.family);
	struct ipblock_key_v6 key = {};
	struct ipblock_rule v = value_of(r), old;

	trie_key(&r->prefix, &key);
	if (!bpf_map_update_elem(fd, &key, &v, BPF_ANY))
		return 0;
	if (errno != ENOSPC)
		return -errno;
	/*
	 * A full trie refuses even a new value for a prefix it holds on
	 * kernels before the fix of in-place updates (Linux 5.10).  No
	 * packet reads the tries, so out and in again is as good.
	 */
	if (!trie_exact(fd, &key, &old) || bpf_map_delete_elem(fd, &key))
		return -ENOSPC;
	if (bpf_map_update_elem(fd, &key, &v, BPF_ANY)) {
		int err = -errno;

		bpf_map_update_elem(fd, &key, &old, BPF_ANY);
		return err;
	}
	return 0;
}

int trie_delete(const struct pins *pins, int set, const struct cidr *p)
{
	struct ipblock_key_v6 key = {};

	/* Deletion in an LPM trie is by exact prefix. */
	trie_key(p, &key);
	return bpf_map_delete_elem(pins_trie_fd(pins, set, p->family), &key) ? -errno : 0;
}

int trie_parent(void *ctx, const struct cidr *p, struct rule *out)
{
	struct ipblock_key_v6 key = {};
	struct ipblock_rule val;

	/* An LPM lookup with key.prefixlen = p->len: the longest rule up to p->len. */
	trie_key(p, &key);
	if (bpf_map_lookup_elem(*(const int *)ctx, &key, &val))
		return -errno;
	rule_of(p, &val, out);
	out->prefix.len = val.prefixlen;
	cidr_clear_host_bits(&out->prefix);
	return 0;
}

/* --- reading a whole trie ------------------------------------------------------------ */

/*
 * Whether a batch call's error means "not implemented" rather than a real
 * failure.  A kernel without batch operations on tries (Linux 5.10) says
 * ENOTSUPP before it looks at the count, which then still holds what the
 * caller asked for: only EINVAL needs the count to tell.
 */
static bool batch_refused(int err, __u32 done)
{
	return err == -EOPNOTSUPP || err == -524 /* ENOTSUPP */ || (err == -EINVAL && !done);
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
static int read_trie(const struct pins *pins, int fd, int family, chunk_cb cb, void *ctx)
{
	size_t ksz = key_size(family);
	uint8_t *keys = malloc(BATCH * ksz);
	struct ipblock_rule *vals = malloc(BATCH * sizeof(*vals));
	struct ipblock_key_v6 in, out;
	bool first = true;
	int ret = -ENOMEM;

	if (!keys || !vals)
		goto out;
	while (!pins->per_rule) {
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

int trie_count(const struct pins *pins, size_t *v4, size_t *v6)
{
	struct count_ctx c = {};
	uint32_t set = 0;
	int ret = pins_active_set(pins, &set);

	if (!ret)
		ret = read_trie(pins, pins_trie_fd(pins, (int)set, AF_INET), AF_INET, count_chunk,
				&c);
	if (!ret)
		ret = read_trie(pins, pins_trie_fd(pins, (int)set, AF_INET6), AF_INET6, count_chunk,
				&c);
	if (ret)
		return ret;
	if (v4)
		*v4 = c.v4;
	if (v6)
		*v6 = c.v6;
	return 0;
}

static int collect_chunk(int family, const uint8_t *keys, const struct ipblock_rule *vals, size_t n,
			 void *ctx)
{
	struct ruleset *s = ctx;
	size_t ksz = key_size(family);
	int ret = ruleset_reserve(s, n);

	for (size_t i = 0; !ret && i < n; i++) {
		struct cidr p;

		key_prefix(family, keys + i * ksz, &p);
		rule_of(&p, &vals[i], &s->r[s->n++]);
	}
	return ret;
}

int trie_read_set(const struct pins *pins, int set, struct ruleset *out)
{
	int ret;

	ruleset_free(out);
	ret = read_trie(pins, pins_trie_fd(pins, set, AF_INET), AF_INET, collect_chunk, out);
	if (!ret)
		ret = read_trie(pins, pins_trie_fd(pins, set, AF_INET6), AF_INET6, collect_chunk,
				out);
	if (!ret && out->cap > out->n + 1) {
		/* Give back the growth slack before sorting allocates its own. */
		struct rule *r = realloc(out->r, (out->n + 1) * sizeof(*r));

		if (r) {
			out->r = r;
			out->cap = out->n + 1;
		}
	}
	if (!ret)
		ret = ruleset_sort(out->r, NULL, out->n);
	if (ret)
		ruleset_free(out);
	return ret;
}

int trie_read(const struct pins *pins, struct ruleset *out)
{
	uint32_t active = 0;
	int ret = pins_active_set(pins, &active);

	return ret ? ret : trie_read_set(pins, active ? 1 : 0, out);
}

struct read_job {
	const struct pins *pins;
	struct ruleset *out;
	int ret;
};

static void *read_job_run(void *arg)
{
	struct read_job *j = arg;

	j->ret = trie_read_set(j->pins, 0, j->out);
	return NULL;
}

/*
 * Each walk costs about a microsecond a rule of kernel time, and the two
 * tries share nothing, so a second thread halves the wait on a multi-core
 * machine.
 */
int trie_read_both(const struct pins *pins, struct ruleset *a, struct ruleset *b)
{
	struct read_job ja = { .pins = pins, .out = a };
	pthread_t t;
	bool threaded = pthread_create(&t, NULL, read_job_run, &ja) == 0;
	int ret = trie_read_set(pins, 1, b);

	if (threaded)
		pthread_join(t, NULL);
	else
		read_job_run(&ja);
	if (!ret)
		ret = ja.ret;
	if (ret) {
		ruleset_free(a);
		ruleset_free(b);
	}
	return ret;
}

/* --- writing in batches ---------------------------------------------------------------- */

/*
 * Delete keys[0..n) from a trie.  Absent keys are skipped: a batch stops at
 * the first one, so the walk resumes just past it.
 */
static int delete_keys(const struct pins *pins, int fd, const uint8_t *keys, size_t ksz, size_t n)
{
	size_t i = 0;

	while (i < n && !pins->per_rule) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		__u32 cnt = (__u32)(n - i);
		int err = bpf_map_delete_batch(fd, keys + i * ksz, &cnt, &opts);

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
	for (; i < n; i++)
		if (bpf_map_delete_elem(fd, keys + i * ksz) && errno != ENOENT)
			return -errno;
	return 0;
}

/* Write keys[0..n) -> vals[0..n) into a trie; stops at the first failure (-ENOSPC when full). */
static int update_keys(const struct pins *pins, int fd, const uint8_t *keys,
		       const struct ipblock_rule *vals, size_t ksz, size_t n)
{
	size_t i = 0;

	while (i < n && !pins->per_rule) {
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

struct trie_batch {
	const struct pins *pins;
	int set, family;
	bool del;
	size_t n;
	uint8_t keys[BATCH * sizeof(struct ipblock_key_v6)];
	struct ipblock_rule vals[BATCH];
};

struct trie_batch *trie_batch_new(const struct pins *pins, int set, bool del)
{
	struct trie_batch *b = malloc(sizeof(*b));

	if (b) {
		b->pins = pins;
		b->set = set;
		b->family = AF_INET;
		b->del = del;
		b->n = 0;
	}
	return b;
}

int trie_batch_flush(struct trie_batch *b)
{
	int fd = pins_trie_fd(b->pins, b->set, b->family);
	size_t ksz = key_size(b->family);
	int ret;

	if (!b->n)
		return 0;
	ret = b->del ? delete_keys(b->pins, fd, b->keys, ksz, b->n)
		     : update_keys(b->pins, fd, b->keys, b->vals, ksz, b->n);
	b->n = 0;
	return ret;
}

int trie_batch_add(struct trie_batch *b, const struct rule *r)
{
	int ret;

	if (b->n && r->prefix.family != b->family) {
		ret = trie_batch_flush(b);
		if (ret)
			return ret;
	}
	b->family = r->prefix.family;
	trie_key(&r->prefix, b->keys + b->n * key_size(b->family));
	b->vals[b->n] = value_of(r);
	if (++b->n == BATCH)
		return trie_batch_flush(b);
	return 0;
}

void trie_batch_free(struct trie_batch *b)
{
	free(b);
}
