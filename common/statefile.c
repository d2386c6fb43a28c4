// SPDX-License-Identifier: GPL-2.0
/* The service's rule state on disk: format, atomic write, checked read, apply. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "statefile.h"

/* "# end: N lines, crc32 XXXXXXXX": N counts the lines before it. */
#define END_PREFIX "# end: "

static void put_claim(FILE *f, const struct owners_sources *src, const struct owner_claim *c)
{
	char text[CIDR_STRLEN];

	fprintf(f, "%s %s", cidr_format(&c->prefix, text, sizeof(text)),
		ruleset_action_name(c->action));
	if (strcmp(src->name[c->source], IPBLOCK_SOURCE_DEFAULT))
		fprintf(f, " source=%s", src->name[c->source]);
	if (c->deadline) {
		time_t t = (time_t)c->deadline;
		char when[32];
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		fprintf(f, " expires=%s", when);
	}
	fputc('\n', f);
}

int statefile_format(const struct owners_sources *src, const struct rule *rules, size_t nr,
		     const struct owner_claims *cl, char **text, size_t *len)
{
	size_t lines = 2, at = 0, body;
	char *buf = NULL;
	size_t size = 0;
	time_t now = time(NULL);
	char when[32];
	struct tm tm;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return -ENOMEM;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	fprintf(f, "%s\n# saved %s: %zu claims; restore with ipblock-rule -R FILE\n",
		STATEFILE_HEADER, when, cl->n);
	for (size_t i = 0; i < nr; i++) {
		char t[CIDR_STRLEN];
		size_t n = 0;

		while (at < cl->n && cidr_compare(&cl->c[at].prefix, &rules[i].prefix) < 0)
			at++;
		while (at + n < cl->n && !cidr_compare(&cl->c[at + n].prefix, &rules[i].prefix)) {
			put_claim(f, src, &cl->c[at + n++]);
			lines++;
		}
		if (!n) {
			/* Written behind the tools' back: the default source's, as -S says. */
			fprintf(f, "%s %s\n", cidr_format(&rules[i].prefix, t, sizeof(t)),
				ruleset_action_name(rules[i].action));
			lines++;
		}
	}
	if (fflush(f)) {
		fclose(f);
		free(buf);
		return -ENOMEM;
	}
	body = size;
	fprintf(f, END_PREFIX "%zu lines, crc32 %08lx\n", lines,
		crc32(0L, (const Bytef *)buf, (uInt)body));
	if (fclose(f)) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	*len = size;
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int statefile_write(const char *dir, const char *text, size_t len, char *err, size_t errlen)
{
	char tmp[4096], cur[4096], prev[4096], prevtmp[4200];
	const char *step = "write";
	int fd, dfd, ret;

	snprintf(tmp, sizeof(tmp), "%s/%s", dir, STATEFILE_TMP);
	snprintf(cur, sizeof(cur), "%s/%s", dir, STATEFILE_NAME);
	snprintf(prev, sizeof(prev), "%s/%s", dir, STATEFILE_PREV);
	snprintf(prevtmp, sizeof(prevtmp), "%s.tmp", prev);

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = write_all(fd, text, len);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		goto fail;
	}
	/*
	 * The copy before becomes the previous one without a moment with no
	 * current copy: a hard link, renamed over the old previous one.
	 */
	unlink(prevtmp);
	if (!link(cur, prevtmp) && rename(prevtmp, prev))
		unlink(prevtmp);
	step = "rename into place";
	if (rename(tmp, cur)) {
		ret = -errno;
		unlink(tmp);
		goto fail;
	}
	step = "sync the directory of";
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		ret = -errno;
	if (dfd >= 0)
		close(dfd);
	if (!ret)
		return 0;
fail:
	snprintf(err, errlen, "cannot %s the rule state %s: %s", step, cur, strerror(-ret));
	return ret;
}

/* Line number (1-based) of the line holding text[at]. */
static size_t line_at(const char *text, size_t at)
{
	size_t n = 1;

	for (size_t i = 0; i < at; i++)
		n += text[i] == '\n';
	return n;
}

int statefile_parse(const char *name, const char *text, size_t len, uint64_t now,
		    struct rulefile *rf, char *err, size_t errlen)
{
	size_t hl = strlen(STATEFILE_HEADER), last, lines, want;
	struct rulefile_opts opts = { .name = name, .now = now };
	unsigned long crc;
	char tail[128];
	int ret;

	memset(rf, 0, sizeof(*rf));
	if (len < hl + 1 || memcmp(text, STATEFILE_HEADER, hl) || text[hl] != '\n') {
		snprintf(err, errlen,
			 "%s:1: not an ipblock state file (its first line is not '%s'); refused.",
			 name, STATEFILE_HEADER);
		return -EINVAL;
	}
	if (text[len - 1] != '\n') {
		snprintf(err, errlen,
			 "%s:%zu: the last line is cut short: the file is truncated; refused.",
			 name, line_at(text, len - 1));
		return -EINVAL;
	}
	for (last = len - 1; last > 0 && text[last - 1] != '\n'; last--)
		;
	lines = line_at(text, last);
	if (len - last >= sizeof(tail) || memcmp(text + last, END_PREFIX, strlen(END_PREFIX))) {
		snprintf(err, errlen,
			 "%s:%zu: the file ends without its end line ('" END_PREFIX
			 "N lines, crc32 X'): it is truncated; refused.",
			 name, lines);
		return -EINVAL;
	}
	memcpy(tail, text + last, len - last);
	tail[len - last] = '\0';
	if (sscanf(tail, END_PREFIX "%zu lines, crc32 %lx", &want, &crc) != 2) {
		snprintf(err, errlen, "%s:%zu: the end line is malformed; refused.", name, lines);
		return -EINVAL;
	}
	if (want != lines - 1) {
		snprintf(
			err, errlen,
			"%s:%zu: the end line counts %zu lines but %zu precede it: lines were lost "
			"or added; refused.",
			name, lines, want, lines - 1);
		return -EINVAL;
	}
	if (crc != crc32(0L, (const Bytef *)text, (uInt)last)) {
		snprintf(err, errlen,
			 "%s:%zu: the checksum of the end line does not match the lines above it: "
			 "the file is corrupt; refused.",
			 name, lines);
		return -EINVAL;
	}
	ret = rulefile_parse_text(rf, &opts, text, last);
	if (ret == -EINVAL)
		snprintf(err, errlen, "%s; refused.", rf->error);
	else if (ret)
		snprintf(err, errlen, "%s: %s.", name, strerror(-ret));
	if (ret)
		rulefile_free(rf);
	return ret;
}

int statefile_read(const char *path, uint64_t now, struct rulefile *rf, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int ret = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(rf, 0, sizeof(*rf));
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	ret = statefile_parse(path, buf, got, now, rf, err, errlen);
	free(buf);
	close(fd);
	return ret;
out:
	snprintf(err, errlen, "cannot read the rule state %s: %s.", path, strerror(-ret));
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

int statefile_apply(struct owners *o, const struct rulefile *rf, uint64_t now, size_t *restored,
		    size_t *late)
{
	struct owner_claim *c = calloc(rf->n + 1, sizeof(*c));
	bool replaced[IPBLOCK_SOURCES_MAX] = {};
	size_t n = 0;
	int ret = c ? 0 : -ENOMEM;

	*late = 0;
	*restored = 0;
	for (size_t i = 0; !ret && i < rf->n; i++) {
		const char *name = rf->source && rf->source[i] ? rf->source_names[rf->source[i] - 1]
							       : IPBLOCK_SOURCE_DEFAULT;
		uint64_t d = rf->deadline ? rf->deadline[i] : 0;
		int s = owners_source_get(o, name);

		if (s < 0) {
			ret = s;
			break;
		}
		replaced[s] = true;
		if (d && d <= now) {
			(*late)++;
			continue;
		}
		c[n++] = (struct owner_claim){ .prefix = rf->rules[i].prefix,
					       .source = (uint16_t)s,
					       .action = rf->rules[i].action,
					       .deadline = d };
	}
	if (!ret)
		ret = owners_replace_claims(o, c, n, replaced, false, NULL);
	if (!ret)
		*restored = n;
	free(c);
	return ret;
}
