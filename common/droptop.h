/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The drop log's latest report, published for the live view: the ring
 * buffer has one reader (the service), so the service's consumer thread
 * replaces a small JSON file each second -- the report of common/dropagg,
 * empty windows included -- and ipblock-loader -s --watch reads the top
 * dropped sources from it.  The file lives in /run/ipblock, named after
 * the pin directory, so the two find it knowing only --pin-dir.
 */
#ifndef IPBLOCK_DROPTOP_H
#define IPBLOCK_DROPTOP_H

#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

/* Where the reports are published. */
#define DROPTOP_DIR "/run/ipblock"
/* Sources a read keeps. */
#define DROPTOP_MAX 8

/*
 * The published report's path for the maps in pin_dir:
 * DROPTOP_DIR/droplog<pin_dir, each '/' a '-'>.json, e.g.
 * /run/ipblock/droplog-sys-fs-bpf-ipblock.json.  0, or -ENAMETOOLONG.
 */
int droptop_path(const char *pin_dir, char *buf, size_t len);

/* Replace the file at path with text, atomically (a temporary renamed over it); 0 or -errno. */
int droptop_publish(const char *path, const char *text, size_t len);

/* One top source of a report. */
struct droptop_source {
	char source[CIDR_STRLEN];
	char rule[CIDR_STRLEN + 16];
	uint64_t drops;
};

/* A published report as read back. */
struct droptop {
	double age;	/* seconds since the file was replaced */
	double seconds; /* the report's window */
	uint64_t drops, lost;
	size_t n;
	struct droptop_source src[DROPTOP_MAX];
};

/* Read the report at path: 0, -ENOENT (none published), -EINVAL (not a report), -errno. */
int droptop_read(const char *path, struct droptop *out);

#endif /* IPBLOCK_DROPTOP_H */
