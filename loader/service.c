// SPDX-License-Identifier: GPL-2.0
/*
 * ipblock-loader --service.  Three threads share the rule set: the main
 * thread (start, SIGHUP reloads, SIGTERM), the expiry timer (sleeps until
 * the earliest deadline sources_map names, or until a writer changed
 * something) and the state writer (watches config_map's generation every
 * 100 ms and saves the state at most once per save-interval).  Each opens
 * its own handle on the pinned maps, so the pin directory's flock()
 * serialises them as it serialises the command-line tools; the rule cache
 * holds the service's picture of the rule set, which all three change and
 * read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <systemd/sd-daemon.h>
#include <xdp/libxdp.h>

#include "attach.h"
#include "cli.h"
#include "config.h"
#include "owners.h"
#include "pins.h"
#include "rulecache.h"
#include "rulefile.h"
#include "service.h"
#include "stacktrace.h"
#include "statefile.h"
#include "crowdsec.h"
#include "droplog_thread.h"
#include "metrics_http.h"
#include "value.h"
#include "lapi.h"
#include "trie.h"

/* How often the state writer looks at the generation. */
#define WATCH_MS 100

struct svc {
	const char *config_path;
	bool verbose;
	char pin_dir[PATH_MAX]; /* fixed at start: moving the maps needs a restart */

	pthread_mutex_t mu; /* guards what follows, with cond */
	pthread_cond_t cond;
	bool stop;
	struct config cfg;		 /* the configuration in force */
	uint64_t seen_gen;		 /* config_map's generation as the writer last saw it */
	uint64_t saved_gen;		 /* the generation the state on disk holds */
	bool saved;			 /* saved_gen is meaningful */
	char save_err[STATEFILE_ERRLEN]; /* the last save's failure, "" when it worked */

	struct rulecache *cache; /* the rule set: prefixes, verdicts, when they leave */
	struct crowdsec *crowdsec; /* the bouncer, when [crowdsec] is configured */
	struct droplog_thread *droplog; /* the drop log, when [drop-log] is configured */
	struct metrics_http *metrics;	/* the endpoint, when [metrics] is configured */
	uint64_t queue_lost_before;	/* drop-log events lost by the drop logs stopped so far */
	double start_time;		/* Unix seconds */
	double last_change;		/* Unix seconds the writer saw the generation move; 0: not yet */
};

/* [crowdsec]'s key file readable and sound: checked before anything changes. */
static int check_crowdsec(const struct config *c)
{
	char key[LAPI_KEY_LEN], err[LAPI_ERRLEN];
	int ret;

	if (!c->crowdsec.enabled)
		return 0;
	ret = lapi_read_key(c->crowdsec.api_key_file, key, sizeof(key), err, sizeof(err));
	memset(key, 0, sizeof(key));
	if (ret)
		cli_err("[crowdsec]: %s", err);
	return ret;
}

/* A thread's own handle on the maps: its own lock fd and mapping of the tables. */
struct handle {
	struct pins pins;
	struct maps m;
	struct owners o;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void say_droplog(const struct config_drop_log *c)
{
	static const char *const out[] = { [CONFIG_LOG_STDERR] = "stderr",
					   [CONFIG_LOG_JOURNAL] = "the journal",
					   [CONFIG_LOG_FILE] = "" };

	say("drop-log: %u events a second per CPU, then 1 in %u, to %s%s", c->rate, c->sample,
	    out[c->output], c->output == CONFIG_LOG_FILE ? c->file : "");
}

static int handle_open(const struct svc *s, struct handle *h)
{
	char err[512] = "";
	int ret;

	*h = (struct handle){ .pins = PINS_INIT };
	ret = pins_open(s->pin_dir, &h->pins, err, sizeof(err));
	if (ret) {
		cli_err("cannot open the maps in %s: %s.", s->pin_dir,
			err[0] ? err : strerror(-ret));
		return ret;
	}
	maps_init(&h->m, &h->pins);
	return 0;
}

static void handle_close(struct handle *h)
{
	if (h->pins.fd[0] < 0)
		return;
	maps_release(&h->m);
	pins_close(&h->pins);
}

/* The earliest deadline any source names (0: none), read under the shared lock. */
static int next_deadline(const struct handle *h, uint64_t *next)
{
	int ret = pins_lock(&h->pins, false);

	*next = 0;
	for (__u32 i = 0; !ret && i < IPBLOCK_SOURCES_MAX; i++) {
		struct ipblock_source e;

		if (bpf_map_lookup_elem(h->pins.fd[IPBLOCK_MAP_SOURCES], &i, &e))
			ret = -errno;
		else if (e.next_deadline && (!*next || e.next_deadline < *next))
			*next = e.next_deadline;
	}
	pins_unlock(&h->pins);
	return ret;
}

/*
 * The cache made what the kernel holds: each rule with the time it leaves
 * (the last of its claims' deadlines; 0 when a claim lasts for good).
 */
static int cache_load(struct svc *s, const struct ruleset *r, const struct owner_claims *cl)
{
	size_t at = 0;
	int ret = rulecache_load(s->cache, r->r, r->n);

	for (size_t i = 0; !ret && i < r->n; i++) {
		struct rulecache_entry e = { .rule = r->r[i] };
		bool forever = false;
		size_t n = 0;

		while (at < cl->n && cidr_compare(&cl->c[at].prefix, &r->r[i].prefix) < 0)
			at++;
		for (; at + n < cl->n && !cidr_compare(&cl->c[at + n].prefix, &r->r[i].prefix);
		     n++) {
			uint64_t d = cl->c[at + n].deadline;

			forever |= !d;
			if (d > e.expires_at)
				e.expires_at = d;
		}
		if (n && !forever)
			ret = rulecache_insert(s->cache, &e, NULL);
	}
	return ret;
}

static void notify_status(struct svc *s)
{
	char err[STATEFILE_ERRLEN];

	pthread_mutex_lock(&s->mu);
	snprintf(err, sizeof(err), "%s", s->save_err);
	pthread_mutex_unlock(&s->mu);
	sd_notifyf(0, "STATUS=%zu rules (%zu IPv4, %zu IPv6)%s%s",
		   rulecache_count(s->cache, AF_UNSPEC), rulecache_count(s->cache, AF_INET),
		   rulecache_count(s->cache, AF_INET6), err[0] ? "; " : "", err);
}

/*
 * The rules and every claim, read in one go under the shared lock; *gen
 * (may be NULL) gets the generation they are of.
 */
static int read_rules(struct handle *h, struct ruleset *r, struct owner_claims *cl, uint64_t *gen)
{
	int ret = pins_lock(&h->pins, false);

	if (ret)
		return ret;
	ret = owners_begin(&h->o, &h->m, owners_now(), false, NULL);
	if (!ret)
		ret = trie_read(&h->pins, r);
	if (!ret)
		ret = owners_read(&h->o, r, -1, cl);
	if (!ret && gen)
		ret = pins_generation(&h->pins, gen);
	pins_unlock(&h->pins);
	return ret;
}

/*
 * Save the rule state: read under the shared lock (a writer's change is
 * complete or not begun), written without it.  0, or -errno after the
 * sentence (said once while the same failure repeats).
 */
static int save_state(struct svc *s, struct handle *h)
{
	struct owner_claims cl = {};
	struct ruleset r = {};
	char dir[PATH_MAX], err[STATEFILE_ERRLEN] = "";
	char *text = NULL;
	size_t len = 0;
	uint64_t gen = 0;
	bool was_failing;
	int ret = read_rules(h, &r, &cl, &gen);
	if (ret)
		snprintf(err, sizeof(err), "cannot read the rules to save them: %s",
			 strerror(-ret));
	if (!ret) {
		ret = statefile_format(&h->o.src, r.r, r.n, &cl, &text, &len);
		if (ret)
			snprintf(err, sizeof(err), "cannot format the rule state: %s",
				 strerror(-ret));
	}
	if (!ret) {
		pthread_mutex_lock(&s->mu);
		snprintf(dir, sizeof(dir), "%s", s->cfg.state_dir);
		pthread_mutex_unlock(&s->mu);
		ret = statefile_write(dir, text, len, err, sizeof(err));
	}
	if (!ret)
		cache_load(s, &r, &cl);

	pthread_mutex_lock(&s->mu);
	was_failing = s->save_err[0];
	if (!ret) {
		s->saved_gen = gen;
		s->saved = true;
		s->save_err[0] = '\0';
	}
	if (ret && strcmp(err, s->save_err)) {
		/* One sentence per failure, not one a second while it lasts. */
		cli_err("%s; the copy saved before stays, and saving is tried again every "
			"save-interval.",
			err);
		snprintf(s->save_err, sizeof(s->save_err), "%s", err);
	}
	pthread_mutex_unlock(&s->mu);
	if (!ret && was_failing)
		say("the rule state is saved again (%zu claims)", cl.n);
	if (ret || was_failing)
		notify_status(s);
	free(text);
	ruleset_free(&r);
	owners_claims_free(&cl);
	return ret;
}

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Wait on cond until the realtime instant at (0: forever) or a wake-up; s->mu held. */
static void wait_until(struct svc *s, const struct timespec *at)
{
	if (at)
		pthread_cond_timedwait(&s->cond, &s->mu, at);
	else
		pthread_cond_wait(&s->cond, &s->mu);
}

static struct timespec in_ms(uint64_t ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += (time_t)(ms / 1000);
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

static double real_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* What the metrics endpoint asks of the service (its thread, under s->mu). */
static void metrics_fill(void *ctx, struct metrics_snapshot *m)
{
	struct svc *s = ctx;
	uint64_t queued, lost;

	pthread_mutex_lock(&s->mu);
	m->start_time = s->start_time;
	m->last_change = s->last_change ? s->last_change : s->start_time;
	m->crowdsec_on = s->crowdsec != NULL;
	m->crowdsec_last_success = (double)crowdsec_last_success(s->crowdsec);
	droplog_thread_counts(s->droplog, &queued, &lost);
	m->droplog_lost_queue = s->queue_lost_before + lost;
	pthread_mutex_unlock(&s->mu);
}

/* Stop the drop log, keeping its queue's losses for the metrics. */
static void droplog_off(struct svc *s)
{
	struct droplog_thread *d;
	uint64_t queued, lost;

	pthread_mutex_lock(&s->mu);
	d = s->droplog;
	s->droplog = NULL;
	droplog_thread_counts(d, &queued, &lost);
	s->queue_lost_before += lost;
	pthread_mutex_unlock(&s->mu);
	droplog_thread_stop(d);
}

/* Stop the bouncer; the metrics endpoint no longer sees it. */
static void crowdsec_off(struct svc *s)
{
	struct crowdsec *c;

	pthread_mutex_lock(&s->mu);
	c = s->crowdsec;
	s->crowdsec = NULL;
	pthread_mutex_unlock(&s->mu);
	crowdsec_stop(c);
}

/* Start what is configured of the drop log, the bouncer, the endpoint; 0 or -errno (said). */
static int droplog_on(struct svc *s, const struct config_drop_log *c)
{
	struct droplog_thread *d;
	int ret = droplog_thread_start(c, s->pin_dir, &d);

	if (ret)
		return ret;
	pthread_mutex_lock(&s->mu);
	s->droplog = d;
	pthread_mutex_unlock(&s->mu);
	say_droplog(c);
	return 0;
}

static int crowdsec_on(struct svc *s, const struct config_crowdsec *c)
{
	struct crowdsec *b;
	int ret = crowdsec_start(c, s->pin_dir, &b);

	if (ret)
		return ret;
	pthread_mutex_lock(&s->mu);
	s->crowdsec = b;
	pthread_mutex_unlock(&s->mu);
	say("crowdsec: polling %s every %us", c->url, c->interval);
	return 0;
}

static int metrics_on(struct svc *s, const struct config_metrics *c)
{
	char where[80];
	int ret = metrics_http_start(c, s->pin_dir, metrics_fill, s, &s->metrics);

	if (!ret)
		say("metrics: serving http://%s/metrics",
		    value_format_hostport(&c->listen, where, sizeof(where)));
	return ret;
}

/*
 * The state writer: a change by any writer bumps config_map's generation;
 * seen here within WATCH_MS, it wakes the expiry timer (a new deadline
 * may be earlier) and is saved at most save-interval after the save before.
 */
static void *writer_main(void *arg)
{
	struct svc *s = arg;
	struct handle h;
	uint64_t last = mono_ms();

	stacktrace_init();
	if (handle_open(s, &h))
		return NULL;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		uint64_t gen = 0, interval = (uint64_t)s->cfg.save_interval * 1000;
		bool due;
		struct timespec t;

		pthread_mutex_unlock(&s->mu);
		if (pins_generation(&h.pins, &gen))
			gen = 0;
		pthread_mutex_lock(&s->mu);
		if (gen != s->seen_gen) {
			s->seen_gen = gen;
			s->last_change = real_now();
			pthread_cond_broadcast(&s->cond);
		}
		due = !s->saved || gen != s->saved_gen;
		pthread_mutex_unlock(&s->mu);
		/*
		 * A watch period early: a change seen late in one interval is
		 * then still saved within save-interval of when it was made.
		 */
		if (due && mono_ms() + WATCH_MS >= last + interval) {
			last = mono_ms();
			save_state(s, &h);
		}
		pthread_mutex_lock(&s->mu);
		t = in_ms(WATCH_MS);
		if (!s->stop)
			wait_until(s, &t);
	}
	pthread_mutex_unlock(&s->mu);
	handle_close(&h);
	return NULL;
}

struct expired_walk {
	uint64_t now;
	struct cidr *gone;
	size_t n, cap;
};

static int collect_expired(const struct rulecache_entry *e, void *ctx)
{
	struct expired_walk *w = ctx;

	if (!e->expires_at || e->expires_at > w->now)
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		struct cidr *g = realloc(w->gone, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		w->gone = g;
		w->cap = cap;
	}
	w->gone[w->n++] = e->rule.prefix;
	return 0;
}

static void cache_expire(struct svc *s, uint64_t now)
{
	struct expired_walk w = { .now = now };

	if (!rulecache_foreach(s->cache, collect_expired, &w))
		for (size_t i = 0; i < w.n; i++)
			rulecache_remove(s->cache, &w.gone[i]);
	free(w.gone);
}

/*
 * The expiry timer: sleeps until the earliest deadline (whole seconds of
 * CLOCK_REALTIME, the clock deadlines are in), expires what is due in one
 * switch, and starts over; a change by any writer wakes it, since a new
 * claim may be due sooner.
 */
static void *expiry_main(void *arg)
{
	struct svc *s = arg;
	struct handle h;

	stacktrace_init();
	if (handle_open(s, &h))
		return NULL;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		uint64_t gen = s->seen_gen, next = 0, now;
		struct timespec at = { 0 }, *wait = NULL;
		size_t expired = 0;
		int ret;

		pthread_mutex_unlock(&s->mu);
		ret = next_deadline(&h, &next);
		now = owners_now();
		if (!ret && next && next <= now) {
			ret = pins_lock(&h.pins, true);
			if (!ret) {
				ret = owners_begin(&h.o, &h.m, now, true, &expired);
				pins_unlock(&h.pins);
			}
			if (!ret && expired) {
				time_t t = (time_t)now;
				char when[32];
				struct tm tm;

				cache_expire(s, now);
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
					 gmtime_r(&t, &tm));
				say("expired %zu %s due by %s", expired,
				    expired == 1 ? "claim" : "claims", when);
				notify_status(s);
				pthread_mutex_lock(&s->mu);
				continue; /* the next deadline is known now */
			}
		}
		if (ret)
			cli_err("cannot expire the claims that are due: %s; trying again in a "
				"second.",
				strerror(-ret));
		if (ret || (next && next <= now)) {
			/* An early next_deadline (a released claim's): look again in a second. */
			at.tv_sec = (time_t)now + 1;
			wait = &at;
		} else if (next) {
			at.tv_sec = (time_t)next;
			wait = &at;
		}
		pthread_mutex_lock(&s->mu);
		while (!s->stop && s->seen_gen == gen) {
			struct timespec t;

			clock_gettime(CLOCK_REALTIME, &t);
			if (wait && (t.tv_sec > at.tv_sec ||
				     (t.tv_sec == at.tv_sec && t.tv_nsec >= at.tv_nsec)))
				break;
			wait_until(s, wait);
		}
	}
	pthread_mutex_unlock(&s->mu);
	handle_close(&h);
	return NULL;
}

static uint8_t list_action(enum config_action a)
{
	return a == CONFIG_ACTION_DENY	  ? IPBLOCK_ACTION_DENY
	       : a == CONFIG_ACTION_ALLOW ? IPBLOCK_ACTION_ALLOW
					  : 0;
}

/*
 * [list NAME]: its source's claims become the file's rules, in one switch.
 * A list that cannot be read, or holds no rule, leaves the source's claims
 * as they are (a failed download must not empty the firewall).
 */
static int load_list(struct handle *h, const struct config_list *l)
{
	struct rulefile_opts opts = { .name = l->file,
				      .action = list_action(l->action),
				      .now = owners_deadline_in(0) };
	struct owners_stats st = {};
	struct rulefile rf;
	int ret = rulefile_read(&rf, &opts, l->file), src;

	if (ret) {
		cli_err("%s; the rules of source %s stay as they were.", rf.error, l->name);
		goto out;
	}
	if (!rf.n) {
		cli_err("%s holds no rules; the rules of source %s stay as they were.", l->file,
			l->name);
		ret = -ENODATA;
		goto out;
	}
	ret = pins_lock(&h->pins, true);
	if (ret)
		goto fail;
	ret = owners_begin(&h->o, &h->m, owners_now(), true, NULL);
	src = ret ? ret : owners_source_get(&h->o, l->name);
	if (src >= 0)
		ret = owners_replace(&h->o, (uint16_t)src, rf.rules, rf.deadline, rf.n, 0, false,
				     &st);
	else
		ret = src;
	pins_unlock(&h->pins);
	if (ret)
		goto fail;
	say("list %s: %zu rules from %s (%zu added, %zu updated, %zu deleted)", l->name, rf.n,
	    l->file, st.rules_added, st.rules_updated, st.rules_deleted);
	goto out;
fail:
	if (ret == -ENOSPC)
		cli_err("list %s: the rule maps cannot hold %s; the rules of source %s stay as "
			"they "
			"were.",
			l->name, l->file, l->name);
	else if (ret == -EINVAL)
		cli_err("list %s: '%s' cannot name a rule source (letters, digits, '.', '_', '-', "
			"at most %d characters), or %s repeats a prefix; nothing of it was "
			"applied.",
			l->name, l->name, IPBLOCK_SOURCE_NAME_LEN - 1, l->file);
	else
		cli_err("list %s: cannot apply %s: %s.", l->name, l->file, strerror(-ret));
out:
	rulefile_free(&rf);
	return ret;
}

/* A list dropped from the configuration: its source's claims go. */
static void drop_list(struct handle *h, const char *name)
{
	size_t released = 0;
	int ret = pins_lock(&h->pins, true), src;

	if (!ret)
		ret = owners_begin(&h->o, &h->m, owners_now(), true, NULL);
	if (!ret) {
		src = owners_source_find(&h->o, name);
		if (src >= 0)
			ret = owners_flush(&h->o, src, &released);
	}
	pins_unlock(&h->pins);
	if (ret)
		cli_err("cannot remove the rules of list %s: %s.", name, strerror(-ret));
	else
		say("list %s left the configuration: its %zu rules went", name, released);
}

static struct loader_opts iface_opts(const struct svc *s, const struct config_interface *ci)
{
	return (struct loader_opts){
		.dev = ci->name,
		.pin_dir = s->pin_dir,
		.verbose = s->verbose,
		.mode = ci->mode == CONFIG_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE,
		.mode_forced = ci->mode != CONFIG_MODE_AUTO,
	};
}

/* Attach to ci unless ipblock is there already (a restart: nothing to do). */
static int iface_attach(const struct svc *s, const struct config_interface *ci)
{
	struct loader_opts lo = iface_opts(s, ci);
	int ifindex = (int)if_nametoindex(ci->name);
	struct xdp_multiprog *mp = NULL;

	if (ifindex && attach_find(ifindex, &mp)) {
		say("ipblock is attached to %s already (%s mode): kept", ci->name,
		    attach_mode_name(xdp_multiprog__attach_mode(mp)));
		xdp_multiprog__close(mp);
		return 0;
	}
	xdp_multiprog__close(mp);
	return attach_dev(&lo);
}

static int iface_detach(const struct svc *s, const struct config_interface *ci)
{
	struct loader_opts lo = iface_opts(s, ci);

	return attach_detach(&lo);
}

/* The first configured interface that does not exist, or NULL. */
static const struct config_interface *missing_interface(const struct config *c)
{
	for (size_t i = 0; i < c->n_interfaces; i++)
		if (!if_nametoindex(c->interfaces[i].name))
			return &c->interfaces[i];
	return NULL;
}

/* The directory made if missing, and a file written and synced in it: a save can work. */
static int probe_state_dir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX];
	int fd, ret = 0;

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST) {
			ret = -errno;
			break;
		}
		*p = '/';
	}
	if (!ret && mkdir(dir, 0700) && errno != EEXIST)
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "cannot create the state directory %s: %s.", dir,
			 strerror(-ret));
		return ret;
	}
	snprintf(path, sizeof(path), "%s/.probe", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, STATEFILE_HEADER "\n", sizeof(STATEFILE_HEADER)) < 0 || fsync(fd))
		ret = -errno;
	if (fd >= 0)
		close(fd);
	unlink(path);
	if (ret)
		snprintf(err, errlen, "cannot write in the state directory %s: %s.", dir,
			 strerror(-ret));
	return ret;
}

/*
 * The saved state, checked whole before anything is applied: the newest
 * copy, or the one before it when the newest is refused (which is then
 * renamed to STATEFILE_BAD, so the next save does not keep it as the
 * previous copy).  -ENOENT when there is no state yet (a first start).
 */
static int read_state(const char *dir, struct rulefile *rf)
{
	char cur[PATH_MAX + 32], prev[PATH_MAX + 32], bad[PATH_MAX + 32];
	char err[STATEFILE_ERRLEN], perr[STATEFILE_ERRLEN];
	uint64_t now = owners_now();
	int ret, pret;

	snprintf(cur, sizeof(cur), "%s/%s", dir, STATEFILE_NAME);
	snprintf(prev, sizeof(prev), "%s/%s", dir, STATEFILE_PREV);
	snprintf(bad, sizeof(bad), "%s/%s", dir, STATEFILE_BAD);
	ret = statefile_read(cur, now, rf, err, sizeof(err));
	if (!ret)
		return 0;
	if (ret == -ENOENT && access(prev, F_OK))
		return -ENOENT; /* a first start */
	pret = statefile_read(prev, now, rf, perr, sizeof(perr));
	if (pret) {
		/* One line: what is wrong, and that nothing was changed. */
		cli_err("%s %s; move the files away to start without the saved rules. Nothing "
			"was changed.",
			err, pret == -ENOENT ? "There is no previous copy" : perr);
		return ret == -ENOENT ? -EINVAL : ret;
	}
	if (ret != -ENOENT) {
		cli_err("%s", err);
		if (!rename(cur, bad))
			cli_note("restoring the previous copy of the rule state, %s; the refused "
				 "one is kept as %s.",
				 prev, bad);
	} else {
		cli_note("restoring the previous copy of the rule state, %s.", prev);
	}
	return 0;
}

/* The maps made if missing (with the configured capacity), else kept as they are. */
static int ready_maps(struct svc *s)
{
	struct loader_opts lo = { .pin_dir = s->pin_dir, .verbose = s->verbose };
	char err[512] = "";
	size_t found = 0;

	if (!pins_present(s->pin_dir, &found, err, sizeof(err)) && found == IPBLOCK_MAP_COUNT) {
		say("ipblock's maps are pinned in %s already: kept", s->pin_dir);
		return 0;
	}
	lo.max_rules = s->cfg.capacity;
	return attach_create(&lo);
}

/*
 * Maps that hold nothing (a boot, or maps made anew) get the saved state:
 * every source's claims with their deadlines, in one switch.  Maps that
 * hold rules are newer than any file (the service restarted) and stay.
 */
static int restore(struct handle *h, const struct rulefile *rf, bool have_state)
{
	struct owner_claims cl = {};
	size_t v4 = 0, v6 = 0, restored = 0, late = 0;
	uint64_t now = owners_now();
	int ret = pins_lock(&h->pins, true);

	if (!ret)
		ret = owners_begin(&h->o, &h->m, now, true, NULL);
	if (!ret)
		ret = trie_count(&h->pins, &v4, &v6);
	if (!ret)
		ret = owners_read(&h->o, NULL, -1, &cl);
	if (!ret && (v4 || v6 || cl.n)) {
		say("the maps hold %zu rules already (a restart, not a boot): kept; the saved "
		    "state "
		    "is not applied",
		    v4 + v6);
	} else if (!ret && have_state) {
		ret = statefile_apply(&h->o, rf, now, &restored, &late);
		if (!ret)
			say("restored %zu claims from the saved state (%zu had expired and stay "
			    "gone)",
			    restored, late);
		else
			cli_err("cannot restore the saved rule state: %s; nothing of it was "
				"applied.",
				strerror(-ret));
	}
	pins_unlock(&h->pins);
	owners_claims_free(&cl);
	return ret;
}

/* The lists of c loaded; those of old that c lacks dropped. */
static void apply_lists(struct handle *h, const struct config *c, const struct config *old)
{
	for (size_t i = 0; old && i < old->n_lists; i++)
		if (!config_find_list(c, old->lists[i].name))
			drop_list(h, old->lists[i].name);
	for (size_t i = 0; i < c->n_lists; i++)
		load_list(h, &c->lists[i]);
}

/*
 * [list NAME] refresh: lists are read at start and on reload, and those
 * with a refresh again each time it has passed.  Only the main thread
 * loads lists; next[i] is the monotonic millisecond list i is due at (0:
 * never), set afresh for every list after a start or a reload.
 */
static uint64_t *refresh_plan(const struct config *c)
{
	uint64_t *next = calloc(c->n_lists + 1, sizeof(*next)), now = mono_ms();

	for (size_t i = 0; next && i < c->n_lists; i++)
		next[i] = c->lists[i].refresh ? now + (uint64_t)c->lists[i].refresh * 1000 : 0;
	return next;
}

/* The earliest next[] (0: none). */
static uint64_t refresh_due(const struct config *c, const uint64_t *next)
{
	uint64_t due = 0;

	for (size_t i = 0; next && i < c->n_lists; i++)
		if (next[i] && (!due || next[i] < due))
			due = next[i];
	return due;
}

/* Read again the lists due by now; each is due again a refresh later. */
static void refresh_lists(struct handle *h, const struct config *c, uint64_t *next, uint64_t now)
{
	for (size_t i = 0; i < c->n_lists; i++) {
		if (!next[i] || next[i] > now)
			continue;
		load_list(h, &c->lists[i]);
		next[i] = mono_ms() + (uint64_t)c->lists[i].refresh * 1000;
	}
}

/* Refresh the cache from the kernel (after a start or a reload). */
static void cache_refresh(struct svc *s, struct handle *h)
{
	struct owner_claims cl = {};
	struct ruleset r = {};
	int ret = read_rules(h, &r, &cl, NULL);
	if (!ret)
		cache_load(s, &r, &cl);
	ruleset_free(&r);
	owners_claims_free(&cl);
}

/*
 * SIGHUP: the configuration read again and the difference applied --
 * lists loaded or dropped, interfaces attached or detached.  A file with
 * a mistake, or naming an interface that does not exist, changes nothing.
 */
static void reload(struct svc *s, struct handle *h)
{
	const struct config_interface *gone;
	struct config nc, old;
	char err[CONFIG_ERRLEN];

	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	if (config_read(&nc, s->config_path, err, sizeof(err))) {
		cli_err("%s The reload was not applied; the running configuration stays.", err);
		goto out;
	}
	gone = missing_interface(&nc);
	if (gone) {
		cli_err("%s:%u: there is no interface named '%s'; the reload was not applied, the "
			"running configuration stays.",
			s->config_path, gone->line, gone->name);
		config_free(&nc);
		goto out;
	}
	if (check_crowdsec(&nc)) {
		cli_err("the reload was not applied; the running configuration stays.");
		config_free(&nc);
		goto out;
	}
	if (strcmp(nc.pin_dir, s->pin_dir))
		cli_note("pin-dir changed to %s: that takes a restart; the maps in %s stay in use.",
			 nc.pin_dir, s->pin_dir);
	apply_lists(h, &nc, &s->cfg);
	for (size_t i = 0; i < s->cfg.n_interfaces; i++) {
		const struct config_interface *o = &s->cfg.interfaces[i];
		const struct config_interface *n = config_find_interface(&nc, o->name);

		if (!n || n->mode != o->mode)
			iface_detach(s, o);
	}
	for (size_t i = 0; i < nc.n_interfaces; i++)
		iface_attach(s, &nc.interfaces[i]);

	if (crowdsec_changed(&s->cfg.crowdsec, &nc.crowdsec)) {
		/* Its claims stay, each until its deadline, while the bouncer restarts. */
		crowdsec_off(s);
		if (nc.crowdsec.enabled)
			crowdsec_on(s, &nc.crowdsec);
	}
	if (droplog_thread_changed(&s->cfg.drop_log, &nc.drop_log)) {
		droplog_off(s); /* logging off until the new one sets it */
		if (nc.drop_log.enabled)
			droplog_on(s, &nc.drop_log);
	}
	if (metrics_http_changed(&s->cfg.metrics, &nc.metrics)) {
		metrics_http_stop(s->metrics);
		s->metrics = NULL;
		if (nc.metrics.enabled)
			metrics_on(s, &nc.metrics);
	}
	pthread_mutex_lock(&s->mu);
	old = s->cfg;
	s->cfg = nc;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	config_free(&old);
	cache_refresh(s, h);
	say("reloaded %s: %zu interfaces, %zu lists", s->config_path, nc.n_interfaces, nc.n_lists);
out:
	sd_notify(0, "READY=1");
	notify_status(s);
}

int service_run(const char *config_path, bool verbose)
{
	struct svc s = { .config_path = config_path, .verbose = verbose };
	const struct config_interface *missing;
	pthread_t writer, expiry;
	bool writer_up = false, expiry_up = false, have_state = false;
	struct handle h = { .pins = PINS_INIT };
	char err[CONFIG_ERRLEN];
	struct rulefile rf = {};
	uint64_t *next = NULL; /* when each list is read again */
	sigset_t sigs;
	int ret, code = CLI_EXIT_OK;

	setvbuf(stdout, NULL, _IOLBF, 0);
	s.start_time = real_now();
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cond, NULL);
	if (config_read(&s.cfg, config_path, err, sizeof(err))) {
		cli_err("%s", err);
		return CLI_EXIT_INPUT;
	}
	snprintf(s.pin_dir, sizeof(s.pin_dir), "%s", s.cfg.pin_dir);
	/* Everything that can be checked is checked before the kernel is touched. */
	missing = missing_interface(&s.cfg);
	if (missing) {
		cli_err("%s:%u: there is no interface named '%s'; nothing was changed.",
			config_path, missing->line, missing->name);
		code = CLI_EXIT_INPUT;
		goto out;
	}
	if (check_crowdsec(&s.cfg)) {
		cli_err("nothing was changed.");
		code = CLI_EXIT_INPUT;
		goto out;
	}
	ret = probe_state_dir(s.cfg.state_dir, err, sizeof(err));
	if (ret) {
		cli_err("%s Nothing was changed.", err);
		code = CLI_EXIT_FAIL;
		goto out;
	}
	ret = read_state(s.cfg.state_dir, &rf);
	if (ret && ret != -ENOENT) {
		code = CLI_EXIT_FAIL; /* said by read_state() */
		goto out;
	}
	have_state = !ret;
	s.cache = rulecache_new();
	if (!s.cache) {
		cli_err("out of memory.");
		code = CLI_EXIT_FAIL;
		goto out;
	}

	/* Signals are taken by sigwaitinfo() below; every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	ret = ready_maps(&s);
	if (!ret)
		ret = handle_open(&s, &h);
	if (!ret)
		ret = restore(&h, &rf, have_state);
	if (ret) {
		code = cli_exit_code(ret);
		goto out;
	}
	apply_lists(&h, &s.cfg, NULL);
	for (size_t i = 0; i < s.cfg.n_interfaces; i++) {
		ret = iface_attach(&s, &s.cfg.interfaces[i]);
		if (ret) {
			/* Said by attach_dev(); the rules stay pinned for the next try. */
			code = cli_exit_code(ret);
			goto out;
		}
	}
	cache_refresh(&s, &h);
	if (save_state(&s, &h)) {
		/* The firewall is up: a disk that fills later must not take it down. */
		cli_note("the service runs on; the rules are saved once the state directory can "
			 "be written.");
	}
	if (pthread_create(&writer, NULL, writer_main, &s) == 0)
		writer_up = true;
	if (pthread_create(&expiry, NULL, expiry_main, &s) == 0)
		expiry_up = true;
	if (!writer_up || !expiry_up) {
		cli_err("cannot start the service's threads.");
		code = CLI_EXIT_FAIL;
		goto stop;
	}
	/* Each says why it cannot start. */
	if ((s.cfg.crowdsec.enabled && crowdsec_on(&s, &s.cfg.crowdsec)) ||
	    (s.cfg.drop_log.enabled && droplog_on(&s, &s.cfg.drop_log)) ||
	    (s.cfg.metrics.enabled && metrics_on(&s, &s.cfg.metrics))) {
		code = CLI_EXIT_FAIL;
		goto stop;
	}
	say("ipblock service ready: %zu rules, %zu interfaces, %zu lists; state in %s",
	    rulecache_count(s.cache, AF_UNSPEC), s.cfg.n_interfaces, s.cfg.n_lists,
	    s.cfg.state_dir);
	sd_notify(0, "READY=1");
	notify_status(&s);

	next = refresh_plan(&s.cfg);
	for (;;) {
		uint64_t due = refresh_due(&s.cfg, next), now = mono_ms();
		struct timespec wait = { .tv_sec = 3600 };
		siginfo_t si;
		int sig;

		if (due && due <= now) {
			refresh_lists(&h, &s.cfg, next, now);
			cache_refresh(&s, &h);
			notify_status(&s);
			continue;
		}
		if (due) {
			wait.tv_sec = (time_t)((due - now) / 1000);
			wait.tv_nsec = (long)((due - now) % 1000) * 1000000;
		}
		sig = sigtimedwait(&sigs, &si, &wait);
		if (sig == SIGHUP) {
			reload(&s, &h);
			free(next); /* every list was read again: each due a refresh from now */
			next = refresh_plan(&s.cfg);
		} else if (sig == SIGTERM || sig == SIGINT) {
			break;
		}
	}
stop:
	sd_notify(0, "STOPPING=1\nSTATUS=saving the rule state");
	metrics_http_stop(s.metrics);
	s.metrics = NULL;
	crowdsec_off(&s);
	droplog_off(&s); /* nobody reads the ring any more: logging off */
	pthread_mutex_lock(&s.mu);
	s.stop = true;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.mu);
	if (writer_up)
		pthread_join(writer, NULL);
	if (expiry_up)
		pthread_join(expiry, NULL);
	if (save_state(&s, &h) && code == CLI_EXIT_OK)
		code = CLI_EXIT_FAIL;
	if (s.cfg.detach_on_stop)
		for (size_t i = 0; i < s.cfg.n_interfaces; i++)
			iface_detach(&s, &s.cfg.interfaces[i]);
	say("ipblock service stopped: %s",
	    s.cfg.detach_on_stop ? "detached (detach-on-stop); the rules stay pinned"
				 : "the program stays attached and the rules pinned");
out:
	free(next);
	handle_close(&h);
	rulefile_free(&rf);
	rulecache_free(s.cache);
	config_free(&s.cfg);
	return code;
}
