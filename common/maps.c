// SPDX-License-Identifier: GPL-2.0
/* Typed access to ipblock's maps, pinned or private (tests). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maps.h"

const struct maps_layout maps_layouts[3] = {
	{ IPBLOCK_MAP_V4, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ipblock_key_v4),
	  sizeof(struct ipblock_rule), BPF_F_NO_PREALLOC, 0 },
	{ IPBLOCK_MAP_V6, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ipblock_key_v6),
	  sizeof(struct ipblock_rule), BPF_F_NO_PREALLOC, 0 },
	{ IPBLOCK_MAP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32),
	  sizeof(struct ipblock_counter), 0, IPBLOCK_STAT_MAX },
};

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
	int *fds[] = { &m->v4_fd, &m->v6_fd, &m->stats_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int maps_open_pinned(const char *pin_dir, struct ipblock_maps *m, char *err, size_t errlen)
{
	int *fds[] = { &m->v4_fd, &m->v6_fd, &m->stats_fd };
	char path[4096];
	int ret;

	*m = (struct ipblock_maps)IPBLOCK_MAPS_INIT;
	for (size_t i = 0; i < 3; i++) {
		ret = maps_check_pinned(pin_dir, &maps_layouts[i], err, errlen);
		if (ret)
			goto fail;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, maps_layouts[i].name);
		*fds[i] = bpf_obj_get(path);
		if (*fds[i] < 0) {
			ret = -errno;
			goto fail;
		}
	}
	return 0;
fail:
	maps_close(m);
	return ret;
}

/* Fill the trie key for p; returns the fd of p's family. */
static int rule_key(const struct ipblock_maps *m, const struct cidr *p, void *key)
{
	if (p->family == AF_INET) {
		struct ipblock_key_v4 *k = key;

		k->prefixlen = p->len;
		memcpy(k->addr, p->addr, sizeof(k->addr));
		return m->v4_fd;
	}
	struct ipblock_key_v6 *k = key;

	k->prefixlen = p->len;
	memcpy(k->addr, p->addr, sizeof(k->addr));
	return m->v6_fd;
}

int maps_rule_set(const struct ipblock_maps *m, const struct cidr *p, const struct ipblock_rule *val)
{
	struct ipblock_key_v6 key = {};
	struct ipblock_rule v = *val;
	int fd = rule_key(m, p, &key);

	v.prefixlen = p->len;
	return bpf_map_update_elem(fd, &key, &v, BPF_ANY) ? -errno : 0;
}

int maps_rule_get(const struct ipblock_maps *m, const struct cidr *p, struct ipblock_rule *val)
{
	struct ipblock_key_v6 key = {};
	int fd = rule_key(m, p, &key);
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

int maps_rule_delete(const struct ipblock_maps *m, const struct cidr *p)
{
	struct ipblock_key_v6 key = {};
	int fd = rule_key(m, p, &key);

	/* Deletion in an LPM trie is by exact prefix. */
	return bpf_map_delete_elem(fd, &key) ? -errno : 0;
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
	size_t n = 0;
	int ret = flush_family(m->v4_fd, sizeof(struct ipblock_key_v4), &n);

	if (!ret)
		ret = flush_family(m->v6_fd, sizeof(struct ipblock_key_v6), &n);
	if (removed)
		*removed = n;
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
