// SPDX-License-Identifier: GPL-2.0
/* The program's life on an interface: maps created or reused, attach, detach. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "attach.h"
#include "cli.h"
#include "ipblock.skel.h"
#include "kfeatures.h"
#include "tables.h"
#include "trie.h"
#include "verifier.h"

#define BPFFS_ROOT "/sys/fs/bpf"


const char *attach_mode_name(enum xdp_attach_mode m)
{
	switch (m) {
	case XDP_MODE_NATIVE:
		return "native";
	case XDP_MODE_SKB:
		return "skb";
	case XDP_MODE_HW:
		return "hw";
	default:
		return "unknown";
	}
}

/* The ipblock program attached to ifindex, if any (caller closes mp). */
struct xdp_program *attach_find(int ifindex, struct xdp_multiprog **mpp)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	struct xdp_program *p;

	*mpp = NULL;
	if (libxdp_get_error(mp) || !mp)
		return NULL;
	*mpp = mp;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		return p && !strcmp(xdp_program__name(p), IPBLOCK_PROG_NAME) ? p : NULL;
	}
	for (p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
		if (!strcmp(xdp_program__name(p), IPBLOCK_PROG_NAME))
			return p;
	return NULL;
}

/* Make sure the pin directory can hold pins: bpffs mounted, directory made. */
static int prepare_pin_dir(const char *pin_dir, bool *created)
{
	*created = false;
	if (!strncmp(pin_dir, BPFFS_ROOT "/", sizeof(BPFFS_ROOT)) && !cli_on_bpffs(BPFFS_ROOT)) {
		if (mount("bpf", BPFFS_ROOT, "bpf", 0, "mode=0700")) {
			cli_err("cannot mount the BPF filesystem on %s: %s.", BPFFS_ROOT,
				strerror(errno));
			return -errno;
		}
	}
	if (mkdir(pin_dir, 0700) == 0) {
		*created = true;
	} else if (errno != EEXIST) {
		cli_err("cannot create the pin directory %s: %s.", pin_dir, strerror(errno));
		return -errno;
	}
	if (!cli_on_bpffs(pin_dir)) {
		cli_err("%s is not on a BPF filesystem (mount one with: mount -t bpf bpf DIR).",
			pin_dir);
		if (*created)
			rmdir(pin_dir);
		return -ENOTDIR;
	}
	return 0;
}

/*
 * Check the pins already there.  Returns 1 when all of them exist and match,
 * 0 when none exist, or a negative error after printing what to do.  The
 * existing tries' capacity goes into *pinned_max.
 */
static int check_pins(const struct loader_opts *cfg, uint32_t *pinned_max)
{
	char err[512] = "";
	size_t found;
	int ret = pins_present(cfg->pin_dir, &found, err, sizeof(err));

	if (ret == -EPROTO) {
		cli_err_other_version(err, cfg->pin_dir);
		return ret;
	}
	if (ret) {
		cli_err("%s.", err);
		return ret;
	}
	if (found == 0)
		return 0;
	if (found != IPBLOCK_MAP_COUNT) {
		cli_err("%s holds only some of ipblock's maps (made by another version of ipblock, "
			"or some removed by hand?); save the rules with the ipblock-rule that made "
			"them (-S), detach it, remove the directory, attach again and restore them "
			"(-R).",
			cfg->pin_dir);
		return -EPROTO;
	}

	struct pins m;

	ret = pins_open(cfg->pin_dir, &m, err, sizeof(err));
	if (!ret)
		ret = pins_capacity(&m, AF_INET, pinned_max);
	pins_close(&m);
	if (ret) {
		cli_err("cannot read the pinned maps in %s: %s.", cfg->pin_dir, strerror(-ret));
		return ret;
	}
	return 1;
}

/* Remove the pins this run created (attach failed: leave nothing half-done). */
static void unpin_created(const char *pin_dir, bool dir_created)
{
	pins_unlink(pin_dir);
	if (dir_created)
		rmdir(pin_dir);
}

/*
 * The verifier's log of the last load try_attach() made (statistics and
 * error lines only; with -v libbpf prints the whole log instead).
 */
static char verifier_log[VERIFIER_LOG_SIZE];

static int try_attach(const struct loader_opts *cfg, int ifindex, enum xdp_attach_mode mode,
		      uint32_t max_rules, uint32_t *prog_id)
{
	struct ipblock_bpf *skel = ipblock_bpf__open();
	struct xdp_program *prog;
	int ret;

	if (!skel)
		return -errno;
	/* Pinned maps are reused as they are; new ones get these sizes. */
	ret = pins_obj_pin(skel->obj, cfg->pin_dir);
	if (!ret)
		ret = pins_obj_size(skel->obj, max_rules);
	if (ret)
		goto out;
	/*
	 * libxdp loads the program (into its dispatcher, or alone) and, when
	 * that fails, may fall back to another way whose error hides the
	 * verifier's: keep the verifier's own words.
	 */
	verifier_log[0] = '\0';
	if (!cfg->verbose) {
		bpf_program__set_log_level(skel->progs.ipblock_xdp, VERIFIER_LOG_STATS);
		bpf_program__set_log_buf(skel->progs.ipblock_xdp, verifier_log,
					 sizeof(verifier_log));
	}

	prog = xdp_program__from_bpf_obj(skel->obj, "xdp");
	ret = libxdp_get_error(prog);
	if (ret)
		goto out;
	ret = xdp_program__attach(prog, ifindex, mode, 0);
	if (!ret)
		*prog_id = xdp_program__id(prog);
	xdp_program__close(prog);
out:
	ipblock_bpf__destroy(skel);
	return ret;
}

/* --max-rules against the capacity of maps already pinned: a sentence and -EEXIST if it differs. */
static int check_max_rules(const struct loader_opts *cfg, uint32_t pinned_max)
{
	if (!cfg->max_rules || cfg->max_rules == pinned_max)
		return 0;
	cli_err("the pinned maps hold at most %u rules per family; --max-rules %u needs new "
		"maps: save the rules, detach from every interface, remove %s, attach again.",
		pinned_max, cfg->max_rules, cfg->pin_dir);
	return -EEXIST;
}

/*
 * What attaching and --create both need first: a kernel that can run
 * ipblock, the pin directory (created if missing: *dir_created), and the
 * pinned maps checked.  1 when maps of this layout are pinned
 * (*pinned_max their capacity), 0 when none are, or -errno after a
 * sentence, with nothing left behind.
 */
static int ready_pins(const struct loader_opts *cfg, uint32_t *pinned_max, bool *dir_created)
{
	char why[256];
	int pins, ret = kfeatures_check(why, sizeof(why));

	if (ret) {
		cli_err("ipblock cannot run on this kernel: %s.", why);
		return ret;
	}
	ret = prepare_pin_dir(cfg->pin_dir, dir_created);
	if (ret)
		return ret;
	pins = check_pins(cfg, pinned_max);
	if (pins < 0 && *dir_created)
		rmdir(cfg->pin_dir);
	return pins;
}

/*
 * --create: the maps made and pinned, nothing attached, so rules can be
 * staged before any interface is.  Loading the object makes and pins its
 * maps; its program goes again when the object is closed.  Pinned maps of
 * this layout are kept (running it twice is fine).
 */
int attach_create(const struct loader_opts *cfg)
{
	uint32_t pinned_max = 0, max_rules;
	struct ipblock_bpf *skel;
	bool dir_created;
	int pins, ret;

	pins = ready_pins(cfg, &pinned_max, &dir_created);
	if (pins < 0)
		return pins;
	if (pins) {
		if (check_max_rules(cfg, pinned_max))
			return -EEXIST;
		printf("ipblock's maps are already pinned in %s (at most %u rules per family); "
		       "nothing to create\n",
		       cfg->pin_dir, pinned_max);
		return 0;
	}
	max_rules = cfg->max_rules ? cfg->max_rules : IPBLOCK_MAX_RULES_DEFAULT;
	skel = ipblock_bpf__open();
	ret = skel ? 0 : -errno;
	if (!ret)
		ret = pins_obj_pin(skel->obj, cfg->pin_dir);
	if (!ret)
		ret = pins_obj_size(skel->obj, max_rules);
	if (!ret)
		ret = ipblock_bpf__load(skel);
	ipblock_bpf__destroy(skel);
	if (ret) {
		unpin_created(cfg->pin_dir, dir_created);
		cli_err("cannot create ipblock's maps in %s: %s.", cfg->pin_dir, strerror(-ret));
		return ret;
	}
	printf("created ipblock's maps in %s (at most %u rules per family); nothing attached: "
	       "ipblock-loader -d IFACE attaches\n",
	       cfg->pin_dir, max_rules);
	return 0;
}

int attach_dev(const struct loader_opts *cfg)
{
	int ifindex = if_nametoindex(cfg->dev);
	struct xdp_multiprog *mp;
	uint32_t pinned_max = 0, max_rules, prog_id = 0;
	enum xdp_attach_mode mode;
	bool dir_created;
	char why[256];
	int pins, ret;

	if (!ifindex) {
		cli_err("no interface named '%s'.", cfg->dev);
		return -ENODEV;
	}
	if (attach_find(ifindex, &mp)) {
		cli_err("ipblock is already attached to %s (%s mode); detach it first with -u.",
			cfg->dev, attach_mode_name(xdp_multiprog__attach_mode(mp)));
		xdp_multiprog__close(mp);
		return -EEXIST;
	}
	if (mp && xdp_multiprog__is_legacy(mp) && xdp_multiprog__main_prog(mp)) {
		struct xdp_program *other = xdp_multiprog__main_prog(mp);

		/*
		 * A program attached without libxdp's dispatcher (loaded by
		 * another tool, or by libxdp on a kernel that refuses the
		 * dispatcher's freplace programs) cannot be chained with.
		 */
		cli_err("%s already runs XDP program '%s' (id %u) outside libxdp's multi-program "
			"dispatcher, so ipblock cannot be added beside it; detach that program "
			"first.",
			cfg->dev, xdp_program__name(other), xdp_program__id(other));
		xdp_multiprog__close(mp);
		return -EBUSY;
	}
	xdp_multiprog__close(mp);

	pins = ready_pins(cfg, &pinned_max, &dir_created);
	if (pins < 0)
		return pins;
	if (pins && check_max_rules(cfg, pinned_max))
		return -EEXIST;
	max_rules = pins ? pinned_max : cfg->max_rules ? cfg->max_rules : IPBLOCK_MAX_RULES_DEFAULT;

	mode = cfg->mode;
	ret = try_attach(cfg, ifindex, mode, max_rules, &prog_id);
	if (ret == -EOPNOTSUPP && !cfg->mode_forced && mode == XDP_MODE_NATIVE) {
		if (!pins)
			unpin_created(cfg->pin_dir, false);
		mode = XDP_MODE_SKB;
		ret = try_attach(cfg, ifindex, mode, max_rules, &prog_id);
		if (!ret)
			cli_note("%s has no native XDP support; attached in skb (generic) mode.",
				 cfg->dev);
	}
	if (ret) {
		char msg[256];

		if (!pins)
			unpin_created(cfg->pin_dir, dir_created);
		libxdp_strerror(ret, msg, sizeof(msg));
		if (!verifier_reason(verifier_log, why, sizeof(why)))
			cli_err("the kernel's verifier rejected ipblock's XDP program (%s); run "
				"with "
				"-v to see its log.",
				why);
		else if (ret == -ENOMEM && !pins)
			cli_err("the kernel could not allocate ipblock's maps (about 1.5 MiB with "
				"no rules): the machine is short of memory.");
		else if (ret == -EACCES || ret == -EINVAL)
			cli_err("the kernel refused to load or attach ipblock on %s in %s mode "
				"(%s); "
				"run with -v to see the verifier log.",
				cfg->dev, attach_mode_name(mode), msg);
		else
			cli_err("cannot attach ipblock to %s in %s mode: %s.", cfg->dev,
				attach_mode_name(mode), msg);
		return ret;
	}

	struct tables_memory mem = {};
	struct pins m;
	size_t v4 = 0, v6 = 0;

	if (!cli_open_maps(cfg->pin_dir, &m)) {
		trie_count(&m, &v4, &v6);
		tables_memory(&m, &mem);
		pins_close(&m);
	}
	printf("ipblock attached to %s (%s mode, program id %u); %s rules: %zu IPv4, %zu IPv6 "
	       "in %s; %.1f MiB of kernel memory\n",
	       cfg->dev, attach_mode_name(mode), prog_id, pins ? "kept" : "new maps,", v4, v6,
	       cfg->pin_dir, mem.total / 1048576.0);
	return 0;
}

int attach_detach(const struct loader_opts *cfg)
{
	int ifindex = if_nametoindex(cfg->dev);
	struct xdp_multiprog *mp;
	struct xdp_program *prog;
	int ret;

	if (!ifindex) {
		cli_err("no interface named '%s'.", cfg->dev);
		return -ENODEV;
	}
	prog = attach_find(ifindex, &mp);
	if (!prog) {
		cli_err("ipblock is not attached to %s.", cfg->dev);
		xdp_multiprog__close(mp);
		return -ENOENT;
	}
	ret = xdp_program__detach(prog, ifindex, xdp_multiprog__attach_mode(mp), 0);
	xdp_multiprog__close(mp);
	if (ret) {
		char msg[256];

		libxdp_strerror(ret, msg, sizeof(msg));
		cli_err("cannot detach ipblock from %s: %s.", cfg->dev, msg);
		return ret;
	}
	printf("ipblock detached from %s; the rules stay pinned in %s (ipblock-rule -F removes "
	       "them)\n",
	       cfg->dev, cfg->pin_dir);
	return 0;
}

