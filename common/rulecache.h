/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The user-space picture of the rule set: rules plus per-rule metadata,
 * with exact find, a sorted walk, and whole-set load and snapshot as rule
 * arrays (ruleset.h).  It serves ipblock-rule -l now and is meant to be a
 * service's in-memory rule set, read by several threads at once.
 *
 * Layout, per family: the entries in one dense array, and one
 * open-addressing hash table per prefix length (33 for IPv4, 129 for IPv6)
 * whose 8-byte slots hold a key hash and an entry index.  Insert, remove
 * and exact find are one hash probe.  Small slots keep probing and
 * rehashing off the entries, and the dense array makes a snapshot one
 * memcpy.  Sorted output is only needed by listings, which sort a
 * snapshot (ruleset_order()) when asked.
 *
 * Every call takes the cache's rwlock internally (reads shared, changes
 * exclusive), so any number of threads may share one cache.  Callbacks run
 * on a private snapshot with the lock already dropped: they may call back
 * into the cache, even to change it.
 */
#ifndef IPBLOCK_RULECACHE_H
#define IPBLOCK_RULECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "ipblock.h"
#include "ruleset.h"

/* One rule and its metadata; fixed size, so it can be copied around freely. */
struct rulecache_entry {
	struct rule rule;	     /* its prefix normalised: host bits clear */
	uint64_t added_at;	     /* Unix time in seconds, 0 = unknown */
	uint64_t expires_at;	     /* Unix time in seconds, 0 = never */
	struct ipblock_counter hits; /* last counter snapshot, filled by callers */
};

struct rulecache;

/* Per-rule callback of rulecache_foreach(); a non-zero return stops the walk. */
typedef int (*rulecache_cb)(const struct rulecache_entry *e, void *ctx);

/* An empty cache, or NULL with errno = ENOMEM. */
struct rulecache *rulecache_new(void);

/* Free the cache; no other thread may still be using it.  NULL is a no-op. */
void rulecache_free(struct rulecache *rc);

/*
 * Insert e, or replace the entry with the same prefix.  Host bits of
 * e->rule.prefix are cleared first.  *created (may be NULL) is true for a new
 * prefix, false for a replacement.  -EINVAL for a bad family, length or
 * action; -ENOMEM.
 */
int rulecache_insert(struct rulecache *rc, const struct rulecache_entry *e, bool *created);

/* Remove the rule for exactly prefix p (host bits ignored); -ENOENT when absent. */
int rulecache_remove(struct rulecache *rc, const struct cidr *p);

/* Copy the rule for exactly prefix p (host bits ignored) into *out; -ENOENT when absent. */
int rulecache_find(const struct rulecache *rc, const struct cidr *p, struct rulecache_entry *out);

/* Number of rules of AF_INET, AF_INET6, or both for AF_UNSPEC. */
size_t rulecache_count(const struct rulecache *rc, int family);

/* Heap bytes the cache holds now (tables and bookkeeping), for sizing. */
size_t rulecache_memory(const struct rulecache *rc);

/* Remove every rule. */
void rulecache_clear(struct rulecache *rc);

/*
 * Call cb for every rule in cidr_compare() order (IPv4 first).  Returns 0,
 * the callback's non-zero value, or -ENOMEM.
 */
int rulecache_foreach(const struct rulecache *rc, rulecache_cb cb, void *ctx);

/*
 * Replace the cache's content with r[0..n) (the other metadata zero), in
 * one step: readers see the old set or the new one, never a mix.  An
 * action other than allow/deny is kept as given, so a listing shows what
 * the kernel holds.  -EINVAL for a bad prefix, -ENOMEM; on error the cache
 * is left unchanged.
 */
int rulecache_load(struct rulecache *rc, const struct rule *r, size_t n);

/* Every rule of the cache, in cidr_compare() order, into *out (emptied first).  -ENOMEM. */
int rulecache_rules(const struct rulecache *rc, struct ruleset *out);

#endif /* IPBLOCK_RULECACHE_H */
