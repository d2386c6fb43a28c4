/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The tests' reference longest-prefix match: a rule cache asked for the
 * exact prefix at every length, longest first.  It shares no code with the
 * flat tables or the kernel's trie it is held against.
 */
#ifndef IPBLOCK_TEST_REFERENCE_H
#define IPBLOCK_TEST_REFERENCE_H

#include <stdint.h>

#include "rulecache.h"

/*
 * The longest rule of rc no longer than p->len that covers p's address;
 * out may be NULL.  -ENOENT when none, -EINVAL for a bad prefix.
 */
int reference_match(const struct rulecache *rc, const struct cidr *p, struct rulecache_entry *out);

/*
 * The rule that judges addr (network byte order, 4 or 16 bytes by
 * family); out may be NULL.  -ENOENT when none, -EINVAL for a bad family.
 */
int reference_lookup(const struct rulecache *rc, int family, const uint8_t *addr,
		     struct rulecache_entry *out);

#endif /* IPBLOCK_TEST_REFERENCE_H */
