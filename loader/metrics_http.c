// SPDX-License-Identifier: GPL-2.0
/* The service's Prometheus endpoint; see metrics_http.h. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "cli.h"
#include "droplog.h"
#include "hits.h"
#include "maps.h"
#include "metrics_http.h"
#include "owners.h"
#include "pins.h"
#include "ruleset.h"
#include "tables.h"
#include "trie.h"
#include "value.h"

#ifndef IPBLOCK_VERSION
#define IPBLOCK_VERSION "unknown"
#endif

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_http {
	struct MHD_Daemon *daemon;
	metrics_http_service_fn fn;
	void *ctx;
	struct pins pins;
	struct maps m;
	/* The rules and who holds them, read again when the generation moves. */
	bool read;
	uint64_t gen;
	struct ruleset rules;	    /* prefix order */
	struct owner_claims claims; /* prefix order, then source */
	struct metrics_source *sources;
	size_t n_sources;
	struct owners_sources names;
};

bool metrics_http_changed(const struct config_metrics *a, const struct config_metrics *b)
{
	return a->enabled != b->enabled || a->listen.len != b->listen.len ||
	       memcmp(&a->listen.sa, &b->listen.sa, a->listen.len);
}

/* Rules and claims, and the rules per source and family: under the shared lock, once a change. */
static int read_rules(struct metrics_http *h)
{
	struct owner_claims cl = {};
	struct ruleset r = {};
	struct metrics_source *src;
	struct owners o;
	size_t n = 0;
	uint64_t gen;
	int ret = pins_generation(&h->pins, &gen);

	if (ret)
		return ret;
	if (h->read && gen == h->gen)
		return 0;
	ret = pins_lock(&h->pins, false);
	if (ret)
		return ret;
	ret = owners_begin(&o, &h->m, owners_now(), false, NULL);
	if (!ret)
		ret = trie_read(&h->pins, &r);
	if (!ret)
		ret = owners_read(&o, &r, -1, &cl);
	pins_unlock(&h->pins);
	src = calloc(IPBLOCK_SOURCES_MAX, sizeof(*src));
	if (ret || !src) {
		ruleset_free(&r);
		owners_claims_free(&cl);
		free(src);
		return ret ? ret : -ENOMEM;
	}
	for (size_t i = 0; i < IPBLOCK_SOURCES_MAX; i++) {
		if (!o.src.name[i][0])
			continue;
		snprintf(src[n].name, sizeof(src[n].name), "%s", o.src.name[i]);
		for (size_t k = 0; k < cl.n; k++) {
			if (cl.c[k].source != i)
				continue;
			if (cl.c[k].prefix.family == AF_INET)
				src[n].ipv4++;
			else
				src[n].ipv6++;
		}
		n++;
	}
	ruleset_free(&h->rules);
	owners_claims_free(&h->claims);
	free(h->sources);
	h->rules = r;
	h->claims = cl;
	h->sources = src;
	h->n_sources = n;
	h->names = o.src;
	h->gen = gen;
	h->read = true;
	return 0;
}

/* "static,crowdsec": the sources holding prefix p. */
static void sources_of(const struct metrics_http *h, const struct cidr *p, char *buf, size_t len)
{
	size_t lo = 0, hi = h->claims.n, pos = 0;

	buf[0] = '\0';
	while (lo < hi) { /* the first claim on p */
		size_t mid = lo + (hi - lo) / 2;

		if (cidr_compare(&h->claims.c[mid].prefix, p) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < h->claims.n && !cidr_compare(&h->claims.c[i].prefix, p); i++) {
		int n = snprintf(buf + pos, len - pos, "%s%s", pos ? "," : "",
				 h->names.name[h->claims.c[i].source]);

		if (n < 0 || (size_t)n >= len - pos)
			break;
		pos += (size_t)n;
	}
}

/* The top rules by hits, into top[0..METRICS_HTTP_TOP); how many. */
static size_t read_top(struct metrics_http *h, struct metrics_rule *top)
{
	struct hits_table t4 = {}, t6 = {};
	struct metrics_hit *hit;
	size_t n = 0;

	if (!h->rules.n)
		return 0;
	hit = calloc(h->rules.n, sizeof(*hit));
	if (!hit || hits_read(&h->pins, AF_INET, &t4) || hits_read(&h->pins, AF_INET6, &t6)) {
		free(hit);
		hits_table_free(&t4);
		hits_table_free(&t6);
		return 0;
	}
	for (size_t i = 0; i < h->rules.n; i++) {
		const struct rule *r = &h->rules.r[i];
		struct hits_total c = hits_of(r->prefix.family == AF_INET ? &t4 : &t6, r->id);

		hit[i] = (struct metrics_hit){ .index = i, .packets = c.packets, .bytes = c.bytes };
	}
	n = metrics_top(hit, h->rules.n, METRICS_HTTP_TOP);
	for (size_t i = 0; i < n; i++) {
		const struct rule *r = &h->rules.r[hit[i].index];

		top[i] = (struct metrics_rule){ .prefix = r->prefix,
						.action = r->action,
						.packets = hit[i].packets,
						.bytes = hit[i].bytes };
		sources_of(h, &r->prefix, top[i].sources, sizeof(top[i].sources));
	}
	free(hit);
	hits_table_free(&t4);
	hits_table_free(&t6);
	return n;
}

/* Whether c counted anything. */
static bool counted(const struct ipblock_counter *c)
{
	for (int v = 0; v < IPBLOCK_STAT_MAX; v++)
		if (c[v].packets)
			return true;
	return false;
}

/*
 * The interfaces of this namespace that have judged packets, and the
 * shared counters of those past IPBLOCK_STAT_IFACES ("other"); at most max.
 */
static size_t read_ifaces(struct metrics_http *h, struct metrics_iface *out, size_t max)
{
	struct if_nameindex *ifs = if_nameindex();
	size_t n = 0;

	for (struct if_nameindex *i = ifs; i && i->if_index && n < max; i++) {
		if (i->if_index >= IPBLOCK_STAT_IFACES ||
		    pins_stats_read_iface(&h->pins, i->if_index, out[n].verdict) ||
		    !counted(out[n].verdict))
			continue;
		snprintf(out[n].name, sizeof(out[n].name), "%s", i->if_name);
		n++;
	}
	if (ifs)
		if_freenameindex(ifs);
	if (n < max && !pins_stats_read_iface(&h->pins, 0, out[n].verdict) &&
	    counted(out[n].verdict)) {
		snprintf(out[n].name, sizeof(out[n].name), "other");
		n++;
	}
	return n;
}

/* One scrape: the maps read now, formatted. */
static int scrape(struct metrics_http *h, char **text, size_t *len)
{
	struct metrics_rule top[METRICS_HTTP_TOP];
	struct metrics_iface ifaces[64];
	struct metrics_snapshot s = { .version = IPBLOCK_VERSION, .ifaces = ifaces };
	struct tables_memory mem;
	uint32_t rate = 0, sample = 0, cap = 0;
	size_t v4 = 0, v6 = 0;
	int ret = pins_stats_read(&h->pins, s.verdict);

	if (ret)
		return ret;
	s.n_ifaces = read_ifaces(h, ifaces, sizeof(ifaces) / sizeof(ifaces[0]));
	if (!trie_count(&h->pins, &v4, &v6)) {
		s.rules_ipv4 = v4;
		s.rules_ipv6 = v6;
	}
	if (!pins_capacity(&h->pins, AF_INET, &cap))
		s.capacity = cap;
	if (!tables_memory(&h->pins, &mem)) {
		s.memory_tables = mem.tables;
		s.memory_tries = mem.tries;
		s.memory_hits = mem.hits;
		s.memory_other = mem.other;
	}
	if (!droplog_get(&h->pins, &rate, &sample))
		s.droplog_on = rate || sample;
	droplog_counts(&h->pins, &s.droplog_events, &s.droplog_lost_ring);
	if (!read_rules(h)) {
		s.sources = h->sources;
		s.n_sources = h->n_sources;
		s.top = top;
		s.n_top = read_top(h, top);
	}
	if (h->fn)
		h->fn(h->ctx, &s);
	return metrics_format(&s, text, len);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code, const char *text)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req)
{
	struct metrics_http *h = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text;
	size_t len;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)req;
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, "Not found: the metrics are at /metrics.\n");
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Only GET.\n");
	if (scrape(h, &text, &len))
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Cannot read ipblock's maps.\n");
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

void metrics_http_stop(struct metrics_http *h)
{
	if (!h)
		return;
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	if (h->pins.fd[0] >= 0) {
		maps_release(&h->m);
		pins_close(&h->pins);
	}
	ruleset_free(&h->rules);
	owners_claims_free(&h->claims);
	free(h->sources);
	free(h);
}

int metrics_http_start(const struct config_metrics *cfg, const char *pin_dir,
		       metrics_http_service_fn fn, void *ctx, struct metrics_http **out)
{
	struct metrics_http *h = calloc(1, sizeof(*h));
	char err[512] = "", where[80];
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;
	uint16_t port;
	int ret;

	*out = NULL;
	if (!h) {
		cli_err("metrics: out of memory.");
		return -ENOMEM;
	}
	h->pins = (struct pins)PINS_INIT;
	h->fn = fn;
	h->ctx = ctx;
	value_format_hostport(&cfg->listen, where, sizeof(where));
	ret = pins_open(pin_dir, &h->pins, err, sizeof(err));
	if (ret) {
		cli_err("metrics: cannot open the maps in %s: %s.", pin_dir,
			err[0] ? err : strerror(-ret));
		metrics_http_stop(h);
		return ret;
	}
	maps_init(&h->m, &h->pins);
	if (cfg->listen.sa.sa_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		port = ntohs(cfg->listen.in6.sin6_port);
	} else {
		port = ntohs(cfg->listen.in.sin_port);
	}
	h->daemon =
		MHD_start_daemon(flags, port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
				 &cfg->listen.sa, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16, MHD_OPTION_END);
	if (!h->daemon) {
		ret = errno ? -errno : -EADDRINUSE;
		cli_err("metrics: cannot listen on %s: %s.", where, strerror(-ret));
		metrics_http_stop(h);
		return ret;
	}
	*out = h;
	return 0;
}
