/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The scalar values an operator types, in ipblock.conf and on the command
 * line alike: durations (90s, 1h30m), counts (100k), booleans and
 * HOST:PORT listen addresses, plus the names of lists and sources.
 *
 * Each parser takes the whole NUL-terminated value (no surrounding spaces)
 * and returns 0, or -EINVAL with a reason in why: a lower-case phrase without
 * the value itself, made to end a caller's sentence such as
 * "ipblock.conf:7: bad interval '5x': unknown unit 'x'; use s, m, h or d."
 * VALUE_WHYLEN is always enough for it.
 */
#ifndef IPBLOCK_VALUE_H
#define IPBLOCK_VALUE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest reason a value_parse_*() writes, with the NUL. */
#define VALUE_WHYLEN 160

/* Longest text value_format_duration() writes, with the NUL. */
#define VALUE_DURATION_STRLEN 32

/* Longest text value_format_hostport() writes, with the NUL: "[v6]:65535". */
#define VALUE_HOSTPORT_STRLEN (INET6_ADDRSTRLEN + 8)

/* A listen address, ready for bind(): sin_family says which member is valid. */
struct value_hostport {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	};
	socklen_t len; /* of the member in use, for bind() */
};

/*
 * A duration in seconds within [min, max]: "90s", "30m", "1h", "2d", units
 * combined from largest to smallest ("1h30m", "1d12h"), or a bare number of
 * seconds ("3600").
 */
int value_parse_duration(const char *s, uint64_t min, uint64_t max, uint64_t *secs, char *why,
			 size_t whylen);

/* Write secs the way value_parse_duration() reads it back ("1h30m", "0s"); returns buf. */
char *value_format_duration(uint64_t secs, char *buf, size_t buflen);

/* A count within [min, max]: decimal digits, optionally k or K (x1000) or M (x1000000). */
int value_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
		      size_t whylen);

/* yes/no, true/false, on/off, 1/0, in any case. */
int value_parse_bool(const char *s, bool *out, char *why, size_t whylen);

/*
 * "ADDR:PORT": a dotted-quad IPv4 address or a bracketed IPv6 address
 * ("[::1]:9657"), port 1-65535.  Names are refused rather than resolved, so
 * what is checked is what will be bound.
 */
int value_parse_hostport(const char *s, struct value_hostport *out, char *why, size_t whylen);

/* Write "ADDR:PORT" ("[ADDR]:PORT" for IPv6); returns buf. */
char *value_format_hostport(const struct value_hostport *hp, char *buf, size_t buflen);

/*
 * A name for a list, a source or an origin: 1 to maxlen letters, digits,
 * '.', '_' or '-', starting with a letter or a digit, so it is safe in file
 * names, metric labels and messages.
 */
int value_check_name(const char *s, size_t maxlen, char *why, size_t whylen);

#endif /* IPBLOCK_VALUE_H */
