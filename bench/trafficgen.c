// SPDX-License-Identifier: GPL-2.0
/*
 * trafficgen: the benchmarks' packet source and helpers.
 *
 *   trafficgen send -i IFACE --dst-mac MAC --src PREFIX --dst ADDR [-t SEC]
 *                   [-p POOL] [-b BATCH] [-c CPU]
 *       Push frames out of IFACE (one end of a veth pair) for SEC seconds:
 *       tg_tx run by BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, its ctx's
 *       ingress interface IFACE, so every XDP_TX leaves through IFACE.  The
 *       sources cycle through POOL random addresses of PREFIX.
 *   trafficgen rules -n N [-6] [-S SEED]
 *       Print the N-prefix list of bench/rulegen.h, one prefix a line.
 *   trafficgen load --pin-dir DIR FILE
 *       Add every prefix of FILE as a deny rule to ipblock's pinned maps by
 *       maps_import_rules(), which keeps the flat tables in step (the
 *       bench's fallback when ipblock-rule -i fails).
 *   trafficgen mem --pin-dir DIR
 *       The kernel memory of ipblock's pinned maps, inner segment maps
 *       included (tables_memory(): memlock, as bpftool shows it), in bytes.
 *   trafficgen attach -i IFACE drop|pass|src  |  trafficgen detach -i IFACE
 *       The reference receivers: an XDP program that drops (passes)
 *       everything, or reads the headers and drops by source (tg_src),
 *       attached in native mode.
 *   trafficgen trie --pin-dir DIR [-i IFACE] FILE...
 *       The LPM-trie filter (tg_trie): its two tries sized for and filled
 *       with FILEs' prefixes as deny rules, pinned in DIR with its counters
 *       (trie4, trie6, trie_stats) and, with -i, attached to IFACE in native
 *       mode.  Prints the tries' kernel memory (memlock).
 *   trafficgen trie-stats --pin-dir DIR
 *       The LPM-trie filter's verdict counters.
 *   trafficgen gro -i IFACE on|off
 *       Switch GRO (the legacy ethtool ioctl: ethtool itself is not needed).
 *   trafficgen droplog --pin-dir DIR RATE,SAMPLE
 *       Turn ipblock's drop log on (RATE events a second per CPU, 1 in SAMPLE
 *       beyond) and read its events, as a service would, until SIGTERM or
 *       SIGINT; then turn it off and print the events read.
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/sockios.h>
#include <linux/udp.h>

#include "cli.h"
#include "droplog.h"
#include "maps.h"
#include "rulegen.h"
#include "tables.h"
#include "trafficgen.h"
#include "trafficgen.skel.h"
#include "bench_util.h" /* after trafficgen.skel.h: the filter's helpers */

#define FRAME_MAX 1514

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* --- frames ----------------------------------------------------------------- */

struct frame {
	uint8_t data[FRAME_MAX];
	size_t len;
	int family;
	size_t l3, l4; /* header offsets */
};

/* Ethernet + IP + UDP to port 9, zero payload, total len bytes (no FCS). */
static int frame_init(struct frame *f, int family, const uint8_t *dst_mac, const uint8_t *src_mac,
		      const uint8_t *dst, size_t len)
{
	struct ethhdr *eth = (struct ethhdr *)f->data;
	size_t iphl = family == AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	struct udphdr *udp;

	if (len < sizeof(*eth) + iphl + sizeof(*udp) || len > FRAME_MAX)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	f->len = len;
	f->family = family;
	f->l3 = sizeof(*eth);
	f->l4 = f->l3 + iphl;
	memcpy(eth->h_dest, dst_mac, ETH_ALEN);
	memcpy(eth->h_source, src_mac, ETH_ALEN);
	eth->h_proto = htons(family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
	if (family == AF_INET) {
		struct iphdr *ip = (struct iphdr *)(f->data + f->l3);

		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->tot_len = htons((uint16_t)(len - f->l3));
		memcpy(&ip->daddr, dst, 4);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(f->data + f->l3);

		ip6->version = 6;
		ip6->hop_limit = 64;
		ip6->nexthdr = IPPROTO_UDP;
		ip6->payload_len = htons((uint16_t)(len - f->l4));
		memcpy(&ip6->daddr, dst, 16);
	}
	udp = (struct udphdr *)(f->data + f->l4);
	udp->source = htons(40000);
	udp->dest = htons(9);
	udp->len = htons((uint16_t)(len - f->l4));
	return 0;
}

/* The pool entry for src: the address and the checksums of f carrying it. */
static void frame_source(const struct frame *f, const uint8_t *src, struct tg_source *out)
{
	uint8_t tmp[FRAME_MAX];

	memset(out, 0, sizeof(*out));
	memcpy(tmp, f->data, f->len);
	if (f->family == AF_INET) {
		struct iphdr *ip = (struct iphdr *)(tmp + f->l3);

		memcpy(out->addr, src, 4);
		memcpy(&ip->saddr, src, 4);
		ip->check = 0;
		out->ip_check = fold(sum16(ip, sizeof(*ip), 0));
		/* IPv4 UDP may go without a checksum: 0 says so. */
		out->udp_check = 0;
		return;
	}
	struct ipv6hdr *ip6 = (struct ipv6hdr *)(tmp + f->l3);
	size_t l4len = f->len - f->l4;
	uint32_t sum;

	memcpy(out->addr, src, 16);
	memcpy(&ip6->saddr, src, 16);
	sum = sum16(&ip6->saddr, 32, 0);
	sum += (uint32_t)l4len + IPPROTO_UDP;
	sum = sum16(tmp + f->l4, l4len, sum);
	out->udp_check = fold(sum);
	if (!out->udp_check)
		out->udp_check = 0xffff;
}

static int parse_mac(const char *s, uint8_t *mac)
{
	unsigned int b[ETH_ALEN];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < ETH_ALEN; i++) {
		if (b[i] > 0xff)
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

/* --- send ------------------------------------------------------------------- */

enum { OPT_DST_MAC = 256, OPT_SRC_MAC, OPT_PIN_DIR };

static const struct cli_opt send_opts[] = {
	{ "dev", 'i', "IFACE", "the sending end of the veth pair" },
	{ "dst-mac", OPT_DST_MAC, "MAC", "destination MAC (the receiving end's)" },
	{ "src-mac", OPT_SRC_MAC, "MAC", "source MAC (default 02:00:00:00:00:01)" },
	{ "src", 's', "PREFIX", "sources: random addresses inside PREFIX" },
	{ "dst", 'd', "ADDR", "destination address" },
	{ "pool", 'p', "N", "distinct sources, a power of two (default 4096)" },
	{ "time", 't', "SEC", "how long to send (default 1)" },
	{ "batch", 'b', "N", "frames per batch of the kernel's loop (default 64)" },
	{ "len", 'l', "BYTES", "frame length without FCS (default 60)" },
	{ "cpu", 'c', "CPU", "pin the sender to CPU" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

static int fill_pool(struct trafficgen_bpf *skel, const struct frame *f, const struct cidr *src,
		     uint32_t n)
{
	int fd = bpf_map__fd(skel->maps.pool);
	uint64_t rng = 0x5eed;

	for (uint32_t i = 0; i < n; i++) {
		struct tg_source s;
		uint8_t a[16];

		rg_random_in(src, &rng, a);
		frame_source(f, a, &s);
		if (bpf_map_update_elem(fd, &i, &s, BPF_ANY))
			return -errno;
	}
	return 0;
}

static int cmd_send(int argc, char **argv)
{
	const char *dev = NULL, *dst_mac_s = NULL, *src_s = NULL, *dst_s = NULL;
	uint8_t dst_mac[ETH_ALEN], src_mac[ETH_ALEN] = { 2, 0, 0, 0, 0, 1 }, dst[16];
	uint32_t pool = 4096, batch = 64, len = 60, cpu = UINT32_MAX;
	struct trafficgen_bpf *skel = NULL;
	double secs = 1, t0, t;
	uint64_t sent = 0;
	struct cidr src;
	struct frame f;
	int c, ret, ifindex;

	while ((c = cli_getopt(argc, argv, send_opts)) != -1) {
		switch (c) {
		case 'i':
			dev = optarg;
			break;
		case OPT_DST_MAC:
			dst_mac_s = optarg;
			break;
		case OPT_SRC_MAC:
			if (parse_mac(optarg, src_mac)) {
				cli_err("bad MAC address '%s'.", optarg);
				return 2;
			}
			break;
		case 's':
			src_s = optarg;
			break;
		case 'd':
			dst_s = optarg;
			break;
		case 'p':
			if (cli_parse_u32("--pool", optarg, 1, TG_POOL_MAX, &pool))
				return 2;
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'b':
			if (cli_parse_u32("--batch", optarg, 1, 256, &batch))
				return 2;
			break;
		case 'l':
			if (cli_parse_u32("--len", optarg, 60, FRAME_MAX, &len))
				return 2;
			break;
		case 'c':
			if (cli_parse_u32("--cpu", optarg, 0, CPU_SETSIZE - 1, &cpu))
				return 2;
			break;
		case 'h':
			cli_usage(stdout, "send -i IFACE --dst-mac MAC -s PREFIX -d ADDR [options]",
				  "Send frames through a veth pair with BPF_PROG_RUN live frames.",
				  send_opts);
			return 0;
		default:
			return 2;
		}
	}
	if (!dev || !dst_mac_s || !src_s || !dst_s) {
		cli_err("send needs -i, --dst-mac, -s and -d.");
		return 2;
	}
	if (pool & (pool - 1)) {
		cli_err("--pool must be a power of two.");
		return 2;
	}
	if (secs <= 0 || secs > 600) {
		cli_err("--time must be within (0, 600] seconds.");
		return 2;
	}
	if (parse_mac(dst_mac_s, dst_mac)) {
		cli_err("bad MAC address '%s'.", dst_mac_s);
		return 2;
	}
	char note[2 * CIDR_ERRLEN];

	if (cli_parse_prefix(src_s, &src, note, sizeof(note)))
		return 2;
	if (inet_pton(src.family, dst_s, dst) != 1) {
		cli_err("'%s' is not an address of the source prefix's family.", dst_s);
		return 2;
	}
	ifindex = (int)if_nametoindex(dev);
	if (!ifindex) {
		cli_err("no interface named '%s'.", dev);
		return 1;
	}
	if (cpu != UINT32_MAX && pin_cpu(cpu)) {
		cli_err("cannot pin to CPU %u: %s.", cpu, strerror(errno));
		return 1;
	}
	ret = frame_init(&f, src.family, dst_mac, src_mac, dst, len);
	if (ret) {
		cli_err("cannot build a %u-byte frame.", len);
		return 2;
	}

	skel = trafficgen_bpf__open();
	if (!skel) {
		cli_err("cannot open the generator's BPF object: %s.", strerror(errno));
		return 1;
	}
	skel->rodata->pool_mask = pool - 1;
	ret = trafficgen_bpf__load(skel);
	if (!ret)
		ret = fill_pool(skel, &f, &src, pool);
	if (ret) {
		cli_err("cannot load the generator: %s.", strerror(-ret));
		goto out;
	}

	struct xdp_md ctx = { .data_end = (__u32)f.len, .ingress_ifindex = (__u32)ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f.data, .data_size_in = (__u32)f.len,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
		    .batch_size = batch);
	int prog_fd = bpf_program__fd(skel->progs.tg_tx);

	/* Live runs report no verdict: check the frame once in a plain run. */
	LIBBPF_OPTS(bpf_test_run_opts, check, .data_in = f.data, .data_size_in = (__u32)f.len,
		    .repeat = 1);
	if (bpf_prog_test_run_opts(prog_fd, &check) || check.retval != XDP_TX) {
		cli_err("the generator does not send this frame (verdict %u).", check.retval);
		ret = -EPROTO;
		goto out;
	}
	/* The plain run advanced the pool cursor of this CPU only: harmless. */

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t0 = now_s();
	for (t = t0; !stop && t - t0 < secs; t = now_s()) {
		/* Chunks of about 50 ms at a few Mpps: the deadline stays sharp. */
		opts.repeat = 1u << 17;
		if (bpf_prog_test_run_opts(prog_fd, &opts)) {
			ret = -errno;
			if (ret == -EINTR)
				break;
			cli_err("BPF_PROG_RUN (live frames) on %s failed: %s.", dev,
				strerror(-ret));
			goto out;
		}
		sent += opts.repeat;
	}
	t = now_s();
	ret = 0;
	printf("sent %llu frames in %.3f s: %.3f Mpps offered\n", (unsigned long long)sent, t - t0,
	       sent / (t - t0) / 1e6);
out:
	trafficgen_bpf__destroy(skel);
	return ret ? 1 : 0;
}

/* --- rules and load ----------------------------------------------------------- */

static void print_prefix(const struct cidr *p, void *ctx)
{
	char buf[CIDR_STRLEN];

	fprintf(ctx, "%s\n", cidr_format(p, buf, sizeof(buf)));
}

static const struct cli_opt rules_opts[] = {
	{ "count", 'n', "N", "how many prefixes" },
	{ "ipv6", '6', NULL, "IPv6 prefixes (default IPv4)" },
	{ "seed", 'S', "SEED", "another list of the same shape" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

static int cmd_rules(int argc, char **argv)
{
	uint32_t n = 0, seed = 1;
	int c, family = AF_INET;

	while ((c = cli_getopt(argc, argv, rules_opts)) != -1) {
		switch (c) {
		case 'n':
			if (cli_parse_u32("-n", optarg, 0, 50000000, &n))
				return 2;
			break;
		case '6':
			family = AF_INET6;
			break;
		case 'S':
			if (cli_parse_u32("--seed", optarg, 0, UINT32_MAX, &seed))
				return 2;
			break;
		case 'h':
			cli_usage(stdout, "rules -n N [-6] [-S SEED]",
				  "Print a FireHOL-shaped list of N non-overlapping prefixes.",
				  rules_opts);
			return 0;
		default:
			return 2;
		}
	}
	rulegen_run(family, n, seed, print_prefix, stdout);
	return fflush(stdout) ? 1 : 0;
}

struct rules {
	struct rule *v;
	size_t n, cap;
};

static int rules_add(struct rules *rs, const struct cidr *p)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 65536;
		struct rule *v = realloc(rs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = (struct rule){ .prefix = *p, .action = IPBLOCK_ACTION_DENY };
	return 0;
}

static const struct cli_opt load_opts[] = {
	{ "pin-dir", OPT_PIN_DIR, "DIR", "where ipblock's maps are pinned" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

static int cmd_load(int argc, char **argv)
{
	struct pins pins = PINS_INIT;
	struct maps m = { .pins = &pins };
	struct maps_replace_stats st;
	struct rules rs = { 0 };
	const char *pin_dir = NULL;
	char line[256], err[CIDR_ERRLEN];
	size_t lineno = 0;
	int c, ret = 0;
	double t0;
	FILE *in;

	while ((c = cli_getopt(argc, argv, load_opts)) != -1) {
		switch (c) {
		case OPT_PIN_DIR:
			pin_dir = optarg;
			break;
		case 'h':
			cli_usage(stdout, "load --pin-dir DIR FILE",
				  "Add FILE's prefixes as deny rules (maps_import_rules(), so the "
				  "flat tables follow).",
				  load_opts);
			return 0;
		default:
			return 2;
		}
	}
	if (!pin_dir || optind + 1 != argc) {
		cli_err("load needs --pin-dir DIR and one FILE.");
		return 2;
	}
	in = fopen(argv[optind], "r");
	if (!in) {
		cli_err("cannot open %s: %s.", argv[optind], strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), in)) {
		struct cidr p;

		lineno++;
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		if (cidr_parse(line, &p, NULL, err, sizeof(err))) {
			cli_err("%s:%zu: %s", argv[optind], lineno, err);
			ret = -EINVAL;
			break;
		}
		ret = rules_add(&rs, &p);
		if (ret)
			break;
	}
	fclose(in);
	if (!ret)
		ret = ruleset_sort(rs.v, NULL, rs.n);
	if (ret)
		goto out;
	if (cli_open_maps(pin_dir, &pins)) {
		ret = -ENOENT;
		goto out;
	}
	t0 = now_s();
	ret = pins_lock(&pins, true);
	if (!ret) {
		ret = maps_import_rules(&m, rs.v, rs.n, &st);
		pins_unlock(&pins);
	}
	if (ret) {
		cli_err("cannot write the rules: %s.", strerror(-ret));
		goto out;
	}
	printf("loaded %zu IPv4 and %zu IPv6 deny rules in %.3f s\n", st.v4, st.v6, now_s() - t0);
out:
	maps_release(&m);
	pins_close(&pins);
	free(rs.v);
	return ret ? 1 : 0;
}

/* --- memory ------------------------------------------------------------------ */

static const struct cli_opt pin_opts[] = {
	{ "pin-dir", OPT_PIN_DIR, "DIR", "the pin directory" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

/* "--pin-dir DIR" and nothing else, for the small commands; NULL if absent. */
static const char *pin_dir_arg(int argc, char **argv, const char *synopsis, const char *about)
{
	const char *dir = NULL;
	int c;

	while ((c = cli_getopt(argc, argv, pin_opts)) != -1) {
		switch (c) {
		case OPT_PIN_DIR:
			dir = optarg;
			break;
		case 'h':
			cli_usage(stdout, synopsis, about, pin_opts);
			exit(0);
		default:
			return NULL;
		}
	}
	if (!dir || optind != argc) {
		cli_err("usage: trafficgen %s", synopsis);
		return NULL;
	}
	return dir;
}

static volatile sig_atomic_t droplog_stop;

static void droplog_on_signal(int sig)
{
	(void)sig;
	droplog_stop = 1;
}

static int droplog_count(const struct droplog_event *ev, void *ctx)
{
	(void)ev;
	++*(unsigned long long *)ctx;
	return 0;
}

static int cmd_droplog(int argc, char **argv)
{
	unsigned long long events = 0;
	struct pins pins = PINS_INIT;
	const char *dir = NULL;
	unsigned int rate, sample;
	struct droplog *d = NULL;
	int c, ret;

	while ((c = cli_getopt(argc, argv, pin_opts)) != -1) {
		if (c != OPT_PIN_DIR)
			return 2;
		dir = optarg;
	}
	if (!dir || optind != argc - 1 || sscanf(argv[optind], "%u,%u", &rate, &sample) != 2) {
		cli_err("usage: trafficgen droplog --pin-dir DIR RATE,SAMPLE");
		return 2;
	}
	if (cli_open_maps(dir, &pins))
		return 1;
	signal(SIGTERM, droplog_on_signal);
	signal(SIGINT, droplog_on_signal);
	ret = droplog_set(&pins, rate, sample);
	if (!ret)
		ret = droplog_open(&pins, droplog_count, &events, &d);
	while (!ret && !droplog_stop) {
		ret = droplog_poll(d, 100);
		ret = ret < 0 ? ret : 0;
	}
	droplog_close(d);
	droplog_set(&pins, 0, 0);
	pins_close(&pins);
	if (ret) {
		cli_err("drop log: %s.", strerror(-ret));
		return 1;
	}
	printf("events %llu\n", events);
	return 0;
}

static int cmd_mem(int argc, char **argv)
{
	const char *dir = pin_dir_arg(argc, argv, "mem --pin-dir DIR",
				      "Print the kernel memory of ipblock's maps (bytes).");
	struct pins pins = PINS_INIT;
	struct tables_memory mem;
	int ret;

	if (!dir)
		return 2;
	if (cli_open_maps(dir, &pins))
		return 1;
	ret = tables_memory(&pins, &mem);
	pins_close(&pins);
	if (ret) {
		cli_err("cannot add up the maps' memory: %s.", strerror(-ret));
		return 1;
	}
	printf("total %llu tables %llu tries %llu other %llu\n", (unsigned long long)mem.total,
	       (unsigned long long)mem.tables, (unsigned long long)mem.tries,
	       (unsigned long long)mem.other);
	return 0;
}

/* --- the LPM-trie filter ---------------------------------------------------------- */

struct prefixes {
	struct cidr *v;
	size_t n, cap;
};

static int prefixes_add(struct prefixes *l, const struct cidr *p)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		struct cidr *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *p;
	return 0;
}

/* Every prefix of file (its first word a line) into l4 or l6 by family. */
static int read_prefixes(const char *file, struct prefixes *l4, struct prefixes *l6)
{
	char line[256], err[CIDR_ERRLEN];
	size_t lineno = 0;
	int ret = 0;
	FILE *in = fopen(file, "r");

	if (!in) {
		cli_err("cannot open %s: %s.", file, strerror(errno));
		return -errno;
	}
	while (!ret && fgets(line, sizeof(line), in)) {
		struct cidr p;

		lineno++;
		line[strcspn(line, " \t#\r\n")] = 0;
		if (!line[0])
			continue;
		if (cidr_parse(line, &p, NULL, err, sizeof(err))) {
			cli_err("%s:%zu: %s", file, lineno, err);
			ret = -EINVAL;
			break;
		}
		ret = prefixes_add(p.family == AF_INET ? l4 : l6, &p);
	}
	fclose(in);
	return ret;
}

static const struct cli_opt trie_opts[] = {
	{ "pin-dir", OPT_PIN_DIR, "DIR", "where to pin the tries and counters" },
	{ "dev", 'i', "IFACE", "attach the filter to IFACE (native mode)" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

static int cmd_trie(int argc, char **argv)
{
	static const char *const pinned[] = { "trie4", "trie6", "trie_stats" };
	struct prefixes l4 = { 0 }, l6 = { 0 };
	const char *dir = NULL, *dev = NULL;
	struct trafficgen_bpf *skel = NULL;
	char path[PATH_MAX];
	uint64_t mem4 = 0, mem6 = 0;
	int c, ret = 0, ifindex = 0;
	double t0;

	while ((c = cli_getopt(argc, argv, trie_opts)) != -1) {
		switch (c) {
		case OPT_PIN_DIR:
			dir = optarg;
			break;
		case 'i':
			dev = optarg;
			break;
		case 'h':
			cli_usage(stdout, "trie --pin-dir DIR [-i IFACE] FILE...",
				  "Load the LPM-trie filter with FILEs' prefixes as deny rules.",
				  trie_opts);
			return 0;
		default:
			return 2;
		}
	}
	if (!dir || optind == argc) {
		cli_err("trie needs --pin-dir DIR and at least one FILE.");
		return 2;
	}
	if (dev && !(ifindex = (int)if_nametoindex(dev))) {
		cli_err("no interface named '%s'.", dev);
		return 1;
	}
	for (int i = optind; i < argc && !ret; i++)
		ret = read_prefixes(argv[i], &l4, &l6);
	if (ret)
		goto out;
	t0 = now_s();
	skel = tg_open_sized(l4.n, l6.n, 1);
	if (!skel) {
		ret = -errno;
		cli_err("cannot load the LPM-trie filter: %s.", strerror(errno));
		goto out;
	}
	ret = tg_trie_fill(skel, AF_INET, l4.v, l4.n);
	if (!ret)
		ret = tg_trie_fill(skel, AF_INET6, l6.v, l6.n);
	if (ret) {
		cli_err("cannot fill the tries: %s.", strerror(-ret));
		goto out;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		ret = -errno;
		cli_err("cannot create %s: %s.", dir, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]) && !ret; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(skel->obj, pinned[i]);

		snprintf(path, sizeof(path), "%s/%s", dir, pinned[i]);
		if (!m || bpf_map__pin(m, path)) {
			ret = -errno;
			cli_err("cannot pin %s: %s.", path, strerror(errno));
		}
	}
	if (ret)
		goto out;
	if (ifindex) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, xopts);

		/* The link holds the program, and it the maps, after this process exits. */
		ret = bpf_xdp_attach(ifindex, bpf_program__fd(skel->progs.tg_trie),
				     XDP_FLAGS_DRV_MODE, &xopts);
		if (ret) {
			cli_err("cannot attach the LPM-trie filter to %s: %s.", dev,
				strerror(-ret));
			goto out;
		}
	}
	pins_memlock(bpf_map__fd(skel->maps.trie4), &mem4);
	pins_memlock(bpf_map__fd(skel->maps.trie6), &mem6);
	printf("trie4 %zu memlock %llu trie6 %zu memlock %llu total %llu loaded %.3f\n", l4.n,
	       (unsigned long long)mem4, l6.n, (unsigned long long)mem6,
	       (unsigned long long)(mem4 + mem6), now_s() - t0);
out:
	trafficgen_bpf__destroy(skel);
	free(l4.v);
	free(l6.v);
	return ret ? 1 : 0;
}

static int cmd_trie_stats(int argc, char **argv)
{
	const char *dir = pin_dir_arg(argc, argv, "trie-stats --pin-dir DIR",
				      "Print the LPM-trie filter's verdict counters.");
	struct tg_counter st[TG_STATS];
	char path[PATH_MAX];
	int fd, ret;

	if (!dir)
		return 2;
	snprintf(path, sizeof(path), "%s/trie_stats", dir);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		cli_err("cannot open %s: %s.", path, strerror(errno));
		return 1;
	}
	ret = tg_trie_stats(fd, st);
	close(fd);
	if (ret) {
		cli_err("cannot read %s: %s.", path, strerror(-ret));
		return 1;
	}
	printf("dropped %llu passed %llu\n", (unsigned long long)st[TG_STAT_DROP].packets,
	       (unsigned long long)st[TG_STAT_PASS].packets);
	return 0;
}

/* --- reference receivers and GRO ------------------------------------------------ */

static const struct cli_opt dev_opts[] = {
	{ "dev", 'i', "IFACE", "the interface" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

/* Parse "-i IFACE [WORD]" for the small commands; *word may stay NULL. */
static int dev_args(int argc, char **argv, const char *synopsis, int *ifindex, const char **word)
{
	const char *dev = NULL;
	int c;

	while ((c = cli_getopt(argc, argv, dev_opts)) != -1) {
		switch (c) {
		case 'i':
			dev = optarg;
			break;
		case 'h':
			cli_usage(stdout, synopsis, "", dev_opts);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	*word = optind < argc ? argv[optind] : NULL;
	if (!dev || optind + (*word ? 1 : 0) < argc) {
		cli_err("usage: trafficgen %s", synopsis);
		return -EINVAL;
	}
	*ifindex = (int)if_nametoindex(dev);
	if (!*ifindex) {
		cli_err("no interface named '%s'.", dev);
		return -ENODEV;
	}
	return 0;
}

static int cmd_attach(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, xopts);
	struct trafficgen_bpf *skel;
	const char *what;
	int ifindex, ret, fd;

	if (dev_args(argc, argv, "attach -i IFACE drop|pass|src", &ifindex, &what) || !what ||
	    (strcmp(what, "drop") && strcmp(what, "pass") && strcmp(what, "src"))) {
		cli_err("attach needs -i IFACE and drop, pass or src.");
		return 2;
	}
	skel = tg_open_sized(0, 0, 1);
	if (!skel) {
		cli_err("cannot load the reference programs: %s.", strerror(errno));
		return 1;
	}
	fd = bpf_program__fd(!strcmp(what, "drop")   ? skel->progs.tg_drop
			     : !strcmp(what, "pass") ? skel->progs.tg_pass
						     : skel->progs.tg_src);
	/* The link holds the program after this process exits. */
	ret = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, &xopts);
	if (ret)
		cli_err("cannot attach the %s program in native mode: %s.", what, strerror(-ret));
	trafficgen_bpf__destroy(skel);
	return ret ? 1 : 0;
}

static int cmd_detach(int argc, char **argv)
{
	const char *word;
	int ifindex, ret;

	if (dev_args(argc, argv, "detach -i IFACE", &ifindex, &word) || word)
		return 2;
	ret = bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, NULL);
	if (ret) {
		cli_err("cannot detach: %s.", strerror(-ret));
		return 1;
	}
	return 0;
}

static int cmd_gro(int argc, char **argv)
{
	struct ethtool_value ev = { .cmd = ETHTOOL_SGRO };
	struct ifreq ifr = {};
	const char *what;
	int ifindex, fd, ret = 0;

	if (dev_args(argc, argv, "gro -i IFACE on|off", &ifindex, &what) || !what ||
	    (strcmp(what, "on") && strcmp(what, "off"))) {
		cli_err("gro needs -i IFACE and on or off.");
		return 2;
	}
	ev.data = !strcmp(what, "on");
	if (!if_indextoname((unsigned int)ifindex, ifr.ifr_name))
		return 1;
	ifr.ifr_data = (void *)&ev;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || ioctl(fd, SIOCETHTOOL, &ifr)) {
		cli_err("cannot switch GRO %s on %s: %s.", what, ifr.ifr_name, strerror(errno));
		ret = 1;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: trafficgen send|rules|load|mem|attach|detach|trie|trie-stats|gro|droplog "
		   "[options]\n"
		   "  (trafficgen COMMAND -h for each command's options)\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = { { "send", cmd_send },     { "rules", cmd_rules },
		     { "load", cmd_load },     { "mem", cmd_mem },
		     { "attach", cmd_attach }, { "detach", cmd_detach },
		     { "trie", cmd_trie },     { "trie-stats", cmd_trie_stats },
		     { "gro", cmd_gro },       { "droplog", cmd_droplog } };

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cli_set_verbose(getenv("TG_VERBOSE") != NULL);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
