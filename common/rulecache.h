/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The user-space picture of the rule set: prefix -> action plus per-rule
 * metadata, with exact find, a reference longest-prefix match, sorted
 * listing and the difference between two rule sets.
 *
 * Layout, per family: the entries in one dense array, and one
 * open-addressing hash table per prefix length (33 for IPv4, 129 for IPv6)
 * whose 8-byte slots hold a key hash and an entry index, plus a bitmap of
 * the lengths in use.  Insert, remove and exact find are one hash probe; a
 * longest-prefix match masks the address once per length in use, longest
 * first, so it costs at most 33/129 probes whatever the number of rules.
 * Small slots keep probing and rehashing off the entries (a million inserts
 * take about a quarter of a second of CPU), and the dense array makes a
 * snapshot one memcpy.  A path-compressed trie would keep the rules sorted
 * but pays a pointer chase per level and a node allocation per rule on every
 * insert and lookup, while sorted output is only needed by listing and diff,
 * which sort a snapshot (O(n log n)) when asked.  Memory: about 80 bytes
 * per IPv4 rule at a million rules (56-byte entry, growth slack, slots at
 * 3/8..3/4 load); see the 1M test's output.
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
#include "maps.h"

/* One rule and its metadata; fixed size, so it can be copied around freely. */
struct rule_entry {
	struct cidr prefix;	     /* normalised: host bits clear */
	uint8_t action;		     /* IPBLOCK_ACTION_ALLOW or IPBLOCK_ACTION_DENY */
	uint8_t flags;		     /* as struct ipblock_rule.flags, 0 for now */
	uint32_t rule_id;	     /* as struct ipblock_rule.rule_id, 0 = none */
	uint64_t added_at;	     /* Unix time in seconds, 0 = unknown */
	uint64_t expires_at;	     /* Unix time in seconds, 0 = never */
	struct ipblock_counter hits; /* last counter snapshot, filled by callers */
};

struct rulecache;

/* What rulecache_diff() reports for one prefix. */
enum rulecache_change {
	RULECACHE_ADD = 1, /* only in the new set */
	RULECACHE_UPDATE,  /* in both, with another action (or rule_id, see flags) */
	RULECACHE_DELETE,  /* only in the old set */
};

/* rulecache_diff() flag: a changed rule_id also counts as an update. */
#define RULECACHE_DIFF_RULE_ID (1u << 0)

/* Per-rule callback of rulecache_foreach(); a non-zero return stops the walk. */
typedef int (*rulecache_cb)(const struct rule_entry *e, void *ctx);

/*
 * Per-change callback of rulecache_diff(): old is NULL for an add, new is
 * NULL for a delete.  A non-zero return stops the walk.
 */
typedef int (*rulecache_diff_cb)(enum rulecache_change change, const struct rule_entry *old,
				 const struct rule_entry *new, void *ctx);

/* An empty cache, or NULL with errno = ENOMEM. */
struct rulecache *rulecache_new(void);

/* Free the cache; no other thread may still be using it.  NULL is a no-op. */
void rulecache_free(struct rulecache *rc);

/*
 * Insert e, or replace the entry with the same prefix.  Host bits of
 * e->prefix are cleared first.  *created (may be NULL) is true for a new
 * prefix, false for a replacement.  -EINVAL for a bad family, length or
 * action; -ENOMEM.
 */
int rulecache_insert(struct rulecache *rc, const struct rule_entry *e, bool *created);

/* Remove the rule for exactly prefix p (host bits ignored); -ENOENT when absent. */
int rulecache_remove(struct rulecache *rc, const struct cidr *p);

/* Copy the rule for exactly prefix p (host bits ignored) into *out; -ENOENT when absent. */
int rulecache_find(const struct rulecache *rc, const struct cidr *p, struct rule_entry *out);

/*
 * Longest-prefix match for addr (network byte order, 4 or 16 bytes by
 * family): copy the winning rule into *out (may be NULL).  -ENOENT when no
 * rule covers addr, -EINVAL for a bad family.
 */
int rulecache_lookup(const struct rulecache *rc, int family, const uint8_t *addr,
		     struct rule_entry *out);

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
 * Replace the cache's content with the rules of the kernel maps (action,
 * flags and rule_id; the other metadata is zero).  An action other than
 * allow/deny is kept as found, so a listing shows what the kernel holds.  Readers see the old set
 * or the new one, never a mix; on error the cache is left unchanged.
 */
int rulecache_load_maps(struct rulecache *rc, const struct ipblock_maps *m);

/*
 * Report the changes that turn old into new, one callback each, in
 * cidr_compare() order of the prefix.  An update is an action change (and
 * a rule_id change with RULECACHE_DIFF_RULE_ID).  Returns 0, the callback's
 * non-zero value, -EINVAL for unknown flags, or -ENOMEM.
 */
int rulecache_diff(const struct rulecache *old, const struct rulecache *new, unsigned int flags,
		   rulecache_diff_cb cb, void *ctx);

#endif /* IPBLOCK_RULECACHE_H */
