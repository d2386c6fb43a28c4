// SPDX-License-Identifier: GPL-2.0
/* A batch of rule changes as text; see batch.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "cidr.h"
#include "value.h"

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int push(struct batch *b, const struct batch_change *c)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct batch_change *n = realloc(b->c, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->c = n;
		b->cap = cap;
	}
	b->c[b->n++] = *c;
	return 0;
}

/* "del CIDR [source=NAME]": the part after "del". */
static int parse_del(const char *s, size_t len, struct batch_change *c, char *err, size_t errlen)
{
	char tok[2][CIDR_STRLEN + IPBLOCK_SOURCE_NAME_LEN + 8];
	size_t nt = 0, at = 0;

	while (at < len && s[at] != '#' && s[at] != ';') {
		size_t start;

		while (at < len && blank(s[at]))
			at++;
		if (at == len || s[at] == '#' || s[at] == ';')
			break;
		start = at;
		while (at < len && !blank(s[at]) && s[at] != '#' && s[at] != ';')
			at++;
		if (nt == 2 || at - start >= sizeof(tok[0])) {
			snprintf(err, errlen, "a deletion is del CIDR [source=NAME].");
			return -EINVAL;
		}
		memcpy(tok[nt], s + start, at - start);
		tok[nt++][at - start] = '\0';
	}
	if (nt == 0) {
		snprintf(err, errlen, "del needs a CIDR.");
		return -EINVAL;
	}
	if (cidr_parse(tok[0], &c->rule.prefix, NULL, err, errlen))
		return -EINVAL;
	if (nt == 2) {
		char why[VALUE_WHYLEN];

		if (strncmp(tok[1], "source=", 7)) {
			snprintf(err, errlen, "unexpected '%s'; a deletion is del CIDR [source=NAME].",
				 tok[1]);
			return -EINVAL;
		}
		if (value_check_name(tok[1] + 7, IPBLOCK_SOURCE_NAME_LEN - 1, why, sizeof(why))) {
			snprintf(err, errlen, "bad source name '%s': it %s.", tok[1] + 7, why);
			return -EINVAL;
		}
		memcpy(c->source, tok[1] + 7, strlen(tok[1] + 7) + 1);
	}
	return 0;
}

/* One line: 1 for a change, 0 for a blank or comment line, -EINVAL with err. */
static int parse_line(const char *s, size_t len, uint64_t now, struct batch_change *c, char *err,
		      size_t errlen)
{
	size_t at = 0, verb;

	while (at < len && blank(s[at]))
		at++;
	if (at == len || s[at] == '#' || s[at] == ';')
		return 0;
	verb = at;
	while (at < len && !blank(s[at]))
		at++;
	memset(c, 0, sizeof(*c));
	if (at - verb == 3 && !memcmp(s + verb, "add", 3)) {
		int ret = rulefile_parse_claim(s + at, len - at, 0, now, &c->rule, &c->deadline,
					       c->source, err, errlen);

		if (ret == 0) {
			snprintf(err, errlen, "add needs a CIDR and allow or deny.");
			return -EINVAL;
		}
		return ret < 0 ? ret : 1;
	}
	if (at - verb == 3 && !memcmp(s + verb, "del", 3)) {
		c->del = true;
		return parse_del(s + at, len - at, c, err, errlen) ? -EINVAL : 1;
	}
	snprintf(err, errlen, "'%.*s' is not a change: a line starts with add or del.",
		 (int)(at - verb > 32 ? 32 : at - verb), s + verb);
	return -EINVAL;
}

int batch_parse_text(struct batch *b, const char *name, const char *text, size_t len,
		     uint64_t now)
{
	uint32_t line = 0;

	memset(b, 0, sizeof(*b));
	for (size_t at = 0; at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) : len;
		char why[RULEFILE_WHYLEN];
		struct batch_change c;
		int ret;

		line++;
		ret = parse_line(text + at, end - at, now, &c, why, sizeof(why));
		if (ret < 0) {
			snprintf(b->error, sizeof(b->error), "%s:%u: %s", name, line, why);
			return ret;
		}
		if (ret) {
			c.line = line;
			if (push(b, &c))
				return -ENOMEM;
			*(c.del ? &b->dels : &b->adds) += 1;
		}
		at = end + 1;
	}
	return 0;
}

int batch_read(struct batch *b, const char *path, uint64_t now)
{
	bool is_stdin = !strcmp(path, "-");
	const char *name = is_stdin ? "stdin" : path;
	size_t len = 0, cap = 1 << 16;
	char *text = malloc(cap);
	int fd, ret = 0;

	memset(b, 0, sizeof(*b));
	if (!text)
		return -ENOMEM;
	fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(b->error, sizeof(b->error), "cannot open %s: %s.", path, strerror(-ret));
		free(text);
		return ret;
	}
	for (;;) {
		ssize_t got;

		if (len == cap) {
			char *n = realloc(text, cap * 2);

			if (!n) {
				ret = -ENOMEM;
				break;
			}
			text = n;
			cap *= 2;
		}
		got = read(fd, text + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ret = -errno;
			snprintf(b->error, sizeof(b->error), "cannot read %s: %s.", name,
				 strerror(-ret));
			break;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (!is_stdin)
		close(fd);
	if (!ret)
		ret = batch_parse_text(b, name, text, len, now);
	free(text);
	return ret;
}

void batch_free(struct batch *b)
{
	free(b->c);
	memset(b, 0, sizeof(*b));
}
