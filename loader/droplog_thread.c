// SPDX-License-Identifier: GPL-2.0
/* The service's drop log threads; see droplog_thread.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "cli.h"
#include "dropagg.h"
#include "droplog.h"
#include "droplog_thread.h"
#include "droppipe.h"
#include "droptop.h"
#include "pins.h"
#include "ruleset.h"
#include "stacktrace.h"
#include "trie.h"

/* Events the queue holds: a second of a 2-CPU machine's default rate, many times over. */
#define QUEUE_EVENTS 65536
/* Distinct sources and networks a window counts one by one. */
#define AGG_KEYS 16384
/* How long the reader waits for the ring, and the consumer for the queue. */
#define POLL_MS	  100
#define IDLE_MS	  20
#define REPORT_MS 1000

struct droplog_thread {
	pthread_t reader, consumer;
	bool reader_up, consumer_up;
	atomic_bool stop;
	struct config_drop_log cfg; /* file points to file_path */
	char file_path[4096];
	int fd; /* output = file: the JSON Lines file, O_APPEND */
	struct pins pins;
	struct droplog *ring;
	struct droppipe pipe;
	struct dropagg *agg;
	/* The consumer's: the rules by (family, id), read again when the generation moves. */
	struct rule *rules;
	size_t n_rules;
	uint64_t rules_gen;
	bool rules_read;
	char text[DROPAGG_TEXT_MAX]; /* the consumer's: a report as written */
	char json[DROPAGG_TEXT_MAX]; /* the consumer's: a report as published */
	char top_path[4096];	     /* where it is published for the live view */
	bool top_said;		     /* a failed publish was said once */
};

bool droplog_thread_changed(const struct config_drop_log *a, const struct config_drop_log *b)
{
	return a->enabled != b->enabled || a->rate != b->rate || a->sample != b->sample ||
	       a->output != b->output || a->allowed != b->allowed ||
	       ((a->file || b->file) && (!a->file || !b->file || strcmp(a->file, b->file)));
}

static int on_event(const struct droplog_event *ev, void *ctx)
{
	struct droplog_thread *d = ctx;

	droppipe_push(&d->pipe, ev); /* full: counted as lost, never waited for */
	return 0;
}

static void *reader_main(void *arg)
{
	struct droplog_thread *d = arg;
	bool said = false;

	stacktrace_init();
	while (!atomic_load(&d->stop)) {
		int ret = droplog_poll(d->ring, POLL_MS);

		if (ret < 0 && ret != -EINTR) {
			if (!said)
				cli_err("drop-log: cannot read the ring buffer: %s; trying again.",
					strerror(-ret));
			said = true;
			usleep(POLL_MS * 1000);
		}
	}
	return NULL;
}

static int by_family_id(const void *x, const void *y)
{
	const struct rule *a = x, *b = y;

	if (a->prefix.family != b->prefix.family)
		return a->prefix.family < b->prefix.family ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* The rules again when a writer has been at them since the last read. */
static void rules_refresh(struct droplog_thread *d)
{
	struct ruleset r = {};
	uint64_t gen;

	if (pins_generation(&d->pins, &gen))
		return;
	if (d->rules_read && gen == d->rules_gen)
		return;
	if (pins_lock(&d->pins, false))
		return;
	if (trie_read(&d->pins, &r)) {
		pins_unlock(&d->pins);
		ruleset_free(&r);
		return;
	}
	pins_unlock(&d->pins);
	qsort(r.r, r.n, sizeof(*r.r), by_family_id);
	free(d->rules);
	d->rules = r.r; /* taken over from the ruleset */
	d->n_rules = r.n;
	d->rules_gen = gen;
	d->rules_read = true;
}

static bool rule_name(int family, uint32_t id, char *buf, size_t len, void *ctx)
{
	const struct droplog_thread *d = ctx;
	struct rule key = { .prefix.family = (uint8_t)family, .id = id };
	const struct rule *r = bsearch(&key, d->rules, d->n_rules, sizeof(*r), by_family_id);

	if (!r)
		return false;
	cidr_format(&r->prefix, buf, len);
	return true;
}

static void write_journal(const char *text)
{
	const char *line = text;

	/* One entry a line, the summary first: each readable on its own in journalctl. */
	while (*line) {
		const char *end = strchr(line, '\n');
		int n = end ? (int)(end - line) : (int)strlen(line);

		sd_journal_send("MESSAGE=%.*s", n, line, "PRIORITY=%d", LOG_NOTICE,
				"SYSLOG_IDENTIFIER=ipblock", "IPBLOCK_EVENT=drop-log", NULL);
		line += n + (end ? 1 : 0);
	}
}

/* The report for the live view, every window, quiet ones too: a fresh file means a live service. */
static void publish(struct droplog_thread *d, const char *json, size_t n)
{
	int ret;

	if (mkdir(DROPTOP_DIR, 0755) && errno != EEXIST)
		ret = -errno;
	else
		ret = droptop_publish(d->top_path, json, n);
	if (ret && !d->top_said)
		cli_err("drop-log: cannot publish the report at %s for the live view: %s; "
			"going on without.",
			d->top_path, strerror(-ret));
	d->top_said = ret != 0;
}

static void report(struct droplog_thread *d, double seconds)
{
	char *buf = d->text;
	size_t cap = sizeof(d->text), n, json_len;
	bool quiet = dropagg_empty(d->agg);
	struct dropagg_report r;

	if (dropagg_report(d->agg, seconds, DROPLOG_THREAD_TOP, &r))
		return;
	rules_refresh(d);
	json_len = dropagg_format_json(&r, time(NULL), rule_name, d, d->json, sizeof(d->json));
	publish(d, d->json, json_len);
	if (quiet) {
		/* At most one report a window, and none for a quiet one. */
	} else if (d->cfg.output == CONFIG_LOG_FILE) {
		if (write(d->fd, d->json, json_len) != (ssize_t)json_len) {
			/* A full disk must not stop the logging; the next report tries again. */
		}
	} else if (d->cfg.output == CONFIG_LOG_JOURNAL) {
		dropagg_format_text(&r, rule_name, d, buf, cap);
		write_journal(buf);
	} else {
		n = dropagg_format_text(&r, rule_name, d, buf, cap);
		fwrite(buf, 1, n, stderr);
		fflush(stderr);
	}
	dropagg_report_free(&r);
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void *consumer_main(void *arg)
{
	struct droplog_thread *d = arg;
	uint64_t last = now_ms();

	stacktrace_init();
	for (;;) {
		bool stopping = atomic_load(&d->stop);
		size_t n = droppipe_drain(&d->pipe, d->agg, 4096);
		uint64_t now = now_ms();

		if ((now - last >= REPORT_MS || stopping) && !(stopping && dropagg_empty(d->agg))) {
			report(d, (double)(now - last) / 1000.0);
			last = now;
		}
		if (stopping)
			break;
		if (!n)
			usleep(IDLE_MS * 1000);
	}
	return NULL;
}

/* Logging off again, unless another hand set it since we did. */
static void turn_off(struct droplog_thread *d)
{
	uint32_t rate, sample;

	if (droplog_get(&d->pins, &rate, &sample))
		return;
	if (rate == d->cfg.rate && sample == d->cfg.sample)
		droplog_set(&d->pins, 0, 0);
}

void droplog_thread_stop(struct droplog_thread *d)
{
	if (!d)
		return;
	atomic_store(&d->stop, true);
	if (d->reader_up)
		pthread_join(d->reader, NULL);
	if (d->consumer_up)
		pthread_join(d->consumer, NULL);
	if (d->consumer_up)
		unlink(d->top_path); /* no service, no report */
	if (d->pins.fd[0] >= 0)
		turn_off(d);
	droplog_close(d->ring);
	if (d->pipe.q)
		droppipe_destroy(&d->pipe);
	dropagg_free(d->agg);
	if (d->fd >= 0)
		close(d->fd);
	if (d->pins.fd[0] >= 0)
		pins_close(&d->pins);
	free(d->rules);
	free(d);
}

int droplog_thread_start(const struct config_drop_log *cfg, const char *pin_dir,
			 struct droplog_thread **out)
{
	struct droplog_thread *d = calloc(1, sizeof(*d));
	char err[512] = "";
	int ret;

	*out = NULL;
	if (!d) {
		cli_err("drop-log: out of memory.");
		return -ENOMEM;
	}
	d->pins = (struct pins)PINS_INIT;
	d->fd = -1;
	atomic_init(&d->stop, false);
	d->cfg = *cfg;
	d->cfg.file = NULL;
	if (cfg->output == CONFIG_LOG_FILE) {
		snprintf(d->file_path, sizeof(d->file_path), "%s", cfg->file);
		d->cfg.file = d->file_path;
		d->fd = open(d->file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (d->fd < 0) {
			ret = -errno;
			cli_err("drop-log: cannot open %s: %s.", d->file_path, strerror(errno));
			goto fail;
		}
	}
	ret = droptop_path(pin_dir, d->top_path, sizeof(d->top_path));
	if (ret) {
		cli_err("drop-log: the pin directory's name is too long: %s.", pin_dir);
		goto fail;
	}
	ret = pins_open(pin_dir, &d->pins, err, sizeof(err));
	if (ret) {
		cli_err("drop-log: cannot open the maps in %s: %s.", pin_dir,
			err[0] ? err : strerror(-ret));
		goto fail;
	}
	ret = droppipe_init(&d->pipe, QUEUE_EVENTS);
	d->agg = dropagg_new(AGG_KEYS);
	if (ret || !d->agg) {
		cli_err("drop-log: out of memory.");
		ret = -ENOMEM;
		goto fail;
	}
	ret = droplog_open(&d->pins, on_event, d, &d->ring);
	if (ret) {
		cli_err("drop-log: cannot read the ring buffer: %s.", strerror(-ret));
		goto fail;
	}
	if (cfg->allowed)
		cli_note("drop-log: allowed = yes: the program reports dropped packets only; "
			 "allowed ones are counted per rule (ipblock-rule -l), not logged.");
	if (pthread_create(&d->consumer, NULL, consumer_main, d) == 0)
		d->consumer_up = true;
	if (d->consumer_up && pthread_create(&d->reader, NULL, reader_main, d) == 0)
		d->reader_up = true;
	if (!d->reader_up) {
		cli_err("drop-log: cannot start its threads.");
		ret = -EAGAIN;
		goto fail;
	}
	/* The threads read before the program writes: no event is left in the ring unread. */
	ret = droplog_set(&d->pins, cfg->rate, cfg->sample);
	if (ret) {
		cli_err("drop-log: cannot set the program's rate: %s.", strerror(-ret));
		goto fail;
	}
	*out = d;
	return 0;
fail:
	droplog_thread_stop(d);
	return ret;
}

void droplog_thread_counts(struct droplog_thread *d, uint64_t *queued, uint64_t *lost)
{
	*queued = *lost = 0;
	if (d)
		droppipe_counts(&d->pipe, queued, lost);
}
