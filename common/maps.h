/* SPDX-License-Identifier: GPL-2.0 */
/* Typed access to ipblock's pinned maps: the only code that touches map fds. */
#ifndef IPBLOCK_MAPS_H
#define IPBLOCK_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "ipblock.h"
#include "ruleset.h"

struct maps_flat;

struct ipblock_maps {
	int fd[IPBLOCK_MAP_COUNT]; /* IPBLOCK_MAP_LIST order */
	int lock_fd;		   /* the pin directory, flock()ed by writers; -1: no locking */
	/*
	 * The flat tables mmap()ed, made by the first change and released
	 * by maps_close() or maps_release(): state of this process only.
	 */
	struct maps_flat *flat;
};

#define IPBLOCK_MAPS_INIT                                                                          \
	{                                                                                          \
		.fd = { [0 ... IPBLOCK_MAP_COUNT - 1] = -1 }, .lock_fd = -1, .flat = NULL          \
	}

/* What a pinned map must look like to be reused by this build. */
struct maps_layout {
	const char *name;
	uint32_t type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t flags;
	uint32_t max_entries; /* 0: any (the tries' capacity is chosen at creation) */
};

/* The layouts of this build's maps, in IPBLOCK_MAP_LIST order. */
extern const struct maps_layout maps_layouts[IPBLOCK_MAP_COUNT];

/*
 * Check that the map pinned at pin_dir/l->name has this build's layout.
 * 0 when it matches, -ENOENT when nothing is pinned there, -EPROTO with a
 * sentence in err naming the difference; other -errno from the kernel.
 */
int maps_check_pinned(const char *pin_dir, const struct maps_layout *l, char *err, size_t errlen);

/*
 * Check every map ipblock pins at pin_dir; *found gets how many are there.
 * 0, or the first error other than -ENOENT (-EPROTO: a pin of another
 * layout); err then holds a sentence naming the map.
 */
int maps_pins_present(const char *pin_dir, size_t *found, char *err, size_t errlen);

/*
 * Open the pinned maps.  -ENOENT when ipblock is not loaded, -EPROTO
 * when a pin has another layout (err says which), -EACCES/-EPERM without
 * privilege.
 */
int maps_open_pinned(const char *pin_dir, struct ipblock_maps *m, char *err, size_t errlen);

/* Close whichever fds are open and reset them to -1; maps_release() too. */
void maps_close(struct ipblock_maps *m);

/*
 * Drop this process's state of the flat tables (their mappings) without
 * closing fds: for maps whose fds belong to someone else (a skeleton).
 */
void maps_release(struct ipblock_maps *m);

/*
 * How the program finds a source's rule.  MAPS_LOOKUP_FLAT: the flat
 * tables, compiled from the tries and kept in step with them (the
 * default; see common/flat.h for what they cost).  MAPS_LOOKUP_TRIE: the
 * LPM tries alone; the flat maps shrink to one element, rule ids are 0.
 */
enum maps_lookup {
	MAPS_LOOKUP_FLAT,
	MAPS_LOOKUP_TRIE,
};

/* "flat" / "trie", and back (-EINVAL). */
const char *maps_lookup_name(enum maps_lookup l);
int maps_lookup_parse(const char *s, enum maps_lookup *l);

struct bpf_object;

/*
 * Before the program's object is loaded: give every map its size for
 * max_rules rules per family and the chosen lookup.  -EINVAL for a
 * max_rules the flat tables cannot be sized for.
 */
int maps_obj_size(struct bpf_object *obj, uint32_t max_rules, enum maps_lookup lookup);

/* Before loading: pin every map under pin_dir (existing pins are reused). */
int maps_obj_pin(struct bpf_object *obj, const char *pin_dir);

/*
 * After loading: the fds of obj's maps into m (they stay obj's: release m
 * with maps_release(), not maps_close()).  No locking (lock_fd -1).
 */
int maps_from_obj(struct bpf_object *obj, struct ipblock_maps *m);

/*
 * Kernel memory the maps take for max_rules per family with this lookup,
 * not counting the tries, which grow with their rules (about 100 bytes a
 * rule each).  0 for an impossible size.
 */
uint64_t maps_lookup_bytes(uint32_t max_rules, enum maps_lookup lookup);

/* Which lookup the maps were made for (from the top arrays' size). */
int maps_lookup_mode(const struct ipblock_maps *m, enum maps_lookup *lookup);

/* What the flat tables of one family and set hold (for status and tests). */
struct maps_flat_info {
	uint32_t long_rules;	   /* rules longer than /24, found in the hash */
	uint32_t fallback_regions; /* /24 regions judged by the trie instead */
	uint32_t ext_regions;	   /* regions holding rules longer than /24 */
	uint32_t split_regions;	   /* of which crowded ones, judged by a tree of nodes */
	uint32_t nodes;		   /* nodes in those trees */
	uint32_t mixed_blocks;	   /* /16 blocks not answered by their summary alone */
	uint32_t blocks;	   /* /16 blocks in all */
	uint32_t ids_used;	   /* rule ids in use in the family (both sets) */
};

/*
 * Fill *out for family's tables of set (0 = A, 1 = B).  -EOPNOTSUPP with
 * MAPS_LOOKUP_TRIE.
 */
int maps_flat_info(const struct ipblock_maps *m, int family, int set, struct maps_flat_info *out);

/*
 * Recompile both sets' flat tables from the tries, with the atomicity of a
 * replace (every packet meets a complete table).  Writers run it
 * themselves when they find a change left half-done (IPBLOCK_CONFIG_DIRTY).
 */
int maps_flat_rebuild(const struct ipblock_maps *m);

/*
 * Serialise changes between processes: flock() on the pin directory,
 * exclusive for writers, shared for readers.  A no-op for private maps.
 */
int maps_lock(const struct ipblock_maps *m, bool exclusive);
void maps_unlock(const struct ipblock_maps *m);

/*
 * Add or update one rule in both sets and their flat tables (r->id is
 * ignored: with the flat lookup the prefix keeps the id it has, else gets a
 * free one).  -ENOSPC when the family's tries are full; nothing changes then.
 */
int maps_rule_set(const struct ipblock_maps *m, const struct rule *r);

/* Read one rule by exact prefix.  -ENOENT when absent. */
int maps_rule_get(const struct ipblock_maps *m, const struct cidr *p, struct rule *out);

/* Delete one rule, by exact prefix, from both sets.  -ENOENT when absent. */
int maps_rule_delete(const struct ipblock_maps *m, const struct cidr *p);

/* Number of rules per family. */
int maps_rule_count(const struct ipblock_maps *m, size_t *v4, size_t *v6);

/* Capacity (max_entries) of a family's map. */
int maps_capacity(const struct ipblock_maps *m, int family, uint32_t *max);

/*
 * Delete every rule of both families and sets, as a replace with the empty
 * set (no packet meets half the rules).  *removed (may be NULL) gets the count.
 */
int maps_flush(const struct ipblock_maps *m, size_t *removed);

/* Which set (0 = A, 1 = B) the program reads now. */
int maps_active_set(const struct ipblock_maps *m, uint32_t *set);

/*
 * Bulk access.  A rule set travels as a sorted array of struct rule
 * (ruleset.h); the kernel side uses batch map operations (one syscall per
 * few thousand rules) and falls back to one call per rule on kernels whose
 * tries lack them.
 */

/* What maps_replace_rules() and maps_import_rules() did, or would need. */
struct maps_replace_stats {
	size_t added, updated, deleted; /* prefixes, relative to the rule set before */
	size_t v4, v6;			/* rules per family in the new set, also on -ENOSPC */
	uint32_t cap_v4, cap_v6;	/* capacity per family */
};

/*
 * Read every rule of the set the program reads now (set A at rest), both
 * families, sorted; *out is malloc()ed (NULL for none), the caller frees it.
 */
int maps_rules_read(const struct ipblock_maps *m, struct rule **out, size_t *n);

/*
 * Make the rule set exactly rules[0..n) (sorted and unique; an unsorted
 * array is sorted on a copy, a repeated prefix is -EINVAL) so that every
 * packet is judged by the complete old set or the complete new one: bring
 * set B to the new rules, switch the program to B, bring A to them, switch
 * back.  -ENOSPC, before any change, when a family would exceed its
 * capacity (st says how many rules the set needs); on an error while B is
 * inactive B is put back and no verdict changed.  st may be NULL.  The
 * rules' ids are ignored: the maps give each prefix its id (the one it
 * has, else a free one).
 */
int maps_replace_rules(const struct ipblock_maps *m, const struct rule *rules, size_t n,
		       struct maps_replace_stats *st);

/*
 * Add rules[0..n) (sorted and unique, as above) to the current rule set,
 * replacing the action of prefixes already there, in one atomic switch:
 * no packet ever meets a half-imported list.  -ENOSPC before any change
 * when the union does not fit.
 */
int maps_import_rules(const struct ipblock_maps *m, const struct rule *rules, size_t n,
		      struct maps_replace_stats *st);

/*
 * Batch syscalls (the default) or one syscall per rule, which is what a
 * kernel without batch support on LPM tries gets automatically; for tests.
 */
void maps_set_batch(bool enabled);

/* Sum the per-CPU verdict counters into out[IPBLOCK_STAT_MAX]. */
int maps_stats_read(const struct ipblock_maps *m, struct ipblock_counter *out);

/* Printable name of a counter slot ("dropped", "passed-nomatch", ...). */
const char *maps_stat_name(enum ipblock_stat s);

#endif /* IPBLOCK_MAPS_H */
