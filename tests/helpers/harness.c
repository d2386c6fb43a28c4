// SPDX-License-Identifier: GPL-2.0
/* Load the XDP program privately and judge crafted frames (BPF_PROG_RUN). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include "harness.h"
#include "ipblock.skel.h"

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* Keep test output readable; the verifier log shows on failure only. */
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int harness_open_capacity(struct harness *h, uint32_t max_rules)
{
	int ret;

	memset(h, 0, sizeof(*h));
	h->pins = (struct pins)PINS_INIT;
	h->prog_fd = -1;
	libbpf_set_print(quiet_print);
	h->skel = ipblock_bpf__open();
	if (!h->skel)
		return errno ? -errno : -EINVAL;
	ret = pins_obj_size(h->skel->obj, max_rules ? max_rules : HARNESS_MAX_RULES);
	if (!ret)
		ret = ipblock_bpf__load(h->skel);
	/* The fds belong to the skeleton; harness_close() frees them once. */
	if (!ret)
		ret = pins_from_obj(h->skel->obj, &h->pins);
	if (ret) {
		ipblock_bpf__destroy(h->skel);
		h->skel = NULL;
		return ret;
	}
	maps_init(&h->maps, &h->pins);
	h->prog_fd = bpf_program__fd(h->skel->progs.ipblock_xdp);
	return 0;
}

int harness_open(struct harness *h)
{
	return harness_open_capacity(h, 0);
}

void harness_close(struct harness *h)
{
	maps_release(&h->maps);
	ipblock_bpf__destroy(h->skel);
	h->skel = NULL;
	h->pins = (struct pins)PINS_INIT;
	h->prog_fd = -1;
}

int harness_run(struct harness *h, const void *frame, size_t len, int *verdict)
{
	uint8_t out[2048];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = len, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = 1);

	if (bpf_prog_test_run_opts(h->prog_fd, &opts))
		return -errno;
	*verdict = opts.retval;
	return 0;
}

int harness_verdict_src(struct harness *h, int family, const uint8_t *src, int *verdict)
{
	struct frame_spec s = { .family = family, .payload = 18 };
	uint8_t buf[256];
	size_t len;

	memcpy(s.src, src, family == AF_INET ? 4 : 16);
	len = frame_build(&s, buf, sizeof(buf));
	if (!len)
		return -EINVAL;
	return harness_run(h, buf, len, verdict);
}

static uint16_t csum16(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

size_t frame_build(const struct frame_spec *s, uint8_t *buf, size_t buflen)
{
	/* Documentation addresses only: 198.18.0.1 / 2001:db8::1 as destination. */
	static const uint8_t dst6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	static const uint8_t dst4[4] = { 198, 18, 0, 1 };
	size_t off = 0, l4 = sizeof(struct udphdr) + s->payload, need;
	uint16_t proto;

	proto = s->family == AF_INET ? ETH_P_IP : s->family == AF_INET6 ? ETH_P_IPV6 : s->ethertype;
	need = ETH_HLEN + 4 * 2 + 60 + 40 + l4;
	if (need > buflen || s->ip_options > 40 || s->ip_options % 4)
		return 0;
	memset(buf, 0, need);

	memcpy(buf, "\x02\x00\x00\x00\x00\x02", ETH_ALEN);
	memcpy(buf + ETH_ALEN, "\x02\x00\x00\x00\x00\x01", ETH_ALEN);
	off = offsetof(struct ethhdr, h_proto);
	for (int i = 0; i < 2 && s->tags[i]; i++) {
		uint16_t tpid = htons(s->tags[i]), tci = htons(100 + i);

		memcpy(buf + off, &tpid, 2);
		memcpy(buf + off + 2, &tci, 2);
		off += 4;
	}
	proto = htons(proto);
	memcpy(buf + off, &proto, 2);
	off += 2;

	/*
	 * Headers are built in aligned locals and copied in: at offset 14 (or
	 * 18, 22) the IP header is not 4-byte aligned in buf.
	 */
	if (s->family == AF_INET) {
		struct iphdr ip = {};
		size_t hl = sizeof(ip) + s->ip_options;

		ip.version = 4;
		ip.ihl = hl / 4;
		ip.ttl = 64;
		ip.protocol = IPPROTO_UDP;
		ip.tot_len = htons(hl + l4);
		memcpy(&ip.saddr, s->src, 4);
		memcpy(&ip.daddr, dst4, 4);
		memcpy(buf + off, &ip, sizeof(ip));
		/* Options: NOPs then End of list, a valid if useless header. */
		memset(buf + off + sizeof(ip), 1, s->ip_options);
		if (s->ip_options)
			buf[off + hl - 1] = 0;
		ip.check = csum16(buf + off, hl);
		memcpy(buf + off + offsetof(struct iphdr, check), &ip.check, sizeof(ip.check));
		off += hl;
	} else if (s->family == AF_INET6) {
		struct ipv6hdr ip6 = {};

		ip6.version = 6;
		ip6.nexthdr = IPPROTO_UDP;
		ip6.hop_limit = 64;
		ip6.payload_len = htons(l4);
		memcpy(&ip6.saddr, s->src, 16);
		memcpy(&ip6.daddr, dst6, 16);
		memcpy(buf + off, &ip6, sizeof(ip6));
		off += sizeof(ip6);
	} else {
		/* Any other ethertype: a payload of zeros. */
		return off + 46;
	}
	struct udphdr udp = {
		.source = htons(40000),
		.dest = htons(9),
		.len = htons(l4),
	};

	memcpy(buf + off, &udp, sizeof(udp));
	return off + l4;
}
