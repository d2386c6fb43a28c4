// SPDX-License-Identifier: GPL-2.0
/* Operator-typed scalar values: parse, check, format; see value.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "value.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int refuse(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * Leading decimal digits of *s into *v, advancing *s.  Returns false when
 * there are none; *overflow is set (and *v saturated) past UINT64_MAX, so
 * that the caller reports the range rather than garbage.
 */
static bool take_digits(const char **s, uint64_t *v, bool *overflow)
{
	const char *p = *s;

	*v = 0;
	if (!is_digit(*p))
		return false;
	for (; is_digit(*p); p++) {
		if (__builtin_mul_overflow(*v, 10, v) || __builtin_add_overflow(*v, *p - '0', v)) {
			*overflow = true;
			*v = UINT64_MAX;
		}
	}
	*s = p;
	return true;
}

static int refuse_duration_range(uint64_t min, uint64_t max, char *why, size_t whylen)
{
	char lo[VALUE_DURATION_STRLEN], hi[VALUE_DURATION_STRLEN];

	value_format_duration(max, hi, sizeof(hi));
	if (!min)
		return refuse(why, whylen, "must be at most %s", hi);
	return refuse(why, whylen, "must be from %s to %s",
		      value_format_duration(min, lo, sizeof(lo)), hi);
}

int value_parse_duration(const char *s, uint64_t min, uint64_t max, uint64_t *secs, char *why,
			 size_t whylen)
{
	static const struct {
		char unit;
		uint64_t secs;
	} units[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
	const char *p = s;
	uint64_t total = 0;
	bool overflow = false;
	size_t next = 0; /* units[next..] may still follow: largest to smallest, once each */

	if (!*s)
		return refuse(why, whylen, "is empty");
	while (*p) {
		const char *start = p;
		uint64_t v, part;
		size_t u;

		if (!take_digits(&p, &v, &overflow))
			return refuse(why, whylen,
				      "expected a duration such as 90s, 30m, 1h, 2d or 1h30m");
		if (!*p) {
			/* Bare seconds only alone: is "1h30" 30 minutes or seconds? */
			if (start != s)
				return refuse(why, whylen,
					      "a number without a unit may only stand alone (write "
					      "1h30m, not 1h30)");
			total = v;
			break;
		}
		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++)
			if (units[u].unit == *p)
				break;
		if (u == sizeof(units) / sizeof(units[0]))
			return refuse(why, whylen, "unknown unit '%c'; use s, m, h or d", *p);
		if (u < next)
			return refuse(why, whylen,
				      "units go from largest to smallest, each once (e.g. 1d12h or "
				      "1h30m)");
		next = u + 1;
		p++;
		if (__builtin_mul_overflow(v, units[u].secs, &part) ||
		    __builtin_add_overflow(total, part, &total))
			overflow = true;
	}
	if (overflow || total < min || total > max)
		return refuse_duration_range(min, max, why, whylen);
	*secs = total;
	return 0;
}

char *value_format_duration(uint64_t secs, char *buf, size_t buflen)
{
	static const struct {
		char unit;
		uint64_t secs;
	} units[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
	size_t off = 0;

	if (!buflen)
		return buf;
	buf[0] = '\0';
	if (!secs) {
		snprintf(buf, buflen, "0s");
		return buf;
	}
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		uint64_t n = secs / units[u].secs;
		int w;

		if (!n)
			continue;
		secs -= n * units[u].secs;
		w = snprintf(buf + off, buflen - off, "%llu%c", (unsigned long long)n,
			     units[u].unit);
		if (w < 0 || (size_t)w >= buflen - off)
			break;
		off += (size_t)w;
	}
	return buf;
}

int value_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
		      size_t whylen)
{
	const char *p = s;
	uint64_t v, mult = 1;
	bool overflow = false;

	if (!*s)
		return refuse(why, whylen, "is empty");
	if (!take_digits(&p, &v, &overflow))
		goto bad;
	if (*p == 'k' || *p == 'K')
		mult = 1000;
	else if (*p == 'M')
		mult = 1000000;
	if (mult > 1)
		p++;
	if (*p)
		goto bad;
	if (__builtin_mul_overflow(v, mult, &v))
		overflow = true;
	if (overflow || v < min || v > max)
		return refuse(why, whylen, "must be from %llu to %llu", (unsigned long long)min,
			      (unsigned long long)max);
	*out = v;
	return 0;
bad:
	return refuse(why, whylen,
		      "expected a whole number, optionally with k (thousand) or M (million)");
}

int value_parse_bool(const char *s, bool *out, char *why, size_t whylen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return refuse(why, whylen, "expected yes or no (also true/false, on/off, 1/0)");
}

int value_parse_hostport(const char *s, struct value_hostport *out, char *why, size_t whylen)
{
	struct value_hostport hp;
	char host[INET6_ADDRSTRLEN];
	const char *port, *colon;
	size_t hlen;
	uint64_t p;
	bool v6 = s[0] == '[';

	if (v6) {
		const char *end = strchr(s, ']');

		if (!end)
			return refuse(why, whylen, "the '[' of an IPv6 address has no ']'");
		if (end[1] != ':')
			return refuse(why, whylen, "expected [IPv6]:PORT, e.g. [::1]:9657");
		hlen = (size_t)(end - s - 1);
		s++;
		port = end + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return refuse(why, whylen,
				      "expected ADDRESS:PORT, e.g. 127.0.0.1:9657 or [::1]:9657");
		if (memchr(s, ':', (size_t)(colon - s)))
			return refuse(why, whylen,
				      "an IPv6 address goes in brackets, e.g. [::1]:9657");
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (!hlen)
		return refuse(why, whylen,
			      "the address is missing (0.0.0.0 or [::] listens on every address)");
	if (hlen >= sizeof(host))
		goto bad_host;
	memcpy(host, s, hlen);
	host[hlen] = '\0';

	/* Digits only: value_parse_count() would take "9k" as 9000. */
	if (!*port || strspn(port, "0123456789") != strlen(port) ||
	    value_parse_count(port, 1, 65535, &p, NULL, 0))
		return refuse(why, whylen, "the port must be a number from 1 to 65535");

	memset(&hp, 0, sizeof(hp));
	if (v6) {
		hp.in6.sin6_family = AF_INET6;
		hp.in6.sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &hp.in6.sin6_addr) != 1)
			goto bad_host;
		hp.len = sizeof(hp.in6);
	} else {
		hp.in.sin_family = AF_INET;
		hp.in.sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, host, &hp.in.sin_addr) != 1)
			goto bad_host;
		hp.len = sizeof(hp.in);
	}
	*out = hp;
	return 0;
bad_host:
	if (v6)
		return refuse(why, whylen, "the address in brackets is not an IPv6 address");
	return refuse(why, whylen,
		      "the address is not an IPv4 address (names are not resolved; IPv6 goes in "
		      "brackets)");
}

char *value_format_hostport(const struct value_hostport *hp, char *buf, size_t buflen)
{
	char addr[INET6_ADDRSTRLEN];

	if (!buflen)
		return buf;
	if (hp->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &hp->in6.sin6_addr, addr, sizeof(addr));
		snprintf(buf, buflen, "[%s]:%u", addr, ntohs(hp->in6.sin6_port));
	} else if (hp->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &hp->in.sin_addr, addr, sizeof(addr));
		snprintf(buf, buflen, "%s:%u", addr, ntohs(hp->in.sin_port));
	} else {
		buf[0] = '\0';
	}
	return buf;
}

int value_check_name(const char *s, size_t maxlen, char *why, size_t whylen)
{
	size_t len = strlen(s);

	if (!len)
		return refuse(why, whylen, "is empty");
	if (len > maxlen)
		return refuse(why, whylen, "is longer than %zu characters", maxlen);
	if (!is_alnum(s[0]))
		goto bad;
	for (size_t i = 1; i < len; i++)
		if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			goto bad;
	return 0;
bad:
	return refuse(why, whylen,
		      "may hold only letters, digits, '.', '_' and '-', and starts with a letter "
		      "or digit");
}
