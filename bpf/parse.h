/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet cursor and header parsing for the XDP program.  Every parse step
 * checks its header against data_end once, then advances the cursor; a NULL
 * result means the frame is too short for that header.
 */
#ifndef IPBLOCK_PARSE_H
#define IPBLOCK_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

struct cursor {
	void *pos;
	void *end;
};

/* 802.1Q / 802.1ad tag as it sits after the MAC addresses. */
struct vlan_tag {
	__be16 tci;
	__be16 inner_proto;
};

/* How many VLAN tags the parser looks through (QinQ: outer + inner). */
#define PARSE_MAX_VLAN 2

static __always_inline void cursor_init(struct cursor *c, struct xdp_md *ctx)
{
	c->pos = (void *)(long)ctx->data;
	c->end = (void *)(long)ctx->data_end;
}

/* parse_<type>(): take one fixed-size header off the cursor, or NULL. */
#define DEFINE_PARSE(type)                                                                         \
	static __always_inline struct type *parse_##type(struct cursor *c)                         \
	{                                                                                          \
		struct type *h = c->pos;                                                           \
		if ((void *)(h + 1) > c->end)                                                      \
			return NULL;                                                               \
		c->pos = h + 1;                                                                    \
		return h;                                                                          \
	}

DEFINE_PARSE(ethhdr)
DEFINE_PARSE(vlan_tag)
DEFINE_PARSE(iphdr)
DEFINE_PARSE(ipv6hdr)

static __always_inline int is_vlan_proto(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/*
 * Ethernet header plus up to PARSE_MAX_VLAN tags, in any order of 802.1Q and
 * 802.1ad.  Returns the ethertype of the payload (network order) and leaves
 * the cursor on it, or 0 when the frame is truncated.  A third tag is left
 * as the payload's ethertype, so such frames pass unjudged.
 */
static __always_inline __be16 parse_eth_vlans(struct cursor *c)
{
	struct ethhdr *eth = parse_ethhdr(c);
	struct vlan_tag *tag;
	__be16 proto;

	if (!eth)
		return 0;
	proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < PARSE_MAX_VLAN; i++) {
		if (!is_vlan_proto(proto))
			break;
		tag = parse_vlan_tag(c);
		if (!tag)
			return 0;
		proto = tag->inner_proto;
	}
	return proto;
}

/*
 * IPv4 header including its options.  The options are skipped, not parsed;
 * a header whose IHL is below 5, whose version is not 4, or whose options
 * run past the frame is malformed and returns NULL.
 */
static __always_inline struct iphdr *parse_ipv4(struct cursor *c)
{
	struct iphdr *ip = parse_iphdr(c);
	void *opt_end;

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return NULL;
	opt_end = (void *)ip + ip->ihl * 4;
	if (opt_end > c->end)
		return NULL;
	c->pos = opt_end;
	return ip;
}

/* IPv6 fixed header; extension headers do not matter for the source. */
static __always_inline struct ipv6hdr *parse_ipv6(struct cursor *c)
{
	struct ipv6hdr *ip6 = parse_ipv6hdr(c);

	if (!ip6 || ip6->version != 6)
		return NULL;
	return ip6;
}

#endif /* IPBLOCK_PARSE_H */
