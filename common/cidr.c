// SPDX-License-Identifier: GPL-2.0
/*
 * The one prefix parser and formatter.  Written by hand rather than on top of
 * inet_pton() so that every rejection can say exactly what is wrong, and so
 * that the accepted grammar is ours and does not drift with the C library.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"

/*
 * An error sentence is "'<input>' is not a valid <noun>: <problem>."  The
 * input is echoed back escaped and cut short so that the whole sentence
 * always fits in CIDR_ERRLEN, however long or strange the input.
 */
#define ECHO_MAX    96	/* bytes of escaped input echoed, before "..." */
#define PROBLEM_MAX 128 /* bytes of the problem part */
#define SPAN_MAX    16	/* bytes of an input fragment quoted inside the problem */

struct perr {
	char msg[PROBLEM_MAX];
};

static void problem(struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct perr *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* Append one byte of input to buf so that it reads unambiguously on a terminal. */
static size_t escape_byte(char *buf, unsigned char ch)
{
	switch (ch) {
	case '\t':
		return (size_t)sprintf(buf, "\\t");
	case '\n':
		return (size_t)sprintf(buf, "\\n");
	case '\r':
		return (size_t)sprintf(buf, "\\r");
	case '\\':
		return (size_t)sprintf(buf, "\\\\");
	}
	if (ch < 0x20 || ch >= 0x7f)
		return (size_t)sprintf(buf, "\\x%02x", ch);
	buf[0] = (char)ch;
	buf[1] = '\0';
	return 1;
}

/* Escape at most max bytes' worth of s[0..n) into buf (size max + 4). */
static void escape_span(char *buf, size_t max, const char *s, size_t n)
{
	size_t used = 0, i;
	char one[5];

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		size_t w = escape_byte(one, (unsigned char)s[i]);

		if (used + w > max) {
			memcpy(buf + used, "...", 4);
			return;
		}
		memcpy(buf + used, one, w + 1);
		used += w;
	}
}

/* A short quoted fragment of the input, for use inside a problem text. */
struct span {
	char s[SPAN_MAX + 4];
};

static const char *span(struct span *sp, const char *s, size_t n)
{
	escape_span(sp->s, SPAN_MAX, s, n);
	return sp->s;
}

/* Name one unexpected byte so that the reader can find it in the input. */
static const char *char_name(struct span *sp, unsigned char ch)
{
	if (ch > 0x20 && ch < 0x7f && ch != '\\')
		snprintf(sp->s, sizeof(sp->s), "'%c'", ch);
	else
		snprintf(sp->s, sizeof(sp->s), "byte 0x%02x", ch);
	return sp->s;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Exactly four decimal octets 0..255.  A leading zero is refused because
 * inet_aton() and friends read "010" as octal 8: accepting it would let the
 * same text mean different addresses to different tools.
 */
static int parse_v4(const char *s, size_t n, uint8_t out[4], struct perr *e)
{
	struct span sp;
	int octets = 1;
	size_t i;

	/* Shape first, so that "16909060" is told it needs four octets. */
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			octets++;
		} else if (!is_digit(s[i])) {
			problem(e, "%s is not a decimal digit or '.'",
				char_name(&sp, (unsigned char)s[i]));
			return -EINVAL;
		}
	}
	if (octets != 4) {
		problem(e, "it has %d octet%s but a dotted-quad IPv4 address has exactly 4", octets,
			octets == 1 ? "" : "s");
		return -EINVAL;
	}

	i = 0;
	for (int o = 0; o < 4; o++, i++) {
		size_t start = i;
		unsigned int val = 0;

		for (; i < n && s[i] != '.'; i++) {
			/* Saturate: anything past 3 digits is out of range anyway. */
			if (val <= 255)
				val = val * 10 + (unsigned int)(s[i] - '0');
		}
		if (i == start) {
			problem(e, "it has an empty octet");
			return -EINVAL;
		}
		if (val > 255) {
			problem(e, "octet %s is larger than 255", span(&sp, s + start, i - start));
			return -EINVAL;
		}
		if (s[start] == '0' && i - start > 1) {
			problem(e, "octet '%s' has a leading zero, which some tools read as octal",
				span(&sp, s + start, i - start));
			return -EINVAL;
		}
		out[o] = (uint8_t)val;
	}
	return 0;
}

/*
 * RFC 4291 section 2.2 text: eight groups of 1-4 hex digits, one "::" standing
 * for one or more zero groups, and optionally a dotted quad as the last 32
 * bits.  Groups are collected in order, and the ones after "::" are moved to
 * the end at the close.
 */
/* The embedded dotted quad that ends s[start..n): the last two groups. */
static int parse_v6_quad(const char *s, size_t start, size_t n, uint16_t groups[8], int *ngroups,
			 struct perr *e)
{
	size_t end = start;
	uint8_t v4[4];

	/* The dotted quad runs to the end; only then is it the last 32 bits. */
	while (end < n && s[end] != ':')
		end++;
	if (end < n) {
		problem(e, "an embedded IPv4 address may only be the last 32 bits");
		return -EINVAL;
	}
	if (*ngroups > 6) {
		problem(e, "it has more than 8 groups");
		return -EINVAL;
	}
	if (parse_v4(s + start, end - start, v4, e)) {
		char inner[PROBLEM_MAX];

		memcpy(inner, e->msg, sizeof(inner));
		problem(e, "in its embedded IPv4 part, %s", inner);
		return -EINVAL;
	}
	groups[(*ngroups)++] = (uint16_t)(v4[0] << 8 | v4[1]);
	groups[(*ngroups)++] = (uint16_t)(v4[2] << 8 | v4[3]);
	return 0;
}

/* The hex group s[start..end) (at most 4 digits) into *val. */
static int parse_v6_group(const char *s, size_t start, size_t end, size_t n, unsigned int *val,
			  struct perr *e)
{
	struct span sp;

	*val = 0;
	for (size_t i = start; i < end; i++) {
		int h = hex_value(s[i]);

		if (h < 0) {
			problem(e, "%s is not a hex digit, ':' or '.'",
				char_name(&sp, (unsigned char)s[i]));
			return -EINVAL;
		}
		*val = *val << 4 | (unsigned int)h;
		if (i - start >= 4) {
			size_t gend = start;

			while (gend < n && hex_value(s[gend]) >= 0)
				gend++;
			problem(e, "group '%s' has more than 4 hex digits",
				span(&sp, s + start, gend - start));
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * After a group, at s[*i] == ':': a second ':' is the gap (*gap gets the
 * group index it stands at).  *i moves past the colons.
 */
static int parse_v6_colons(const char *s, size_t n, size_t *i, int ngroups, int *gap,
			   struct perr *e)
{
	(*i)++;
	if (*i < n && s[*i] == ':') {
		if (*gap >= 0) {
			problem(e, "'::' may appear only once");
			return -EINVAL;
		}
		*gap = ngroups;
		(*i)++;
		if (*i < n && s[*i] == ':') {
			problem(e, "it contains ':::'");
			return -EINVAL;
		}
	} else if (*i == n) {
		problem(e, "it ends with a single ':'");
		return -EINVAL;
	}
	return 0;
}

/* Expand groups[0..ngroups) around the gap (or none) into the 16 bytes. */
static int place_v6(const uint16_t *groups, int ngroups, int gap, uint8_t out[16], struct perr *e)
{
	if (gap < 0 && ngroups != 8) {
		problem(e, "it has %d group%s and no '::' but an IPv6 address has 8", ngroups,
			ngroups == 1 ? "" : "s");
		return -EINVAL;
	}
	if (gap >= 0 && ngroups > 7) {
		problem(e, "it has 8 groups and a '::' that would stand for none");
		return -EINVAL;
	}
	memset(out, 0, 16);
	for (int g = 0; g < ngroups; g++) {
		int at = g;

		if (gap >= 0 && g >= gap)
			at = 8 - (ngroups - g);
		out[2 * at] = (uint8_t)(groups[g] >> 8);
		out[2 * at + 1] = (uint8_t)groups[g];
	}
	return 0;
}

static int parse_v6(const char *s, size_t n, uint8_t out[16], struct perr *e)
{
	uint16_t groups[8];
	int ngroups = 0, gap = -1; /* gap: index where "::" sits */
	size_t i = 0;

	if (n >= 1 && s[0] == ':') {
		if (n < 2 || s[1] != ':') {
			problem(e, "it starts with a single ':'");
			return -EINVAL;
		}
		gap = 0;
		i = 2;
		if (i < n && s[i] == ':') {
			problem(e, "it contains ':::'");
			return -EINVAL;
		}
	}
	while (i < n) {
		size_t end = i;
		unsigned int val;

		while (end < n && s[end] != ':' && s[end] != '.')
			end++;
		if (end < n && s[end] == '.') {
			if (parse_v6_quad(s, i, n, groups, &ngroups, e))
				return -EINVAL;
			break;
		}
		if (parse_v6_group(s, i, end, n, &val, e))
			return -EINVAL;
		if (ngroups == 8) {
			problem(e, "it has more than 8 groups");
			return -EINVAL;
		}
		groups[ngroups++] = (uint16_t)val;
		i = end;
		if (i == n)
			break;
		if (parse_v6_colons(s, n, &i, ngroups, &gap, e))
			return -EINVAL;
	}
	return place_v6(groups, ngroups, gap, out, e);
}

/* Decimal digits only: no sign, no space, no "0x"; leading zeros are harmless. */
static int parse_len(const char *s, size_t n, unsigned int max, unsigned int *len, struct perr *e)
{
	struct span sp;
	unsigned int val = 0;
	size_t i;

	if (n == 0) {
		problem(e, "the prefix length after '/' is missing");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (!is_digit(s[i])) {
			problem(e, "the prefix length '%s' is not a plain decimal number",
				span(&sp, s, n));
			return -EINVAL;
		}
		/* Saturate so that "/99999999999" cannot wrap round to a valid length. */
		if (val <= max)
			val = val * 10 + (unsigned int)(s[i] - '0');
	}
	if (val > max) {
		problem(e, "the prefix length %s is larger than %u", span(&sp, s, n), max);
		return -EINVAL;
	}
	*len = val;
	return 0;
}

static int parse(const char *s, struct cidr *c, unsigned int *notes, struct perr *e)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	size_t n = strlen(s), alen, i;
	const char *slash, *pct;
	unsigned int len, max;
	struct span sp;
	int ret;

	if (n == 0) {
		problem(e, "it is empty");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (is_space(s[i])) {
			problem(e, "it contains whitespace");
			return -EINVAL;
		}
	}

	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : n;
	if (alen == 0) {
		problem(e, "there is no address before the '/'");
		return -EINVAL;
	}
	pct = memchr(s, '%', alen);
	if (pct) {
		problem(e, "zone ids such as '%s' are not accepted in a prefix",
			span(&sp, pct, alen - (size_t)(pct - s)));
		return -EINVAL;
	}

	memset(c, 0, sizeof(*c));
	if (memchr(s, ':', alen)) {
		c->family = AF_INET6;
		ret = parse_v6(s, alen, c->addr, e);
	} else if (is_digit(s[0]) || memchr(s, '.', alen)) {
		c->family = AF_INET;
		ret = parse_v4(s, alen, c->addr, e);
	} else {
		problem(e, "it is neither a dotted-quad IPv4 address nor an IPv6 address");
		ret = -EINVAL;
	}
	if (ret)
		return ret;

	max = cidr_max_len(c);
	len = max;
	if (slash) {
		ret = parse_len(slash + 1, n - alen - 1, max, &len, e);
		if (ret)
			return ret;
	}
	c->len = (uint8_t)len;

	/*
	 * ::ffff:a.b.c.d is how dual-stack sockets show IPv4 peers; a rule on it
	 * is meant for the IPv4 address, which is where the XDP program looks.
	 * Below /96 the prefix also covers non-mapped space, so it stays IPv6.
	 */
	if (c->family == AF_INET6 && c->len >= 96 && !memcmp(c->addr, mapped, sizeof(mapped))) {
		c->family = AF_INET;
		c->len -= 96;
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		*notes |= CIDR_NOTE_V4_MAPPED;
	}
	if (cidr_clear_host_bits(c))
		*notes |= CIDR_NOTE_HOST_BITS;
	return 0;
}

int cidr_parse(const char *s, struct cidr *out, unsigned int *notes, char *err, size_t errlen)
{
	unsigned int found = 0;
	struct perr e = { { 0 } };
	struct cidr c;
	int ret;

	if (!s)
		s = "";
	ret = parse(s, &c, &found, &e);
	if (notes)
		*notes = ret ? 0 : found;
	if (!ret) {
		if (out)
			*out = c;
		if (err && errlen)
			err[0] = '\0';
		return 0;
	}
	if (err && errlen) {
		char echo[ECHO_MAX + 4];

		escape_span(echo, ECHO_MAX, s, strlen(s));
		snprintf(err, errlen, "'%s' is not a valid %s: %s.", echo,
			 strchr(s, '/') ? "prefix" : "address", e.msg);
	}
	return ret;
}

/* RFC 5952 section 4: the longest run of two or more zero groups, leftmost on a tie. */
static int format_v6(const uint8_t *a, char *buf, size_t size)
{
	int best = -1, best_len = 1, run = -1, g, w = 0;
	uint16_t groups[8];

	for (g = 0; g < 8; g++) {
		groups[g] = (uint16_t)(a[2 * g] << 8 | a[2 * g + 1]);
		if (groups[g] == 0) {
			if (run < 0)
				run = g;
			if (g - run + 1 > best_len) {
				best = run;
				best_len = g - run + 1;
			}
		} else {
			run = -1;
		}
	}

	for (g = 0; g < 8; g++) {
		if (g == best) {
			w += snprintf(buf + w, size - (size_t)w, "::");
			g += best_len - 1;
			continue;
		}
		if (g > 0 && g != best + best_len)
			w += snprintf(buf + w, size - (size_t)w, ":");
		w += snprintf(buf + w, size - (size_t)w, "%x", groups[g]);
	}
	return w;
}

char *cidr_format(const struct cidr *c, char *buf, size_t buflen)
{
	char tmp[CIDR_STRLEN];
	int w;

	if (!buflen)
		return buf;
	if (c->family == AF_INET) {
		w = snprintf(tmp, sizeof(tmp), "%u.%u.%u.%u", c->addr[0], c->addr[1], c->addr[2],
			     c->addr[3]);
	} else if (c->family == AF_INET6) {
		w = format_v6(c->addr, tmp, sizeof(tmp));
	} else {
		snprintf(buf, buflen, "<family %u>", c->family);
		return buf;
	}
	snprintf(tmp + w, sizeof(tmp) - (size_t)w, "/%u", c->len);
	snprintf(buf, buflen, "%s", tmp);
	return buf;
}

int cidr_compare(const struct cidr *a, const struct cidr *b)
{
	int ra = a->family == AF_INET ? 0 : 1;
	int rb = b->family == AF_INET ? 0 : 1;
	int d;

	if (ra != rb)
		return ra < rb ? -1 : 1;
	d = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (d)
		return d < 0 ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return 0;
}

bool cidr_contains(const struct cidr *c, const uint8_t *addr)
{
	unsigned int len = c->len, full, rem;

	if (len > cidr_max_len(c))
		len = cidr_max_len(c);
	full = len / 8;
	rem = len % 8;
	if (memcmp(c->addr, addr, full))
		return false;
	if (rem) {
		uint8_t mask = (uint8_t)(0xff << (8 - rem));

		return ((c->addr[full] ^ addr[full]) & mask) == 0;
	}
	return true;
}

bool cidr_clear_host_bits(struct cidr *c)
{
	unsigned int len = c->len, i;
	bool had = false;

	if (len > cidr_max_len(c))
		len = cidr_max_len(c);
	for (i = len / 8; i < sizeof(c->addr); i++) {
		/* Byte len/8 keeps its top len%8 bits; every later byte is all host bits. */
		uint8_t keep = i == len / 8 ? (uint8_t)(0xff00 >> (len % 8)) : 0;

		if (c->addr[i] & ~keep)
			had = true;
		c->addr[i] &= keep;
	}
	return had;
}
