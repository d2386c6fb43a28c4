/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ipblock-loader -s --watch: a live view, refreshed each second, of the
 * rates per verdict and the rules with the most hits a second (deltas of
 * the per-rule counters), with the drop log's rate when it is on.  A
 * terminal gets the screen redrawn with plain ANSI sequences; anything
 * else one line a second.  The view never reads the drop log's ring: a
 * ring buffer has one consumer position, and a second reader would take
 * events from the service's log.  The top dropped sources come from the
 * report the service publishes each second (common/droptop) instead
 * (see README, The live view).
 */
#ifndef IPBLOCK_LOADER_WATCH_H
#define IPBLOCK_LOADER_WATCH_H

#include <stdbool.h>
#include <stdint.h>

/* Rules the view lists. */
#define WATCH_TOP 10
/* A published drop-log report older than this is a service gone. */
#define WATCH_REPORT_FRESH_S 3.0

/* Watch the maps in pin_dir: count refreshes (0: until interrupted).  0 or -errno. */
int watch_run(const char *pin_dir, uint32_t count, bool tty);

#endif /* IPBLOCK_LOADER_WATCH_H */
