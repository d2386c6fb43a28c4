// SPDX-License-Identifier: GPL-2.0
/* ipblock's maps: create, size, pin, open and check them; see pins.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "pins.h"

/* What a pinned map must look like to be reused by this build. */
struct layout {
	const char *name;
	uint32_t type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t flags;
	uint32_t max_entries; /* 0: any (chosen at creation) */
};

#define LAYOUT(id, name, type, key, value, flags, entries)                                         \
	{ #name, type, sizeof(key), sizeof(value), flags, entries },

static const struct layout layouts[IPBLOCK_MAP_COUNT] = { IPBLOCK_MAP_LIST(LAYOUT) };

/* --- sizes ---------------------------------------------------------------------- */

int pins_memlock(int fd, uint64_t *bytes)
{
	char path[64], line[256];
	unsigned long long v;
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %llu", &v) == 1) {
			*bytes += v;
			ret = 0;
			break;
		}
	fclose(f);
	return ret;
}

/* --- the program's object ---------------------------------------------------------- */

/* The size of a map sized at creation: the tries max_rules, owners_map that many claims per rule. */
static uint32_t entries_for(size_t i, uint32_t max_rules)
{
	uint64_t n = max_rules;

	if (i == IPBLOCK_MAP_OWNERS)
		n *= IPBLOCK_CLAIMS_PER_RULE;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

int pins_obj_size(struct bpf_object *obj, uint32_t max_rules)
{
	if (!max_rules)
		return -EINVAL;
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, layouts[i].name);
		int ret;

		if (!map)
			return -ENOENT;
		if (layouts[i].max_entries)
			continue;
		ret = bpf_map__set_max_entries(map, entries_for(i, max_rules));
		if (ret)
			return ret;
	}
	return 0;
}

int pins_obj_pin(struct bpf_object *obj, const char *pin_dir)
{
	char path[4096];

	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, layouts[i].name);
		int ret;

		if (!map)
			return -ENOENT;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, layouts[i].name);
		ret = bpf_map__set_pin_path(map, path);
		if (ret)
			return ret;
	}
	return 0;
}

int pins_from_obj(struct bpf_object *obj, struct pins *p)
{
	*p = (struct pins)PINS_INIT;
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, layouts[i].name);

		if (!map || bpf_map__fd(map) < 0) {
			*p = (struct pins)PINS_INIT;
			return -ENOENT;
		}
		p->fd[i] = bpf_map__fd(map);
	}
	return 0;
}

/* --- the pin directory ------------------------------------------------------------ */

static const char *map_type_name(uint32_t type)
{
	const char *name = libbpf_bpf_map_type_str(type);

	return name ? name : "unknown";
}

/* The sentence saying how a map differs from l, in err; false when it does not. */
static bool differs(const char *path, const struct bpf_map_info *info, const struct layout *l,
		    char *err, size_t errlen)
{
	if (info->type != l->type)
		snprintf(err, errlen, "pinned map %s is a %s map, this build expects %s", path,
			 map_type_name(info->type), map_type_name(l->type));
	else if (info->key_size != l->key_size)
		snprintf(err, errlen, "pinned map %s has %u-byte keys, this build expects %u", path,
			 info->key_size, l->key_size);
	else if (info->value_size != l->value_size)
		snprintf(err, errlen, "pinned map %s has %u-byte values, this build expects %u",
			 path, info->value_size, l->value_size);
	else if (info->map_flags != l->flags)
		snprintf(err, errlen, "pinned map %s has flags 0x%x, this build expects 0x%x", path,
			 info->map_flags, l->flags);
	else if (l->max_entries && info->max_entries != l->max_entries)
		snprintf(err, errlen, "pinned map %s has %u entries, this build expects %u", path,
			 info->max_entries, l->max_entries);
	else
		return false;
	return true;
}

/*
 * Check that the map pinned at pin_dir/l->name has this build's layout.
 * 0 when it matches, -ENOENT when nothing is pinned there, -EPROTO with a
 * sentence in err naming the difference; other -errno from the kernel.
 */
static int check_pinned(const char *pin_dir, const struct layout *l, char *err, size_t errlen)
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
	} else if (differs(path, &info, l, err, errlen)) {
		ret = -EPROTO;
	}
	close(fd);
	return ret;
}

int pins_present(const char *pin_dir, size_t *found, char *err, size_t errlen)
{
	*found = 0;
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		int ret = check_pinned(pin_dir, &layouts[i], err, errlen);

		if (ret == -ENOENT)
			continue;
		if (ret && ret != -EPROTO)
			snprintf(err, errlen, "cannot inspect %s/%s: %s", pin_dir, layouts[i].name,
				 strerror(-ret));
		if (ret)
			return ret;
		(*found)++;
	}
	return 0;
}

void pins_close(struct pins *p)
{
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->fd[i] = -1;
	}
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	p->lock_fd = -1;
}

int pins_open(const char *pin_dir, struct pins *p, char *err, size_t errlen)
{
	char path[4096];
	int ret;

	*p = (struct pins)PINS_INIT;
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		ret = check_pinned(pin_dir, &layouts[i], err, errlen);
		if (ret)
			goto fail;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, layouts[i].name);
		p->fd[i] = bpf_obj_get(path);
		if (p->fd[i] < 0) {
			ret = -errno;
			goto fail;
		}
	}
	p->lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->lock_fd < 0) {
		ret = -errno;
		goto fail;
	}
	return 0;
fail:
	pins_close(p);
	return ret;
}

void pins_unlink(const char *pin_dir)
{
	char path[4096];

	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, layouts[i].name);
		unlink(path);
	}
}

int pins_lock(const struct pins *p, bool exclusive)
{
	struct ipblock_config cfg;
	int ret;

	if (p->lock_fd < 0)
		return 0;
	if (flock(p->lock_fd, exclusive ? LOCK_EX : LOCK_SH))
		return -errno;
	if (!exclusive)
		return 0;
	/*
	 * Every writer passes here before its first change: one bump tells
	 * a watcher (the service's state writer) that the rules may change,
	 * and its read under the shared lock waits until they have.
	 */
	ret = pins_config_read(p, &cfg);
	if (!ret) {
		cfg.generation++;
		ret = pins_config_write(p, &cfg);
	}
	if (ret)
		flock(p->lock_fd, LOCK_UN);
	return ret;
}

int pins_generation(const struct pins *p, uint64_t *gen)
{
	struct ipblock_config cfg;
	int ret = pins_config_read(p, &cfg);

	if (!ret)
		*gen = cfg.generation;
	return ret;
}

void pins_unlock(const struct pins *p)
{
	if (p->lock_fd >= 0)
		flock(p->lock_fd, LOCK_UN);
}

/* --- what the maps hold besides rules ------------------------------------------- */

int pins_entries(const struct pins *p, enum ipblock_map i, uint32_t *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(p->fd[i], &info, &len))
		return -errno;
	*max = info.max_entries;
	return 0;
}

int pins_capacity(const struct pins *p, int family, uint32_t *max)
{
	return pins_entries(p, family == AF_INET ? IPBLOCK_MAP_V4 : IPBLOCK_MAP_V6, max);
}

int pins_config_read(const struct pins *p, struct ipblock_config *cfg)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(p->fd[IPBLOCK_MAP_CONFIG], &zero, cfg) ? -errno : 0;
}

int pins_config_write(const struct pins *p, const struct ipblock_config *cfg)
{
	__u32 zero = 0;

	/* active_set and flags are one 8-byte word, copied at once: the program sees old or new. */
	return bpf_map_update_elem(p->fd[IPBLOCK_MAP_CONFIG], &zero, cfg, BPF_ANY) ? -errno : 0;
}

int pins_active_set(const struct pins *p, uint32_t *set)
{
	struct ipblock_config cfg;
	int ret = pins_config_read(p, &cfg);

	if (!ret)
		*set = cfg.active_set;
	return ret;
}

int pins_set_active(const struct pins *p, uint32_t set)
{
	struct ipblock_config cfg;
	int ret = pins_config_read(p, &cfg);

	/* The flags (the dirty mark) stay as they are. */
	cfg.active_set = set;
	return ret ? ret : pins_config_write(p, &cfg);
}

/* Add interface slot iface's counters (iface < 0: every interface's) into out. */
static int stats_sum(const struct pins *p, int iface, struct ipblock_counter *out)
{
	int ncpu = libbpf_num_possible_cpus(), ret = 0;
	struct ipblock_stat_slot *percpu;

	if (ncpu < 0)
		return ncpu;
	percpu = calloc(ncpu, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	for (int slot = 0; slot < IPBLOCK_STAT_MAX; slot++)
		out[slot] = (struct ipblock_counter){};
	for (__u32 i = iface < 0 ? 0 : (__u32)iface; i < IPBLOCK_STAT_IFACES && !ret; i++) {
		for (__u32 slot = 0; slot < IPBLOCK_STAT_MAX; slot++) {
			__u32 key = ipblock_stat_index(i, slot);

			if (bpf_map_lookup_elem(p->fd[IPBLOCK_MAP_STATS], &key, percpu)) {
				ret = -errno;
				break;
			}
			for (int cpu = 0; cpu < ncpu; cpu++) {
				out[slot].packets += percpu[cpu].c.packets;
				out[slot].bytes += percpu[cpu].c.bytes;
			}
		}
		if (iface >= 0)
			break;
	}
	free(percpu);
	return ret;
}

int pins_stats_read(const struct pins *p, struct ipblock_counter *out)
{
	return stats_sum(p, -1, out);
}

int pins_stats_read_iface(const struct pins *p, unsigned int ifindex, struct ipblock_counter *out)
{
	return stats_sum(p, (int)ipblock_stat_index(ifindex, 0) / IPBLOCK_STAT_MAX, out);
}

const char *pins_stat_name(enum ipblock_stat s)
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
