/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The service's drop log ([drop-log] in ipblock.conf): sets the program's
 * rate and sample, a reader thread moves the ring buffer's events into a
 * bounded lock-free queue (common/droppipe; when full, counted as lost,
 * the reader never waits), and a consumer thread aggregates them
 * (common/dropagg) and writes at most one report a second -- a summary
 * line and the top sources and networks -- to stderr, the journal or a
 * JSON Lines file, and publishes each window's report for the live view
 * (common/droptop).  Stopping turns the program's logging off again, unless
 * someone changed the setting since (see README, The service).
 */
#ifndef IPBLOCK_LOADER_DROPLOG_THREAD_H
#define IPBLOCK_LOADER_DROPLOG_THREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Sources and networks each report lists. */
#define DROPLOG_THREAD_TOP 5

struct droplog_thread;

/*
 * Start the drop log of cfg (copied) on the maps in pin_dir.  0, or -errno
 * after one sentence on stderr (maps, the output file, threads).
 */
int droplog_thread_start(const struct config_drop_log *cfg, const char *pin_dir,
			 struct droplog_thread **out);

/* Stop the threads, turn the program's logging off, free; NULL is fine. */
void droplog_thread_stop(struct droplog_thread *d);

/* Whether a reload must restart the drop log: its section changed. */
bool droplog_thread_changed(const struct config_drop_log *a, const struct config_drop_log *b);

/* Events the reader queued, and those the full queue counted as lost (NULL d: zeroes). */
void droplog_thread_counts(struct droplog_thread *d, uint64_t *queued, uint64_t *lost);

#endif /* IPBLOCK_LOADER_DROPLOG_THREAD_H */
