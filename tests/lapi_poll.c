// SPDX-License-Identifier: GPL-2.0
/*
 * lapi_poll: drives the LAPI client from a script, for selftests/test_lapi.sh
 * (a real CrowdSec LAPI).  One client lives as long as the process, so a test
 * can stop and restart the LAPI between polls.  Commands on stdin, one a line:
 *
 *   poll     poll once; print the summary, every change, the notes, "end"
 *   count    poll once; print the summary and the notes only, "end"
 *   resync   make the next poll ask for startup=true; "end"
 *   quit
 *
 * Summary: "poll rc=R full=0|1 changes=N new=N deleted=N ignored=N bad=N
 * expired=N merged=N held=N live=N ms=T rss_kb=K" (peak RSS); a change: "add CIDR SOURCE TIMEOUT
 * id=ID" or "del CIDR SOURCE id=ID"; an error: "error: SENTENCE".
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cidr.h"
#include "lapi.h"

#define MAX_LIST 16

static void usage(FILE *f)
{
	fprintf(f, "usage: lapi_poll --url URL --key FILE [--types T,T] [--origins O,O] "
		   "[--per-origin] [--timeout-ms MS]\n"
		   "then commands on stdin: poll | count | resync | quit\n");
}

/* Split a comma-separated list into list[] (NULL-terminated); s is modified. */
static int split(char *s, const char **list)
{
	size_t n = 0;

	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (n + 1 >= MAX_LIST)
			return -EINVAL;
		list[n++] = tok;
	}
	list[n] = NULL;
	return 0;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void do_poll(struct lapi_client *c, bool show_changes)
{
	struct lapi_batch b = { 0 };
	char err[LAPI_ERRLEN] = "", text[CIDR_STRLEN];
	struct timespec t0;
	struct rusage ru;
	double ms;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = lapi_poll(c, &b, err, sizeof(err));
	ms = ms_since(&t0);
	getrusage(RUSAGE_SELF, &ru);
	printf("poll rc=%d full=%d changes=%zu new=%zu deleted=%zu ignored=%zu bad=%zu "
	       "expired=%zu merged=%zu held=%zu live=%zu ms=%.1f rss_kb=%ld\n",
	       rc, b.full, b.n, b.stats.new_seen, b.stats.deleted_seen, b.stats.ignored,
	       b.stats.bad, b.stats.expired, b.stats.merged, b.stats.still_held,
	       lapi_live_decisions(c), ms, ru.ru_maxrss);
	if (rc)
		printf("error: %s\n", err);
	for (size_t i = 0; show_changes && i < b.n; i++) {
		const struct lapi_change *ch = &b.changes[i];

		cidr_format(&ch->prefix, text, sizeof(text));
		if (ch->op == LAPI_ADD)
			printf("add %s %s %u id=%lld\n", text, ch->source, ch->timeout,
			       (long long)ch->decision_id);
		else
			printf("del %s %s id=%lld\n", text, ch->source, (long long)ch->decision_id);
	}
	for (size_t i = 0; i < b.n_notes; i++)
		printf("note: %s\n", b.notes[i]);
	lapi_batch_free(&b);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "types", required_argument, NULL, 't' },
		{ "origins", required_argument, NULL, 'o' },
		{ "per-origin", no_argument, NULL, 'p' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *types[MAX_LIST], *origins[MAX_LIST];
	struct lapi_config cfg = { 0 };
	struct lapi_client *c;
	char err[LAPI_ERRLEN], line[64];
	int opt;

	while ((opt = getopt_long(argc, argv, "u:k:t:o:pT:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			cfg.url = optarg;
			break;
		case 'k':
			cfg.key_file = optarg;
			break;
		case 't':
			if (split(optarg, types))
				return 2;
			cfg.types = types;
			break;
		case 'o':
			if (split(optarg, origins))
				return 2;
			cfg.origins = origins;
			break;
		case 'p':
			cfg.source_per_origin = true;
			break;
		case 'T':
			cfg.timeout_ms = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!cfg.url || !cfg.key_file || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (lapi_open(&cfg, &c, err, sizeof(err))) {
		printf("error: %s\n", err);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!strcmp(line, "quit"))
			break;
		if (!strcmp(line, "poll") || !strcmp(line, "count"))
			do_poll(c, !strcmp(line, "poll"));
		else if (!strcmp(line, "resync"))
			lapi_resync(c);
		else
			printf("error: unknown command '%s'\n", line);
		printf("end\n");
	}
	lapi_close(c);
	return 0;
}
