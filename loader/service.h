/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ipblock-loader --service: the maps created or reused, the saved rule
 * state restored into empty maps, the configured lists loaded as named
 * sources, the configured interfaces attached; then it stays: expires
 * timed claims on time, saves the rule state after every change by any
 * writer, reloads its configuration on SIGHUP, saves and exits on SIGTERM.
 */
#ifndef IPBLOCK_LOADER_SERVICE_H
#define IPBLOCK_LOADER_SERVICE_H

#include <stdbool.h>

/* Run the service with the configuration at config_path; returns the exit code. */
int service_run(const char *config_path, bool verbose);

#endif /* IPBLOCK_LOADER_SERVICE_H */
