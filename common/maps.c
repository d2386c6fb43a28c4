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

#include "flat.h"
#include "lfqueue.h"
#include "maps.h"
#include "tables.h"
#include "trie.h"

#define LAYOUT(id, name, type, key, value, flags, entries)                                         \
	{ #name, type, sizeof(key), sizeof(value), flags, entries },

const struct maps_layout maps_layouts[IPBLOCK_MAP_COUNT] = { IPBLOCK_MAP_LIST(LAYOUT) };

/* Index in maps_layouts of the first flat map of a family. */
#define FLAT_FIRST(family) ((family) == AF_INET ? IPBLOCK_MAP_FLAT4_TOP : IPBLOCK_MAP_FLAT6_TOP)

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
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
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
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		int *fd = &m->fd[i];

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	maps_release(m);
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
}

int maps_open_pinned(const char *pin_dir, struct ipblock_maps *m, char *err, size_t errlen)
{
	char path[4096];
	int ret;

	*m = (struct ipblock_maps)IPBLOCK_MAPS_INIT;
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		int *fd = &m->fd[i];

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

/* --- the flat tables: state of this process ---------------------------------- */

/*
 * One family's tables as this process sees them.  The maps hold the whole
 * state (common/flat.h), so any process that maps them can carry on where
 * another stopped; what lives here is only the mapping.
 */
struct flat_family {
	bool on;	/* MAPS_LOOKUP_FLAT, mapped */
	bool trie_only; /* MAPS_LOOKUP_TRIE: nothing to keep in step */
	struct flat_sizes sz;
	struct flat t[2]; /* set A, set B */
	struct flat_ids ids;
	void *mem[IPBLOCK_FLAT_MAPS];
	uint64_t bytes[IPBLOCK_FLAT_MAPS];
	int trie_fd[2]; /* t[s]'s parent: the trie of set s */
};

struct maps_flat {
	struct flat_family fam[2]; /* IPv4, IPv6 */
	bool damaged;		   /* this change failed half-way: keep the dirty mark */
};

static int trie_fd(const struct ipblock_maps *m, int set, int family);

static const int *flat_fds(const struct ipblock_maps *m, int family)
{
	return &m->fd[FLAT_FIRST(family)];
}

static int map_max_entries(int fd, uint32_t *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*max = info.max_entries;
	return 0;
}

void maps_release(struct ipblock_maps *m)
{
	if (!m->flat)
		return;
	for (int f = 0; f < 2; f++)
		for (int i = 0; i < IPBLOCK_FLAT_MAPS; i++)
			tables_munmap(m->flat->fam[f].mem[i], m->flat->fam[f].bytes[i]);
	free(m->flat);
	m->flat = NULL;
}

const char *maps_lookup_name(enum maps_lookup l)
{
	return l == MAPS_LOOKUP_TRIE ? "trie" : "flat";
}

int maps_lookup_parse(const char *s, enum maps_lookup *l)
{
	if (!strcmp(s, "flat"))
		*l = MAPS_LOOKUP_FLAT;
	else if (!strcmp(s, "trie"))
		*l = MAPS_LOOKUP_TRIE;
	else
		return -EINVAL;
	return 0;
}

/* max_entries of family's flat maps (enum maps_flat_map order). */
static int flat_entries(int family, uint32_t max_rules, enum maps_lookup lookup,
			uint32_t n[IPBLOCK_FLAT_MAPS], uint64_t bytes[IPBLOCK_FLAT_MAPS])
{
	struct flat_sizes sz;
	int ret;

	if (lookup == MAPS_LOOKUP_TRIE) {
		for (int i = 0; i < IPBLOCK_FLAT_MAPS; i++) {
			n[i] = 1;
			bytes[i] = 4096;
		}
		return 0;
	}
	ret = flat_sizes(family, max_rules, &sz);
	if (ret)
		return ret;
	n[IPBLOCK_FLAT_TOP] = n[IPBLOCK_FLAT_TOP_B] = sz.top_elems;
	n[IPBLOCK_FLAT_DATA] = n[IPBLOCK_FLAT_DATA_B] = sz.data_elems;
	n[IPBLOCK_FLAT_IDS] = sz.ids_elems;
	bytes[IPBLOCK_FLAT_TOP] = bytes[IPBLOCK_FLAT_TOP_B] = sz.top_bytes;
	bytes[IPBLOCK_FLAT_DATA] = bytes[IPBLOCK_FLAT_DATA_B] = sz.data_bytes;
	bytes[IPBLOCK_FLAT_IDS] = sz.ids_bytes;
	return 0;
}

uint64_t maps_lookup_bytes(uint32_t max_rules, enum maps_lookup lookup)
{
	uint64_t total = 0;

	for (int f = 0; f < 2; f++) {
		uint32_t n[IPBLOCK_FLAT_MAPS];
		uint64_t bytes[IPBLOCK_FLAT_MAPS];

		if (flat_entries(f ? AF_INET6 : AF_INET, max_rules, lookup, n, bytes))
			return 0;
		for (int i = 0; i < IPBLOCK_FLAT_MAPS; i++)
			total += bytes[i];
	}
	return total;
}

int maps_obj_size(struct bpf_object *obj, uint32_t max_rules, enum maps_lookup lookup)
{
	int ret = 0;

	if (!max_rules)
		return -EINVAL;
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT && !ret; i++) {
		const struct maps_layout *l = &maps_layouts[i];
		struct bpf_map *map = bpf_object__find_map_by_name(obj, l->name);
		uint32_t n[IPBLOCK_FLAT_MAPS], entries = l->max_entries;
		uint64_t bytes[IPBLOCK_FLAT_MAPS];

		if (!map)
			return -ENOENT;
		if (l->type == BPF_MAP_TYPE_LPM_TRIE) {
			entries = max_rules;
		} else if (i >= FLAT_FIRST(AF_INET)) {
			int family = i >= FLAT_FIRST(AF_INET6) ? AF_INET6 : AF_INET;

			ret = flat_entries(family, max_rules, lookup, n, bytes);
			entries = n[i - FLAT_FIRST(family)];
		}
		if (!ret)
			ret = bpf_map__set_max_entries(map, entries);
	}
	return ret;
}

int maps_obj_pin(struct bpf_object *obj, const char *pin_dir)
{
	char path[4096];

	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, maps_layouts[i].name);
		int ret;

		if (!map)
			return -ENOENT;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, maps_layouts[i].name);
		ret = bpf_map__set_pin_path(map, path);
		if (ret)
			return ret;
	}
	return 0;
}

int maps_from_obj(struct bpf_object *obj, struct ipblock_maps *m)
{
	*m = (struct ipblock_maps)IPBLOCK_MAPS_INIT;
	for (size_t i = 0; i < IPBLOCK_MAP_COUNT; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, maps_layouts[i].name);

		if (!map || bpf_map__fd(map) < 0) {
			*m = (struct ipblock_maps)IPBLOCK_MAPS_INIT;
			return -ENOENT;
		}
		*&m->fd[i] = bpf_map__fd(map);
	}
	return 0;
}

int maps_lookup_mode(const struct ipblock_maps *m, enum maps_lookup *lookup)
{
	uint32_t top = 0;
	int ret = map_max_entries(m->fd[IPBLOCK_MAP_FLAT4_TOP], &top);

	if (!ret)
		*lookup = top == 1 ? MAPS_LOOKUP_TRIE : MAPS_LOOKUP_FLAT;
	return ret;
}

/* Undo a half-made mapping of one family. */
static void flat_family_unmap(struct flat_family *ff)
{
	for (int i = 0; i < IPBLOCK_FLAT_MAPS; i++)
		tables_munmap(ff->mem[i], ff->bytes[i]);
	*ff = (struct flat_family){};
}

/*
 * Map one family's tables, once per process.  *out is NULL when the maps
 * were made for the tries alone (whose top entry is then made to say so).
 * -EPROTO when the tables do not fit the tries' capacity or hold a table
 * of another format.
 */
static int flat_family(const struct ipblock_maps *m, int family, struct flat_family **out)
{
	const int *fds = flat_fds(m, family);
	uint32_t cap, top = 0, n[IPBLOCK_FLAT_MAPS];
	struct flat_family *ff;
	int ret;

	*out = NULL;
	if (!m->flat) {
		/* Only this process's mapping, not the maps' content: fine through const. */
		((struct ipblock_maps *)m)->flat = calloc(1, sizeof(*m->flat));
		if (!m->flat)
			return -ENOMEM;
	}
	ff = &m->flat->fam[family == AF_INET ? 0 : 1];
	if (ff->on || ff->trie_only) {
		*out = ff->on ? ff : NULL;
		return 0;
	}
	ret = map_max_entries(fds[IPBLOCK_FLAT_TOP], &top);
	if (ret)
		return ret;
	if (top == 1) {
		/* The tries alone: one top entry sends every region to them. */
		__u64 ask_trie = ~0ull;
		__u32 zero = 0;

		if (bpf_map_update_elem(fds[IPBLOCK_FLAT_TOP], &zero, &ask_trie, BPF_ANY) ||
		    bpf_map_update_elem(fds[IPBLOCK_FLAT_TOP_B], &zero, &ask_trie, BPF_ANY))
			return -errno;
		ff->trie_only = true;
		return 0;
	}
	ret = maps_capacity(m, family, &cap);
	if (!ret)
		ret = flat_entries(family, cap, MAPS_LOOKUP_FLAT, n, ff->bytes);
	if (!ret)
		ret = flat_sizes(family, cap, &ff->sz);
	for (int i = 0; i < IPBLOCK_FLAT_MAPS && !ret; i++) {
		uint32_t have = 0;

		ret = map_max_entries(fds[i], &have);
		if (!ret && have != n[i])
			ret = -EPROTO;
		if (!ret) {
			ff->mem[i] = tables_mmap(fds[i], ff->bytes[i]);
			if (!ff->mem[i])
				ret = -errno;
		}
	}
	if (ret)
		goto fail;
	flat_ids_attach(&ff->ids, ff->mem[IPBLOCK_FLAT_IDS], ff->sz.ids_elems);
	for (int s = 0; s < 2 && !ret; s++) {
		ff->trie_fd[s] = trie_fd(m, s, family);
		ret = flat_attach(&ff->t[s], family, &ff->sz,
				  ff->mem[s ? IPBLOCK_FLAT_TOP_B : IPBLOCK_FLAT_TOP],
				  ff->mem[s ? IPBLOCK_FLAT_DATA_B : IPBLOCK_FLAT_DATA], &ff->ids,
				  (unsigned)s, trie_parent, &ff->trie_fd[s]);
	}
	if (ret)
		goto fail;
	ff->on = true;
	*out = ff;
	return 0;
fail:
	flat_family_unmap(ff);
	return ret;
}

int maps_flat_info(const struct ipblock_maps *m, int family, int set, struct maps_flat_info *out)
{
	struct flat_family *ff;
	struct flat_stats st;
	int ret = flat_family(m, family, &ff);

	if (ret)
		return ret;
	if (!ff)
		return -EOPNOTSUPP;
	flat_stats(&ff->t[set ? 1 : 0], &st);
	*out = (struct maps_flat_info){
		.long_rules = st.long_rules - st.missing,
		.fallback_regions = st.fallback_regions,
		.ext_regions = st.ext_regions,
		.split_regions = st.split_regions,
		.nodes = st.nodes,
		.mixed_blocks = st.mixed_blocks,
		.blocks = st.blocks,
	};
	for (uint32_t i = 1; i < ff->ids.n; i++)
		out->ids_used += ff->ids.rules[i].sets != 0;
	return 0;
}

static int config_read(const struct ipblock_maps *m, struct ipblock_config *cfg)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(m->fd[IPBLOCK_MAP_CONFIG], &zero, cfg) ? -errno : 0;
}

static int config_write(const struct ipblock_maps *m, const struct ipblock_config *cfg)
{
	__u32 zero = 0;

	/* An 8-byte value copied at once: the program sees old or new. */
	return bpf_map_update_elem(m->fd[IPBLOCK_MAP_CONFIG], &zero, cfg, BPF_ANY) ? -errno : 0;
}

static int flat_rebuild(const struct ipblock_maps *m);

/*
 * Start a change of the rules of family (AF_UNSPEC: both): map its tables,
 * recompile every table if the last writer died half-way, and leave the
 * dirty mark for as long as tries and tables may disagree.  *on: the
 * tables are in use.  Mapping costs a few ms per 100 MiB, so a one-rule
 * change maps only its own family.
 */
static int change_begin(const struct ipblock_maps *m, int family, bool *on)
{
	struct flat_family *f4 = NULL, *f6 = NULL;
	struct ipblock_config cfg;
	int ret = 0;

	if (family != AF_INET6)
		ret = flat_family(m, AF_INET, &f4);
	if (!ret && family != AF_INET)
		ret = flat_family(m, AF_INET6, &f6);
	if (ret)
		return ret;
	*on = f4 || f6;
	if (!*on)
		return 0;
	m->flat->damaged = false;
	ret = config_read(m, &cfg);
	if (!ret && (cfg.flags & IPBLOCK_CONFIG_DIRTY)) {
		ret = flat_family(m, AF_INET, &f4);
		if (!ret)
			ret = flat_family(m, AF_INET6, &f6);
		if (!ret)
			ret = flat_rebuild(m);
		if (!ret)
			ret = config_read(m, &cfg);
	}
	if (ret)
		return ret;
	cfg.flags |= IPBLOCK_CONFIG_DIRTY;
	return config_write(m, &cfg);
}

/* End a change: clear the dirty mark unless the tables were left behind. */
static void change_end(const struct ipblock_maps *m, bool on)
{
	struct ipblock_config cfg;

	if (!on || m->flat->damaged || config_read(m, &cfg))
		return;
	cfg.flags &= ~IPBLOCK_CONFIG_DIRTY;
	config_write(m, &cfg);
}

/* The mapped tables of family, or NULL (trie lookup, or not mapped yet). */
static struct flat_family *flat_on(const struct ipblock_maps *m, int family)
{
	struct flat_family *ff = m->flat ? &m->flat->fam[family == AF_INET ? 0 : 1] : NULL;

	return ff && ff->on ? ff : NULL;
}

static void flat_damaged(const struct ipblock_maps *m)
{
	if (m->flat)
		m->flat->damaged = true;
}

/* Fill the trie key for p; returns the fd of p's family in the given set. */
static int rule_key_set(const struct ipblock_maps *m, int set, const struct cidr *p, void *key)
{
	if (p->family == AF_INET) {
		struct ipblock_key_v4 *k = key;

		k->prefixlen = p->len;
		memcpy(k->addr, p->addr, sizeof(k->addr));
		return trie_fd(m, set, AF_INET);
	}
	struct ipblock_key_v6 *k = key;

	k->prefixlen = p->len;
	memcpy(k->addr, p->addr, sizeof(k->addr));
	return trie_fd(m, set, AF_INET6);
}

/* The kernel's value for r. */
static struct ipblock_rule value_of(const struct rule *r)
{
	return (struct ipblock_rule){
		.action = r->action, .prefixlen = r->prefix.len, .flags = r->flags, .rule_id = r->id
	};
}

static int set_update(const struct ipblock_maps *m, int set, const struct rule *r)
{
	struct ipblock_key_v6 key = {};
	struct ipblock_rule v = value_of(r);
	int fd = rule_key_set(m, set, &r->prefix, &key);

	return bpf_map_update_elem(fd, &key, &v, BPF_ANY) ? -errno : 0;
}

static int set_delete(const struct ipblock_maps *m, int set, const struct cidr *p)
{
	struct ipblock_key_v6 key = {};
	int fd = rule_key_set(m, set, p, &key);

	/* Deletion in an LPM trie is by exact prefix. */
	return bpf_map_delete_elem(fd, &key) ? -errno : 0;
}

static int set_get(const struct ipblock_maps *m, int set, const struct cidr *p, struct rule *out)
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
	*out = (struct rule){
		.prefix = *p, .action = found.action, .flags = found.flags, .id = found.rule_id
	};
	return 0;
}

/* Both tries of r's family, B first: the same size, so a full B means a full A. */
static int tries_set(const struct ipblock_maps *m, const struct rule *r, bool in_b,
		     const struct rule *old_b)
{
	int ret = set_update(m, 1, r);

	if (ret)
		return ret;
	ret = set_update(m, 0, r);
	if (ret) {
		/* Put B back as it was: nothing half-done. */
		if (in_b)
			set_update(m, 1, old_b);
		else
			set_delete(m, 1, &r->prefix);
	}
	return ret;
}

/*
 * With the flat tables, r gets an id (the one its prefix has, else a free
 * one) and both tables follow the tries: B first, then A, each an update
 * that judges every address by the old or the new rule at every instant.
 */
int maps_rule_set(const struct ipblock_maps *m, const struct rule *r)
{
	const struct cidr *p = &r->prefix;
	struct rule old[2], v = *r;
	struct flat_family *ff;
	bool in[2], on, fresh = false;
	int ret = change_begin(m, p->family, &on);

	if (ret)
		return ret;
	ff = flat_on(m, p->family);
	v.id = 0;
	for (int s = 0; s < 2; s++)
		in[s] = set_get(m, s, p, &old[s]) == 0;
	if (ff) {
		v.id = in[0] && old[0].id ? old[0].id : in[1] ? old[1].id : 0;
		if (!v.id) {
			ret = flat_ids_alloc(&ff->ids, p->len, &v.id);
			if (ret)
				goto out;
			fresh = true;
		}
	}
	ret = tries_set(m, &v, in[1], &old[1]);
	if (ret) {
		if (fresh)
			flat_ids_release(&ff->ids, v.id);
		goto out;
	}
	for (int s = 1; ff && s >= 0; s--) {
		int err = flat_add(&ff->t[s], &v, in[s] ? old[s].id : 0);

		if (err) {
			flat_damaged(m);
			ret = err;
		}
	}
out:
	change_end(m, on);
	return ret;
}

int maps_rule_get(const struct ipblock_maps *m, const struct cidr *p, struct rule *out)
{
	return set_get(m, 0, p, out);
}

int maps_rule_delete(const struct ipblock_maps *m, const struct cidr *p)
{
	struct rule old[2];
	struct flat_family *ff;
	int ret[2], err;
	bool on;

	err = change_begin(m, p->family, &on);
	if (err)
		return err;
	ff = flat_on(m, p->family);
	for (int s = 1; s >= 0; s--) {
		bool had = set_get(m, s, p, &old[s]) == 0;

		ret[s] = set_delete(m, s, p);
		if (ff && had && !ret[s] && old[s].id) {
			/* The trie first: the table asks it for what p covered. */
			err = flat_delete(&ff->t[s], &old[s]);
			if (err && err != -ENOENT) {
				flat_damaged(m);
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
		return m->fd[set ? IPBLOCK_MAP_V4_B : IPBLOCK_MAP_V4];
	return m->fd[set ? IPBLOCK_MAP_V6_B : IPBLOCK_MAP_V6];
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

/* The rule a trie holds under key -> v. */
static void rule_of_kernel(int family, const void *key, const struct ipblock_rule *v,
			   struct rule *r)
{
	key_to_cidr(family, key, &r->prefix);
	r->action = v->action;
	r->flags = v->flags;
	r->id = v->rule_id;
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
	int ret = read_trie(m->fd[IPBLOCK_MAP_V4], AF_INET, count_chunk, &c);

	if (!ret)
		ret = read_trie(m->fd[IPBLOCK_MAP_V6], AF_INET6, count_chunk, &c);
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

	if (bpf_obj_get_info_by_fd(m->fd[family == AF_INET ? IPBLOCK_MAP_V4 : IPBLOCK_MAP_V6],
				   &info, &len))
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

	if (bpf_map_lookup_elem(m->fd[IPBLOCK_MAP_CONFIG], &zero, &cfg))
		return -errno;
	*set = cfg.active_set;
	return 0;
}

static int set_active(const struct ipblock_maps *m, uint32_t set)
{
	struct ipblock_config cfg;
	int ret = config_read(m, &cfg);

	/* The flags (the dirty mark) stay as they are. */
	cfg.active_set = set;
	return ret ? ret : config_write(m, &cfg);
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

/* --- reading and writing whole sets ----------------------------------------- */

static int vec_chunk(int family, const uint8_t *keys, const struct ipblock_rule *vals, size_t n,
		     void *ctx)
{
	struct ruleset *v = ctx;
	size_t ksz = key_size(family);
	int ret = ruleset_reserve(v, n);

	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct rule *r = &v->r[v->n++];

		rule_of_kernel(family, keys + i * ksz, &vals[i], r);
	}
	return 0;
}

/* Every rule of one set, both families, sorted. */
static int read_set(const struct ipblock_maps *m, int set, struct ruleset *v)
{
	int ret;

	*v = (struct ruleset){};
	ret = read_trie(trie_fd(m, set, AF_INET), AF_INET, vec_chunk, v);
	if (!ret)
		ret = read_trie(trie_fd(m, set, AF_INET6), AF_INET6, vec_chunk, v);
	if (!ret && v->cap > v->n + 1) {
		/* Give back the growth slack before sorting allocates its own. */
		struct rule *r = realloc(v->r, (v->n + 1) * sizeof(*r));

		if (r) {
			v->r = r;
			v->cap = v->n + 1;
		}
	}
	if (!ret)
		ret = ruleset_sort(v->r, NULL, v->n);
	if (ret) {
		free(v->r);
		*v = (struct ruleset){};
	}
	return ret;
}

int maps_rules_read(const struct ipblock_maps *m, struct rule **out, size_t *n)
{
	struct ruleset v;
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
	struct ruleset v;
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
static int read_both(const struct ipblock_maps *m, struct ruleset *a, struct ruleset *b)
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
		*a = *b = (struct ruleset){};
	}
	return ret;
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

static int stage_add(struct stage *s, const struct rule *r)
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
	s->vals[s->n] = value_of(r);
	if (++s->n == BATCH)
		return stage_flush(s);
	return 0;
}

static int stage_old(const struct rule *old, void *ctx)
{
	return stage_add(ctx, old);
}

static int stage_new(const struct rule *new, void *ctx)
{
	return stage_add(ctx, new);
}

static int stage_changed(const struct rule *old, const struct rule *new, void *ctx)
{
	(void)old;
	return stage_add(ctx, new);
}

/* One writer's share of a sync phase: a prefix range of have and want. */
struct sync_job {
	const struct ipblock_maps *m;
	int set;
	bool del;
	const struct rule *have, *want;
	size_t nh, nw;
	int ret;
};

static void *sync_job_run(void *arg)
{
	static const struct ruleset_diff dels = { .gone = stage_old };
	static const struct ruleset_diff puts = { .added = stage_new, .changed = stage_changed };
	struct sync_job *j = arg;
	struct stage *s = malloc(sizeof(*s));

	j->ret = -ENOMEM;
	if (!s)
		return NULL;
	*s = (struct stage){ .m = j->m, .set = j->set, .del = j->del };
	j->ret = ruleset_diff(j->have, j->nh, j->want, j->nw, j->del ? &dels : &puts, s);
	if (!j->ret)
		j->ret = stage_flush(s);
	free(s);
	return NULL;
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
/* What the flat tables of the set do when sync_set() has brought its trie to want. */
enum follow {
	FOLLOW_NONE, /* nothing: the caller sees to them */
	FOLLOW_DIFF, /* apply the diff, or compile afresh */
	FOLLOW_COPY, /* as FOLLOW_DIFF, or copy the other set's, which holds want */
};

struct follow_job;
static int follow_plan(struct follow_job **jp, const struct ipblock_maps *m, int set,
		       const struct ruleset *have, const struct rule *want, size_t nw,
		       enum follow how);
static bool follow_needs_trie(const struct follow_job *j);
static void *follow_thread(void *arg);
static int follow_finish(struct follow_job *j, bool run);

static int sync_set(const struct ipblock_maps *m, int set, const struct ruleset *have,
		    const struct rule *want, size_t nw, enum follow follow)
{
	size_t k = writers_for(have->n + nw);
	size_t n = k > 1 ? k * CHUNKS_PER_WRITER : 1;
	size_t *hs = calloc(n + 1, sizeof(*hs)), *ws = calloc(n + 1, sizeof(*ws));
	struct sync_job *jobs = calloc(n, sizeof(*jobs));
	struct sync_pool pool = { .jobs = jobs };
	struct follow_job *fj = NULL;
	pthread_t tid[MAX_WRITERS], ft;
	bool started[MAX_WRITERS] = {}, flat_early = false;
	int ret = -ENOMEM;

	if (!hs || !ws || !jobs || lfq_create(&pool.q, n))
		goto out;
	if (follow != FOLLOW_NONE) {
		ret = follow_plan(&fj, m, set, have, want, nw, follow);
		if (ret)
			goto out;
		/*
		 * Tables compiled afresh or copied do not ask the trie: one
		 * thread builds them while the writers fill the trie.
		 */
		if (fj && !follow_needs_trie(fj))
			flat_early = !pthread_create(&ft, NULL, follow_thread, fj);
	}
	hs[n] = have->n;
	ws[n] = nw;
	for (size_t t = 1; t < n; t++) {
		if (nw >= have->n) {
			ws[t] = t * nw / n;
			hs[t] = ruleset_lower_bound(have->r, have->n, &want[ws[t]].prefix);
		} else {
			hs[t] = t * have->n / n;
			ws[t] = ruleset_lower_bound(want, nw, &have->r[hs[t]].prefix);
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
				break;
		}
		if (ret)
			break;
		for (size_t t = 1; t < k; t++)
			started[t] = !pthread_create(&tid[t], NULL, sync_worker, &pool);
		sync_worker(&pool);
		for (size_t t = 1; t < k; t++)
			if (started[t])
				pthread_join(tid[t], NULL);
		ret = atomic_load(&pool.ret);
	}
	if (flat_early) {
		pthread_join(ft, NULL);
		/* A trie left short of want leaves the tables ahead of it. */
		if (ret)
			flat_damaged(m);
	}
	/* Otherwise one writer for the tables, once the trie is what they compile. */
	if (fj) {
		int fret = follow_finish(fj, !flat_early && !ret);

		if (!ret)
			ret = fret;
	}
out:
	lfq_destroy(pool.q);
	free(jobs);
	free(hs);
	free(ws);
	return ret;
}

/* --- the flat tables: following the tries in bulk ----------------------------- */

/* Empty set's table of family and compile it from want[0..n) (that family's rules). */
static int table_build(struct flat_family *ff, int set, const struct rule *want, size_t n)
{
	flat_clear(&ff->t[set]);
	return flat_build(&ff->t[set], want, n);
}

/*
 * Whether copying the other set's tables (memcpy of their bytes, ~2 GB/s
 * here) beats applying n changes one by one (~0.5 us each): above about
 * 100,000 changes at the default capacity.
 */
static bool copy_pays(const struct flat_family *ff, size_t n)
{
	return n > (ff->sz.top_bytes + ff->sz.data_bytes) / 1500;
}

/*
 * Bringing an inactive set's tables from have to want, the trie being at
 * want (or getting there): per family the diff applied change by change,
 * or, when most of the table changes, the table compiled afresh (shortest
 * rules first, each region written by few rules) or copied from the other
 * set when that one holds want.  Only the first asks the trie (a delete
 * looks up what covered the prefix), so only it must wait for the trie.
 */
enum follow_way {
	WAY_NONE,
	WAY_APPLY,
	WAY_BUILD,
	WAY_COPY,
};

struct follow_job {
	const struct ipblock_maps *m;
	int set;
	struct {
		enum follow_way way;
		struct ruleset_changes v; /* WAY_APPLY: the diff */
		const struct rule *want;  /* the family's part of want */
		size_t n;
	} fam[2];
	int ret;
};

static int follow_plan(struct follow_job **jp, const struct ipblock_maps *m, int set,
		       const struct ruleset *have, const struct rule *want, size_t nw,
		       enum follow how)
{
	struct follow_job *j = calloc(1, sizeof(*j));
	int ret = 0;

	*jp = j;
	if (!j)
		return -ENOMEM;
	j->m = m;
	j->set = set;
	for (int f = 0; f < 2 && !ret; f++) {
		int family = f ? AF_INET6 : AF_INET;
		struct flat_family *ff = flat_on(m, family);
		const struct rule *h;
		size_t nh;

		if (!ff)
			continue;
		ruleset_family(have->r, have->n, family, &h, &nh);
		ruleset_family(want, nw, family, &j->fam[f].want, &j->fam[f].n);
		ret = ruleset_changes(h, nh, j->fam[f].want, j->fam[f].n, &j->fam[f].v);
		if (!j->fam[f].v.n)
			j->fam[f].way = WAY_NONE;
		else if (how == FOLLOW_COPY && copy_pays(ff, j->fam[f].v.n))
			j->fam[f].way = WAY_COPY;
		else if (j->fam[f].v.n > j->fam[f].n / 2)
			j->fam[f].way = WAY_BUILD;
		else
			j->fam[f].way = WAY_APPLY;
		if (j->fam[f].way != WAY_APPLY)
			ruleset_changes_free(&j->fam[f].v);
	}
	/* Nothing to do (no change, or the tries alone): no job. */
	if (ret || (j->fam[0].way == WAY_NONE && j->fam[1].way == WAY_NONE)) {
		follow_finish(j, false);
		*jp = NULL;
	}
	return ret;
}

static bool follow_needs_trie(const struct follow_job *j)
{
	return j->fam[0].way == WAY_APPLY || j->fam[1].way == WAY_APPLY;
}

static int follow_run(struct follow_job *j)
{
	for (int f = 0; f < 2; f++) {
		struct flat_family *ff = flat_on(j->m, f ? AF_INET6 : AF_INET);
		struct flat *t = ff ? &ff->t[j->set] : NULL;
		int ret = 0;

		switch (j->fam[f].way) {
		case WAY_NONE:
			break;
		case WAY_APPLY:
			ret = flat_apply(t, j->fam[f].v.c, j->fam[f].v.n);
			break;
		case WAY_BUILD:
			ret = table_build(ff, j->set, j->fam[f].want, j->fam[f].n);
			break;
		case WAY_COPY:
			ret = flat_copy(t, &ff->t[!j->set]);
			break;
		}
		if (ret) {
			flat_damaged(j->m);
			return ret;
		}
	}
	return 0;
}

static void *follow_thread(void *arg)
{
	struct follow_job *j = arg;

	j->ret = follow_run(j);
	return NULL;
}

/* Run the job now (unless it ran in its thread, or must not), free it: its result. */
static int follow_finish(struct follow_job *j, bool run)
{
	int ret = run ? follow_run(j) : j->ret;

	ruleset_changes_free(&j->fam[0].v);
	ruleset_changes_free(&j->fam[1].v);
	free(j);
	return ret;
}

/*
 * Give every rule of want its id: the one its prefix has in the set judged
 * now, else in the other set, else a free one.  A prefix is one rule in
 * both sets and keeps its id across a replace, so what is indexed by id
 * (per-rule counters) follows the rule.  With the tries alone ids are 0.
 */
static int assign_ids(const struct ipblock_maps *m, struct rule *want, size_t nw,
		      const struct ruleset *act, const struct ruleset *other)
{
	size_t i = 0, j = 0;

	for (size_t k = 0; k < nw; k++) {
		struct rule *r = &want[k];
		struct flat_family *ff = flat_on(m, r->prefix.family);
		uint32_t id = 0;
		int ret;

		r->id = 0;
		if (!ff)
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
			ret = flat_ids_alloc(&ff->ids, r->prefix.len, &id);
			if (ret)
				return ret;
		}
		r->id = id;
	}
	return 0;
}

/* Forget ids reserved but never given to a rule (after a failed change). */
static void ids_reclaim(const struct ipblock_maps *m)
{
	for (int f = 0; f < 2; f++) {
		struct flat_family *ff = flat_on(m, f ? AF_INET6 : AF_INET);

		if (ff)
			flat_ids_reclaim(&ff->ids);
	}
}

/*
 * Make the ids of w (the rules judged now) usable for a rebuild: a valid
 * id (nonzero, in range, not already taken by an earlier rule) is kept and
 * reserved, any other replaced by a free one.  The tables of the set being
 * compiled were cleared, so only the other set's rules hold ids.
 */
#define KEPT 0x80000000u

static int rebuild_ids(const struct ipblock_maps *m, struct rule *w, size_t n)
{
	uint8_t *seen[2] = {};
	int ret = 0;

	ids_reclaim(m);
	for (int f = 0; f < 2 && !ret; f++) {
		struct flat_family *ff = flat_on(m, f ? AF_INET6 : AF_INET);

		if (ff && !(seen[f] = calloc(ff->ids.n / 8 + 1, 1)))
			ret = -ENOMEM;
	}
	/* Keep the valid ids first, so that none is handed to another rule. */
	for (int pass = 0; pass < 2 && !ret; pass++) {
		for (size_t k = 0; k < n && !ret; k++) {
			int f = w[k].prefix.family == AF_INET ? 0 : 1;
			struct flat_family *ff = flat_on(m, w[k].prefix.family);
			uint32_t id = w[k].id;
			bool valid;

			if (!ff)
				continue;
			valid = id && id < ff->ids.n && !(seen[f][id / 8] & (1u << (id % 8)));
			if (pass == 0 && valid) {
				seen[f][id / 8] |= (uint8_t)(1u << (id % 8));
				ff->ids.rules[id].flags |= FLAT_RULE_RESERVED;
				w[k].id |= KEPT; /* ids stay below it */
			} else if (pass == 0) {
				w[k].id = 0;
			} else if (id & KEPT) {
				w[k].id = id & ~KEPT;
			} else {
				ret = flat_ids_alloc(&ff->ids, w[k].prefix.len, &w[k].id);
			}
		}
	}
	free(seen[0]);
	free(seen[1]);
	return ret;
}

/*
 * Compile both sets' tables from the tries anew.  The set not judged now
 * is brought to the rules judged now (trie and table), the program moves
 * to it, then the other set follows, and A ends active, as at rest.
 */
static int flat_rebuild(const struct ipblock_maps *m)
{
	struct ruleset a = {}, b = {}, w = {};
	uint32_t active = 0;
	int ret = maps_active_set(m, &active), x = active ? 0 : 1;

	if (!ret)
		ret = read_both(m, &a, &b);
	if (ret)
		return ret;
	ret = ruleset_reserve(&w, (active ? b.n : a.n) + 1);
	if (ret)
		goto out;
	w.n = active ? b.n : a.n;
	memcpy(w.r, active ? b.r : a.r, w.n * sizeof(*w.r));
	for (int pass = 0; pass < 2 && !ret; pass++) {
		int set = pass ? !x : x;

		for (int f = 0; f < 2; f++) {
			struct flat_family *ff = flat_on(m, f ? AF_INET6 : AF_INET);

			if (ff)
				flat_clear(&ff->t[set]);
		}
		if (pass == 0)
			ret = rebuild_ids(m, w.r, w.n);
		if (!ret)
			ret = sync_set(m, set, set ? &b : &a, w.r, w.n, FOLLOW_NONE);
		for (int f = 0; f < 2 && !ret; f++) {
			int family = f ? AF_INET6 : AF_INET;
			struct flat_family *ff = flat_on(m, family);
			const struct rule *part;
			size_t n;

			ruleset_family(w.r, w.n, family, &part, &n);
			if (ff)
				ret = pass ? flat_copy(&ff->t[set], &ff->t[!set])
					   : table_build(ff, set, part, n);
		}
		/* Then the program judges by the set just compiled; A last. */
		if (!ret && (pass == 0 || set == 0))
			ret = set_active(m, (uint32_t)set);
		if (!ret)
			wait_for_readers();
	}
out:
	if (ret)
		flat_damaged(m);
	ids_reclaim(m);
	free(a.r);
	free(b.r);
	free(w.r);
	return ret;
}

int maps_flat_rebuild(const struct ipblock_maps *m)
{
	bool on;
	int ret = change_begin(m, AF_UNSPEC, &on);

	if (!ret && !on)
		return -EOPNOTSUPP;
	if (!ret)
		ret = flat_rebuild(m);
	if (on)
		change_end(m, on);
	return ret;
}

/* Every rule goes, as one replace: no packet meets half the rules. */
int maps_flush(const struct ipblock_maps *m, size_t *removed)
{
	struct maps_replace_stats st = {};
	int ret = maps_replace_rules(m, NULL, 0, &st);

	if (removed)
		*removed = ret ? 0 : st.deleted;
	return ret;
}

static int count_gone(const struct rule *old, void *ctx)
{
	(void)old;
	((struct maps_replace_stats *)ctx)->deleted++;
	return 0;
}

static int count_added(const struct rule *new, void *ctx)
{
	(void)new;
	((struct maps_replace_stats *)ctx)->added++;
	return 0;
}

static int count_changed(const struct rule *old, const struct rule *new, void *ctx)
{
	(void)old;
	(void)new;
	((struct maps_replace_stats *)ctx)->updated++;
	return 0;
}

/* Fill st's counts and capacities; -ENOSPC when want does not fit. */
static int check_capacity(const struct ipblock_maps *m, const struct rule *want, size_t nw,
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
static int replace_with(const struct ipblock_maps *m, struct rule *want, size_t nw,
			struct ruleset *a, struct ruleset *b, struct maps_replace_stats *st)
{
	static const struct ruleset_diff counters = { count_gone, count_added, count_changed };
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
		ret = sync_set(m, 0, a, b->r, b->n, FOLLOW_COPY);
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
	ret = assign_ids(m, want, nw, a, b);
	if (ret)
		return ret;
	ruleset_diff(a->r, a->n, want, nw, &counters, st);

	/* B is inactive: a failure here changed no verdict. */
	ret = sync_set(m, 1, b, want, nw, FOLLOW_DIFF);
	if (ret) {
		/*
		 * Put B back; a rule not yet written is simply absent
		 * (ENOENT).  B's tables follow only a complete sync, so
		 * they never left b.
		 */
		struct ruleset w = { want, nw, nw };

		sync_set(m, 1, &w, b->r, b->n, FOLLOW_NONE);
		return ret;
	}
	ret = set_active(m, 1);
	if (ret)
		return ret;
	wait_for_readers();
	/* At rest A and B agree and B's old content was already read: reuse it. */
	ret = sync_set(m, 0, ruleset_equal(a->r, a->n, b->r, b->n) ? b : a, want, nw, FOLLOW_COPY);
	if (ret)
		return ret; /* B stays active; the next replace repairs A first */
	ret = set_active(m, 0);
	if (!ret)
		wait_for_readers();
	return ret;
}

/* replace_with() inside a change: tables mapped, repaired, marked dirty. */
static int replace_change(const struct ipblock_maps *m, struct rule *want, size_t nw,
			  struct ruleset *a, struct ruleset *b, struct maps_replace_stats *st)
{
	bool on;
	int ret = change_begin(m, AF_UNSPEC, &on);

	if (ret)
		return ret;
	ret = read_both(m, a, b);
	if (!ret)
		ret = replace_with(m, want, nw, a, b, st);
	if (ret)
		ids_reclaim(m);
	change_end(m, on);
	return ret;
}

int maps_replace_rules(const struct ipblock_maps *m, const struct rule *rules, size_t n,
		       struct maps_replace_stats *st)
{
	struct maps_replace_stats ignored;
	struct ruleset a = {}, b = {}, want = {};
	int ret = ruleset_sorted(rules, n, &want);

	/* A copy of ours in any case: the rules' ids are filled in. */
	if (!ret && !want.r)
		ret = ruleset_copy(&want, rules, n);
	if (ret)
		return ret;
	/* A list that cannot fit is refused before the sets are read. */
	ret = check_capacity(m, want.r, want.n, st ? st : &ignored);
	if (!ret)
		ret = replace_change(m, want.r, want.n, &a, &b, st ? st : &ignored);
	ruleset_free(&a);
	ruleset_free(&b);
	ruleset_free(&want);
	return ret;
}

int maps_import_rules(const struct ipblock_maps *m, const struct rule *rules, size_t n,
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
	ret = maps_active_set(m, &active);
	if (!ret)
		ret = read_both(m, &a, &b);
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
		if (bpf_map_lookup_elem(m->fd[IPBLOCK_MAP_STATS], &slot, percpu)) {
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
