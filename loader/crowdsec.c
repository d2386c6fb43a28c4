// SPDX-License-Identifier: GPL-2.0
/* The service's CrowdSec bouncer thread; see crowdsec.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bouncer.h"
#include "cli.h"
#include "crowdsec.h"
#include "lapi.h"
#include "maps.h"
#include "pins.h"
#include "stacktrace.h"

/* Longest wait between polls while the LAPI fails. */
#define BACKOFF_CAP_MS 60000

/*
 * A startup=true poll this often, whatever happened: crowdsec 1.4.6's
 * stream has been seen to leave out a batch of 50 decisions when a bulk
 * import overlaps a poll, and only a full answer brings them back.
 */
#define FULL_EVERY_MS (5 * 60 * 1000)

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

struct crowdsec {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
	char pin_dir[4096];
	unsigned int interval_ms;
	bool per_origin;
	struct lapi_client *client;
	_Atomic int64_t last_success; /* Unix seconds of the last answer applied; 0: none */
};

static const char *const ban_only[] = { "ban", NULL };

/* Wait ms, or until stopped; c->mu held.  true when stopped. */
static bool sleep_ms(struct crowdsec *c, unsigned int ms)
{
	struct timespec at;

	clock_gettime(CLOCK_REALTIME, &at);
	at.tv_sec += ms / 1000;
	at.tv_nsec += (long)(ms % 1000) * 1000000;
	if (at.tv_nsec >= 1000000000) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000;
	}
	while (!c->stop && pthread_cond_timedwait(&c->cond, &c->mu, &at) != ETIMEDOUT)
		;
	return c->stop;
}

/* One answer applied under the exclusive lock; a sentence on failure. */
static int apply(struct crowdsec *c, struct pins *p, struct maps *m, const struct lapi_batch *b)
{
	struct bouncer_result r;
	struct owners o;
	int ret = pins_lock(p, true);

	if (ret) {
		cli_err("crowdsec: cannot lock %s: %s.", c->pin_dir, strerror(-ret));
		return ret;
	}
	ret = owners_begin(&o, m, owners_now(), true, NULL);
	if (!ret)
		ret = bouncer_apply(&o, b, "crowdsec", c->per_origin, &r);
	pins_unlock(p);
	if (ret == -ENOSPC || ret == -E2BIG) {
		cli_err("crowdsec: the %s are full; this answer's %zu changes were not applied "
			"(recreate the maps with a larger capacity).",
			ret == -ENOSPC ? "rule maps" : "rule sources' claims", b->n);
		return ret;
	}
	if (ret) {
		cli_err("crowdsec: cannot apply %zu changes: %s.", b->n, strerror(-ret));
		return ret;
	}
	if (r.st.added || r.st.released || r.st.changed || b->full)
		printf("crowdsec: %s%zu decisions: %zu bans added, %zu refreshed, %zu released"
		       "%s\n",
		       b->full ? "startup answer, " : "", b->n, r.st.added, r.st.refreshed,
		       r.st.released, r.not_held ? " (some deletions were not held: no-ops)" : "");
	for (size_t i = 0; i < b->n_notes; i++)
		cli_note("crowdsec: %s", b->notes[i]);
	fflush(stdout);
	return 0;
}

static void *poll_main(void *arg)
{
	struct crowdsec *c = arg;
	struct pins p = PINS_INIT;
	struct maps m;
	char err[LAPI_ERRLEN], last_err[LAPI_ERRLEN] = "";
	unsigned int failures = 0;
	uint64_t last_full = mono_ms();
	int ret;

	stacktrace_init();
	ret = pins_open(c->pin_dir, &p, err, sizeof(err));
	if (ret) {
		cli_err("crowdsec: cannot open the maps in %s: %s; the bouncer is off.", c->pin_dir,
			err[0] ? err : strerror(-ret));
		return NULL;
	}
	maps_init(&m, &p);
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct lapi_batch b = {};
		unsigned int wait;

		pthread_mutex_unlock(&c->mu);
		if (mono_ms() - last_full >= FULL_EVERY_MS)
			lapi_resync(c->client);
		ret = lapi_poll(c->client, &b, err, sizeof(err));
		if (!ret && b.full)
			last_full = mono_ms();
		if (ret) {
			/* Keep enforcing what is there; say each new failure once. */
			if (strcmp(err, last_err))
				cli_err("crowdsec: %s; the rules stay as they are, polling again "
					"with backoff.",
					err);
			snprintf(last_err, sizeof(last_err), "%s", err);
			failures++;
		} else {
			if (last_err[0])
				printf("crowdsec: the LAPI answers again\n");
			last_err[0] = '\0';
			failures = 0;
			if (apply(c, &p, &m, &b))
				lapi_resync(c->client); /* not applied: ask for everything again */
			else
				atomic_store(&c->last_success, (int64_t)time(NULL));
		}
		lapi_batch_free(&b);
		wait = lapi_backoff_ms(failures, c->interval_ms, BACKOFF_CAP_MS, (uint32_t)rand());
		pthread_mutex_lock(&c->mu);
		if (sleep_ms(c, wait))
			break;
	}
	pthread_mutex_unlock(&c->mu);
	maps_release(&m);
	pins_close(&p);
	return NULL;
}

static void free_crowdsec(struct crowdsec *c)
{
	lapi_close(c->client);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	free(c);
}

int crowdsec_start(const struct config_crowdsec *cfg, const char *pin_dir, struct crowdsec **out)
{
	struct crowdsec *c = calloc(1, sizeof(*c));
	struct lapi_config lc = { .url = cfg->url,
				  .key_file = cfg->api_key_file,
				  .types = ban_only,
				  /* A hung LAPI holds a stop (SIGTERM, reload) at most this long. */
				  .timeout_ms = 10000,
				  .source_per_origin =
					  cfg->source == CONFIG_CROWDSEC_SOURCE_PER_ORIGIN };
	const char **origins = NULL; /* lapi_open() copies them */
	char err[LAPI_ERRLEN];
	int ret;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	snprintf(c->pin_dir, sizeof(c->pin_dir), "%s", pin_dir);
	c->interval_ms = cfg->interval * 1000;
	c->per_origin = lc.source_per_origin;
	if (cfg->scopes & CONFIG_CROWDSEC_SCOPE_IP)
		lc.scopes |= LAPI_SCOPE_IP;
	if (cfg->scopes & CONFIG_CROWDSEC_SCOPE_RANGE)
		lc.scopes |= LAPI_SCOPE_RANGE;
	if (cfg->n_origins) {
		origins = calloc(cfg->n_origins + 1, sizeof(*origins));
		if (!origins) {
			free_crowdsec(c);
			return -ENOMEM;
		}
		for (size_t i = 0; i < cfg->n_origins; i++)
			origins[i] = cfg->origins[i];
		lc.origins = origins;
	}
	ret = lapi_open(&lc, &c->client, err, sizeof(err));
	free(origins);
	if (ret) {
		cli_err("crowdsec: %s", err);
		free_crowdsec(c);
		return ret;
	}
	ret = -pthread_create(&c->thread, NULL, poll_main, c);
	if (ret) {
		cli_err("crowdsec: cannot start the bouncer's thread: %s.", strerror(-ret));
		free_crowdsec(c);
		return ret;
	}
	*out = c;
	return 0;
}

void crowdsec_stop(struct crowdsec *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	free_crowdsec(c);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

bool crowdsec_changed(const struct config_crowdsec *a, const struct config_crowdsec *b)
{
	if (a->enabled != b->enabled || !same_str(a->url, b->url) ||
	    !same_str(a->api_key_file, b->api_key_file) || a->interval != b->interval ||
	    a->scopes != b->scopes || a->types != b->types || a->source != b->source ||
	    a->n_origins != b->n_origins)
		return true;
	for (size_t i = 0; i < a->n_origins; i++)
		if (!same_str(a->origins[i], b->origins[i]))
			return true;
	return false;
}

int64_t crowdsec_last_success(struct crowdsec *c)
{
	return c ? atomic_load(&c->last_success) : 0;
}
