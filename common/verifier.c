// SPDX-License-Identifier: GPL-2.0
/* Reading the verifier's log: instructions processed, reason for a rejection. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verifier.h"

#define VERIFIER_LIMIT 1000000

long verifier_insns(const char *log)
{
	const char *p = log;

	/* "processed N insns" ends the log; "Processed N insn" (capital) is the too-large line. */
	while ((p = strstr(p, "processed ")) != NULL) {
		if (p == log || p[-1] == '\n')
			return strtol(p + strlen("processed "), NULL, 10);
		p++;
	}
	return -1;
}

/* Lines of the statistics and of libbpf's framing: not the verifier's reason. */
static bool is_stats_line(const char *line, size_t len)
{
	static const char *const prefixes[] = {
		"processed ", "verification time", "stack depth", "func#", "-- ", "Validating ",
	};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (len >= strlen(prefixes[i]) && !strncmp(line, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

int verifier_reason(const char *log, char *out, size_t outlen)
{
	const char *line, *end;
	size_t used = 0;

	if (strstr(log, "program is too large")) {
		snprintf(out, outlen, "too large: %ld instructions processed, over the limit of %d",
			 verifier_insns(log), VERIFIER_LIMIT);
		return 0;
	}
	/* Every error line, in order: the first names the fault, the next its detail. */
	out[0] = '\0';
	for (line = log; *line; line = *end ? end + 1 : end) {
		size_t len;

		end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		len = (size_t)(end - line);
		while (len && (line[len - 1] == ' ' || line[len - 1] == '\r'))
			len--;
		if (!len || is_stats_line(line, len) || used + 3 >= outlen)
			continue;
		used += (size_t)snprintf(out + used, outlen - used, "%s%.*s", used ? "; " : "",
					 (int)len, line);
		if (used >= outlen)
			used = outlen - 1;
	}
	return used ? 0 : -ENOENT;
}
