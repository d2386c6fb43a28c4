/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The LPM tries: rules to and from their keys and values, lookups of one
 * rule, and batched reads and writes of whole sets.
 */
#ifndef IPBLOCK_TRIE_H
#define IPBLOCK_TRIE_H

#include "cidr.h"
#include "ruleset.h"

/*
 * flat_parent_fn (flat.h) over a trie: ctx points to the trie's fd.  The
 * longest rule no longer than p covering p's address, -ENOENT when none.
 */
int trie_parent(void *ctx, const struct cidr *p, struct rule *out);

#endif /* IPBLOCK_TRIE_H */
