/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The LPM tries, the authoritative rule store: rules to and from the
 * tries' keys and values, one rule at a time, and whole sets read or
 * written in batches.  Batches use the kernel's BPF_MAP_*_BATCH operations
 * (one syscall per few thousand rules); on a kernel whose tries refuse
 * them each call falls back to one syscall per rule.
 */
#ifndef IPBLOCK_TRIE_H
#define IPBLOCK_TRIE_H

#include <stdbool.h>
#include <stddef.h>

#include "cidr.h"
#include "pins.h"
#include "ruleset.h"

/* Rule p's trie key, in its family's layout (struct ipblock_key_v4/v6). */
void trie_key(const struct cidr *p, void *key);

/* Read one rule of set by exact prefix.  -ENOENT when absent. */
int trie_get(const struct pins *pins, int set, const struct cidr *p, struct rule *out);

/*
 * trie_get on the set the program reads: the other set's trie may lack what
 * the last replace added (it follows by deletions only).
 */
int trie_get_active(const struct pins *pins, const struct cidr *p, struct rule *out);

/* Write r into set's trie (its value: action, flags, id, length). */
int trie_put(const struct pins *pins, int set, const struct rule *r);

/* Delete p from set's trie, by exact prefix.  -ENOENT when absent. */
int trie_delete(const struct pins *pins, int set, const struct cidr *p);

/*
 * flat_parent_fn (flat.h) over a trie: ctx points to the trie's fd.  The
 * longest rule no longer than p covering p's address, -ENOENT when none.
 */
int trie_parent(void *ctx, const struct cidr *p, struct rule *out);

/* Number of rules per family in the active set; v4 or v6 may be NULL. */
int trie_count(const struct pins *pins, size_t *v4, size_t *v6);

/*
 * Every rule of set (0 = A, 1 = B), both families, sorted, into *out
 * (emptied first).  The walk sees a stable trie when the caller holds the
 * pin directory's lock, shared or exclusive.
 */
int trie_read_set(const struct pins *pins, int set, struct ruleset *out);

/* trie_read_set() of the set the program reads now (set A at rest). */
int trie_read(const struct pins *pins, struct ruleset *out);

/* Both sets at once (two threads: the tries share nothing). */
int trie_read_both(const struct pins *pins, struct ruleset *a, struct ruleset *b);

/*
 * Batched writes to one trie: rules go into a buffer (in cidr_compare()
 * order, so a family change flushes it) and out in batch syscalls.  Either
 * all deletes (absent prefixes are skipped) or all puts.
 */
struct trie_batch;

/* A batch of deletes (del) or puts to set's tries.  NULL on -ENOMEM. */
struct trie_batch *trie_batch_new(const struct pins *pins, int set, bool del);

/* Queue r (a put) or its prefix (a delete).  -ENOSPC when a trie is full. */
int trie_batch_add(struct trie_batch *b, const struct rule *r);

/* Write what is queued. */
int trie_batch_flush(struct trie_batch *b);

/* Free the batch; what was not flushed is dropped. */
void trie_batch_free(struct trie_batch *b);

#endif /* IPBLOCK_TRIE_H */
