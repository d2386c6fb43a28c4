/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The program's life on an interface, for the loader's options and its
 * service mode alike: the maps created or reused, the program attached
 * (native, falling back to skb) or detached, each failure one sentence.
 */
#ifndef IPBLOCK_LOADER_ATTACH_H
#define IPBLOCK_LOADER_ATTACH_H

#include <stdbool.h>
#include <stdint.h>

#include <xdp/libxdp.h>

/* What an attach, a detach or --create is asked to do. */
struct loader_opts {
	const char *dev;
	const char *pin_dir;
	const char *check_config; /* a file to check, and nothing else */
	bool unload, status, create, json, verbose;
	bool mode_forced;
	enum xdp_attach_mode mode;
	uint32_t max_rules; /* 0: keep the pinned maps' or the default */
};

/* "native", "skb", ... */
const char *attach_mode_name(enum xdp_attach_mode m);

/* The ipblock program attached to ifindex, if any; the caller closes *mpp, set either way. */
struct xdp_program *attach_find(int ifindex, struct xdp_multiprog **mpp);

/* --create: the maps made and pinned (kept if there), nothing attached. */
int attach_create(const struct loader_opts *cfg);

/* Attach to cfg->dev (the maps created or reused); -EEXIST when already attached. */
int attach_dev(const struct loader_opts *cfg);

/* Detach from cfg->dev; the rules stay pinned.  -ENOENT when not attached. */
int attach_detach(const struct loader_opts *cfg);

#endif /* IPBLOCK_LOADER_ATTACH_H */
