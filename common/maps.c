// SPDX-License-Identifier: GPL-2.0
/* Typed access to ipblock's maps, pinned or private (tests). */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maps.h"
#include "rulecache.h"

#define TRIE_LAYOUT(name, key)                                                          \
	{ name, BPF_MAP_TYPE_LPM_TRIE, sizeof(key), sizeof(struct ipblock_rule),        \
	  BPF_F_NO_PREALLOC, 0 }

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
	int *slots[MAPS_COUNT] = { &m->v4_fd, &m->v6_fd, &m->v4b_fd,
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

int maps_rule_set(const struct ipblock_maps *m, const struct cidr *p, const struct ipblock_rule *val)
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

/*
 * Walk one trie.  Each step asks for the key after the previous one; the
 * first call passes NULL.  The walk sees a consistent key only if nobody
 * deletes the current key meanwhile, which callers accept (a listing taken
 * during changes shows some mix of before and after).
 */
static int foreach_family(int fd, int family, maps_rule_cb cb, void *ctx)
{
	struct ipblock_key_v6 key, next;
	struct ipblock_rule val;
	struct cidr p;
	void *prev = NULL;
	int ret;

	for (;;) {
		if (bpf_map_get_next_key(fd, prev, &next)) {
			ret = -errno;
			return ret == -ENOENT ? 0 : ret;
		}
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue; /* deleted under our feet */
		key_to_cidr(family, &key, &p);
		ret = cb(&p, &val, ctx);
		if (ret)
			return ret;
	}
}

int maps_rule_foreach(const struct ipblock_maps *m, maps_rule_cb cb, void *ctx)
{
	int ret = foreach_family(m->v4_fd, AF_INET, cb, ctx);

	return ret ? ret : foreach_family(m->v6_fd, AF_INET6, cb, ctx);
}

struct count_ctx {
	size_t v4, v6;
};

static int count_cb(const struct cidr *p, const struct ipblock_rule *val, void *ctx)
{
	struct count_ctx *c = ctx;

	(void)val;
	if (p->family == AF_INET)
		c->v4++;
	else
		c->v6++;
	return 0;
}

int maps_rule_count(const struct ipblock_maps *m, size_t *v4, size_t *v6)
{
	struct count_ctx c = {};
	int ret = maps_rule_foreach(m, count_cb, &c);

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
 * Delete every key of one trie.  Keys are collected first: deleting the
 * current key would make get_next_key restart from the beginning.
 */
static int flush_family(int fd, size_t key_size, size_t *removed)
{
	size_t n = 0, cap = 1024;
	uint8_t *keys = malloc(cap * key_size), *tmp;
	void *prev = NULL;
	int ret = 0;

	if (!keys)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			tmp = realloc(keys, 2 * cap * key_size);
			if (!tmp) {
				ret = -ENOMEM;
				goto out;
			}
			keys = tmp;
			cap *= 2;
		}
		if (bpf_map_get_next_key(fd, prev, keys + n * key_size)) {
			if (errno != ENOENT)
				ret = -errno;
			break;
		}
		prev = keys + n * key_size;
		n++;
	}
	if (ret)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (bpf_map_delete_elem(fd, keys + i * key_size) && errno != ENOENT) {
			ret = -errno;
			goto out;
		}
		(*removed)++;
	}
out:
	free(keys);
	return ret;
}

int maps_flush(const struct ipblock_maps *m, size_t *removed)
{
	size_t n = 0, ignored = 0;
	int ret = flush_family(m->v4b_fd, sizeof(struct ipblock_key_v4), &ignored);

	if (!ret)
		ret = flush_family(m->v6b_fd, sizeof(struct ipblock_key_v6), &ignored);
	if (!ret)
		ret = flush_family(m->v4_fd, sizeof(struct ipblock_key_v4), &n);
	if (!ret)
		ret = flush_family(m->v6_fd, sizeof(struct ipblock_key_v6), &n);
	if (removed)
		*removed = n;
	return ret;
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

/* A view of m whose set A is m's set `set`, for code that reads set A. */
static struct ipblock_maps view_of_set(const struct ipblock_maps *m, int set)
{
	struct ipblock_maps v = *m;

	if (set) {
		v.v4_fd = m->v4b_fd;
		v.v6_fd = m->v6b_fd;
	}
	return v;
}

struct change {
	struct cidr prefix;
	struct ipblock_rule val;
	bool del;
};

struct change_list {
	struct change *c;
	size_t n, cap;
};

static int collect_change(enum rulecache_change kind, const struct rule_entry *old,
			  const struct rule_entry *new, void *ctx)
{
	struct change_list *l = ctx;
	const struct rule_entry *e = new ? new : old;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		struct change *c = realloc(l->c, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		l->c = c;
		l->cap = cap;
	}
	l->c[l->n++] = (struct change){
		.prefix = e->prefix,
		.val = { .action = e->action, .flags = e->flags, .rule_id = e->rule_id },
		.del = kind == RULECACHE_DELETE,
	};
	return 0;
}

/*
 * Make one (inactive) set equal to want.  Deletes go first so that the
 * trie never holds more than max(old, new) rules on the way.
 */
static int sync_set(const struct ipblock_maps *m, int set, const struct rulecache *want,
		    size_t *changes)
{
	struct ipblock_maps view = view_of_set(m, set);
	struct change_list l = {};
	struct rulecache *have = rulecache_new();
	int ret;

	if (!have)
		return -ENOMEM;
	ret = rulecache_load_maps(have, &view);
	if (!ret)
		ret = rulecache_diff(have, want, RULECACHE_DIFF_RULE_ID, collect_change, &l);
	for (int pass = 0; !ret && pass < 2; pass++) {
		for (size_t i = 0; !ret && i < l.n; i++) {
			if (l.c[i].del != (pass == 0))
				continue;
			ret = l.c[i].del ? set_delete(m, set, &l.c[i].prefix)
					 : set_update(m, set, &l.c[i].prefix, &l.c[i].val);
			if (ret == -ENOENT && l.c[i].del)
				ret = 0;
		}
	}
	if (changes)
		*changes = l.n;
	free(l.c);
	rulecache_free(have);
	return ret;
}

int maps_replace(const struct ipblock_maps *m, const struct rulecache *new, size_t *changes)
{
	uint32_t cap_v4 = 0, cap_v6 = 0, active = 0;
	int ret;

	ret = maps_capacity(m, AF_INET, &cap_v4);
	if (!ret)
		ret = maps_capacity(m, AF_INET6, &cap_v6);
	if (!ret)
		ret = maps_active_set(m, &active);
	if (ret)
		return ret;
	if (rulecache_count(new, AF_INET) > cap_v4 || rulecache_count(new, AF_INET6) > cap_v6)
		return -ENOSPC;

	if (active != 0) {
		/*
		 * An earlier replace stopped half-way with B active: bring A up
		 * to B's rules and make A active before touching B.
		 */
		struct ipblock_maps view_b = view_of_set(m, 1);
		struct rulecache *cur = rulecache_new();

		if (!cur)
			return -ENOMEM;
		ret = rulecache_load_maps(cur, &view_b);
		if (!ret)
			ret = sync_set(m, 0, cur, NULL);
		rulecache_free(cur);
		if (!ret)
			ret = set_active(m, 0);
		if (ret)
			return ret;
	}
	/* B (inactive) gets the new rules; a failure here changed no verdict. */
	ret = sync_set(m, 1, new, changes);
	if (ret) {
		/* Put B back to A's rules so the sets agree again. */
		struct rulecache *cur = rulecache_new();

		if (cur && !rulecache_load_maps(cur, m))
			sync_set(m, 1, cur, NULL);
		rulecache_free(cur);
		return ret;
	}
	ret = set_active(m, 1);
	if (!ret)
		ret = sync_set(m, 0, new, NULL);
	if (!ret)
		ret = set_active(m, 0);
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
