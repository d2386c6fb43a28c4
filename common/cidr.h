/* SPDX-License-Identifier: GPL-2.0 */
/* One prefix parser and formatter for every ipblock tool and test. */
#ifndef IPBLOCK_CIDR_H
#define IPBLOCK_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text cidr_format() writes, with the NUL: full IPv6 + "/128". */
#define CIDR_STRLEN 48

/* Longest error sentence cidr_parse() writes, with the NUL. */
#define CIDR_ERRLEN 256

/* A normalised prefix: host bits are always zero. */
struct cidr {
	uint8_t family;	  /* AF_INET or AF_INET6 */
	uint8_t len;	  /* 0..32 or 0..128 */
	uint8_t addr[16]; /* network byte order; IPv4 uses addr[0..3], rest zero */
};

/* Notices cidr_parse() reports through *notes (bit set = it happened). */
enum cidr_note {
	CIDR_NOTE_HOST_BITS = 1 << 0, /* host bits were set and have been cleared */
	CIDR_NOTE_V4_MAPPED = 1 << 1, /* ::ffff:a.b.c.d/len>=96 became a.b.c.d/(len-96) */
};

/*
 * Parse "ADDR" or "ADDR/LEN" (dotted-quad IPv4 or any RFC 4291/5952 IPv6
 * form).  A bare address is a /32 or /128.  Host bits are cleared and
 * IPv4-mapped IPv6 prefixes become IPv4 ones; *notes (may be NULL) says which
 * happened.  Returns 0, or -EINVAL with one sentence naming the input and the
 * problem in err (may be NULL; errlen CIDR_ERRLEN is always enough).
 */
int cidr_parse(const char *s, struct cidr *out, unsigned int *notes, char *err, size_t errlen);

/* Write "ADDR/LEN" (RFC 5952 for IPv6) into buf; returns buf. */
char *cidr_format(const struct cidr *c, char *buf, size_t buflen);

/* Total order: IPv4 before IPv6, then address bytes, then shorter first. */
int cidr_compare(const struct cidr *a, const struct cidr *b);

/* Whether addr (network byte order, 4 or 16 bytes by family) lies in c. */
bool cidr_contains(const struct cidr *c, const uint8_t *addr);

/* Address bits of the family: 32 or 128. */
static inline unsigned int cidr_max_len(const struct cidr *c)
{
	return c->family == AF_INET ? 32 : 128;
}

/* Clear every bit of c->addr past c->len; returns true if any was set. */
bool cidr_clear_host_bits(struct cidr *c);

#endif /* IPBLOCK_CIDR_H */
