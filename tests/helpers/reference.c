// SPDX-License-Identifier: GPL-2.0
/* The tests' reference longest-prefix match; see reference.h. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "reference.h"

int reference_match(const struct rulecache *rc, const struct cidr *p, struct rulecache_entry *out)
{
	if ((p->family != AF_INET && p->family != AF_INET6) || p->len > cidr_max_len(p))
		return -EINVAL;
	for (int len = p->len; len >= 0; len--) {
		struct cidr q = *p;
		int ret;

		/* rulecache_find() ignores the bits past q.len. */
		q.len = (uint8_t)len;
		ret = rulecache_find(rc, &q, out);
		if (ret != -ENOENT)
			return ret;
	}
	return -ENOENT;
}

int reference_lookup(const struct rulecache *rc, int family, const uint8_t *addr,
		     struct rulecache_entry *out)
{
	struct cidr p = { .family = (uint8_t)family };

	if (family != AF_INET && family != AF_INET6)
		return -EINVAL;
	p.len = (uint8_t)cidr_max_len(&p);
	memcpy(p.addr, addr, p.len / 8);
	return reference_match(rc, &p, out);
}
