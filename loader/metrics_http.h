/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The service's Prometheus endpoint ([metrics] in ipblock.conf): GET
 * /metrics served by GNU libmicrohttpd on the configured address, each
 * scrape reading the maps afresh (its own handle) and formatting them with
 * common/metrics.  One thread (libmicrohttpd's), so scrapes never overlap.
 */
#ifndef IPBLOCK_LOADER_METRICS_HTTP_H
#define IPBLOCK_LOADER_METRICS_HTTP_H

#include <stdbool.h>

#include "config.h"
#include "metrics.h"

/* Rules whose hits a scrape shows, most packets first. */
#define METRICS_HTTP_TOP 10

/* What the service knows and the maps do not: fills those fields of s. */
typedef void (*metrics_http_service_fn)(void *ctx, struct metrics_snapshot *s);

struct metrics_http;

/*
 * Serve cfg->listen for the maps in pin_dir.  0, or -errno after one
 * sentence on stderr (the address taken, the maps).
 */
int metrics_http_start(const struct config_metrics *cfg, const char *pin_dir,
		       metrics_http_service_fn fn, void *ctx, struct metrics_http **out);

/* Stop serving and free; NULL is fine. */
void metrics_http_stop(struct metrics_http *h);

/* Whether a reload must restart the endpoint: its section changed. */
bool metrics_http_changed(const struct config_metrics *a, const struct config_metrics *b);

#endif /* IPBLOCK_LOADER_METRICS_HTTP_H */
