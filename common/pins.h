/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ipblock's maps as one process holds them: create and size them, pin
 * them, open and check the pinned ones, serialise writers, and the small
 * reads and writes of the maps that are not rules -- capacity, the active
 * set and the config word, the verdict counters.  The only code that opens
 * ipblock's maps; struct pins, their fds, is the handle the other modules
 * take.
 */
#ifndef IPBLOCK_PINS_H
#define IPBLOCK_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ipblock.h"

struct pins {
	int fd[IPBLOCK_MAP_COUNT]; /* IPBLOCK_MAP_LIST order */
	int lock_fd;		   /* the pin directory, flock()ed by writers; -1: no locking */
	/*
	 * One syscall per rule, never a batch: what a kernel without batch
	 * operations on LPM tries gets anyway (trie.c falls back by itself);
	 * tests set it to run the fallback on any kernel.
	 */
	bool per_rule;
};

#define PINS_INIT                                                                                  \
	{                                                                                          \
		.fd = { [0 ... IPBLOCK_MAP_COUNT - 1] = -1 }, .lock_fd = -1                        \
	}

/* The trie of family in set (0 = A, 1 = B). */
static inline int pins_trie_fd(const struct pins *p, int set, int family)
{
	if (family == AF_INET)
		return p->fd[set ? IPBLOCK_MAP_V4_B : IPBLOCK_MAP_V4];
	return p->fd[set ? IPBLOCK_MAP_V6_B : IPBLOCK_MAP_V6];
}

/* Flat map k (enum ipblock_flat_map) of family. */
static inline int pins_flat_fd(const struct pins *p, int family, enum ipblock_flat_map k)
{
	return p->fd[(family == AF_INET ? IPBLOCK_MAP_FLAT4_BLOCKS : IPBLOCK_MAP_FLAT6_BLOCKS) + k];
}

/*
 * The kernel's account of a map's memory (memlock in /proc/self/fdinfo,
 * what bpftool shows), added to *bytes.
 */
int pins_memlock(int fd, uint64_t *bytes);

struct bpf_object;

/*
 * Before the program's object is loaded: give the tries their capacity,
 * max_rules per family (the other maps' sizes are fixed).  -EINVAL for 0.
 */
int pins_obj_size(struct bpf_object *obj, uint32_t max_rules);

/* Before loading: pin every map under pin_dir (existing pins are reused). */
int pins_obj_pin(struct bpf_object *obj, const char *pin_dir);

/*
 * After loading: the fds of obj's maps into p (they stay obj's: do not
 * pins_close() them).  No locking (lock_fd -1).
 */
int pins_from_obj(struct bpf_object *obj, struct pins *p);

/*
 * Check every map ipblock pins at pin_dir; *found gets how many are there.
 * 0, or the first error other than -ENOENT (-EPROTO: a pin of another
 * layout); err then holds a sentence naming the map.
 */
int pins_present(const char *pin_dir, size_t *found, char *err, size_t errlen);

/*
 * Open the pinned maps.  -ENOENT when ipblock is not loaded, -EPROTO when
 * a pin has another layout (err says which), -EACCES/-EPERM without
 * privilege.
 */
int pins_open(const char *pin_dir, struct pins *p, char *err, size_t errlen);

/* Close whichever fds are open and reset them to -1. */
void pins_close(struct pins *p);

/* Remove every map pin at pin_dir (absent ones are fine); the directory stays. */
void pins_unlink(const char *pin_dir);

/*
 * Serialise changes between processes: flock() on the pin directory,
 * exclusive for writers, shared for readers.  Taking it exclusive bumps
 * the generation in config_map (pins_generation()).  A no-op for private
 * maps.
 */
int pins_lock(const struct pins *p, bool exclusive);
void pins_unlock(const struct pins *p);

/* The generation of config_map: it changes whenever a writer took the exclusive lock. */
int pins_generation(const struct pins *p, uint64_t *gen);

/* max_entries of map i (enum ipblock_map). */
int pins_entries(const struct pins *p, enum ipblock_map i, uint32_t *max);

/* Capacity (max_entries) of a family's tries. */
int pins_capacity(const struct pins *p, int family, uint32_t *max);

/* The one entry of config_map: which set the program reads, the dirty mark. */
int pins_config_read(const struct pins *p, struct ipblock_config *cfg);
int pins_config_write(const struct pins *p, const struct ipblock_config *cfg);

/* Which set (0 = A, 1 = B) the program reads now. */
int pins_active_set(const struct pins *p, uint32_t *set);

/* Switch the program to set (one 8-byte store); the config's flags stay. */
int pins_set_active(const struct pins *p, uint32_t set);

/* Sum the per-CPU verdict counters of every interface into out[IPBLOCK_STAT_MAX]. */
int pins_stats_read(const struct pins *p, struct ipblock_counter *out);

/*
 * The same for the interface ifindex alone; interfaces whose ifindex is
 * IPBLOCK_STAT_IFACES or more (or 0) share one set of counters.
 */
int pins_stats_read_iface(const struct pins *p, unsigned int ifindex, struct ipblock_counter *out);

/* Printable name of a counter slot ("dropped (deny rule)", ...). */
const char *pins_stat_name(enum ipblock_stat s);

#endif /* IPBLOCK_PINS_H */
