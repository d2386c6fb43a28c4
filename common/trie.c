// SPDX-License-Identifier: GPL-2.0
/* The LPM tries: keys, values, lookups, batched set I/O; see trie.h. */
#include <errno.h>
#include <string.h>

#include <bpf/bpf.h>

#include "trie.h"

int trie_parent(void *ctx, const struct cidr *p, struct rule *out)
{
	/* The IPv4 key is the first 8 bytes of this layout. */
	struct ipblock_key_v6 key = { .prefixlen = p->len };
	struct ipblock_rule val;

	/* An LPM lookup with key.prefixlen = p->len: the longest rule up to p->len. */
	memcpy(key.addr, p->addr, sizeof(key.addr));
	if (bpf_map_lookup_elem(*(const int *)ctx, &key, &val))
		return -errno;
	*out = (struct rule){
		.prefix = *p, .action = val.action, .flags = val.flags, .id = val.rule_id
	};
	out->prefix.len = val.prefixlen;
	cidr_clear_host_bits(&out->prefix);
	return 0;
}
