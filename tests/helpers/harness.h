/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test harness: load the XDP program privately (no pins, no interface), fill
 * its maps through common/maps.h and judge crafted frames with BPF_PROG_RUN.
 */
#ifndef IPBLOCK_TEST_HARNESS_H
#define IPBLOCK_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "maps.h"
#include "pins.h"

struct ipblock_bpf;

struct harness {
	struct ipblock_bpf *skel;
	struct pins pins; /* fds of the private maps (owned by skel) */
	struct maps maps; /* changes to them, through the product's protocol */
	int prog_fd;
};

/* Load the program with fresh, empty maps.  0 or -errno. */
int harness_open(struct harness *h);

/* Ceiling harness_open() gives. */
#define HARNESS_MAX_RULES 262144

/* The same with a ceiling of max_rules prefixes per family (0: HARNESS_MAX_RULES). */
int harness_open_capacity(struct harness *h, uint32_t max_rules);

/* Unload everything harness_open() made. */
void harness_close(struct harness *h);

/*
 * Run one frame through the program; *verdict gets XDP_PASS/XDP_DROP/...
 * The kernel refuses frames shorter than an Ethernet header (-EINVAL).
 */
int harness_run(struct harness *h, const void *frame, size_t len, int *verdict);

/*
 * Judge a minimal Ethernet + IPv4/IPv6 + UDP frame whose source address is
 * src (network byte order, 4 or 16 bytes by family).
 */
int harness_verdict_src(struct harness *h, int family, const uint8_t *src, int *verdict);

/* Tag values for frame_build(). */
#define FRAME_VLAN_8021Q  0x8100
#define FRAME_VLAN_8021AD 0x88a8

struct frame_spec {
	int family;	    /* AF_INET, AF_INET6, or 0 for a raw ethertype */
	uint16_t ethertype; /* used when family == 0 (e.g. 0x0806 ARP) */
	uint16_t tags[2];   /* outer first; 0 = no tag */
	uint8_t src[16];    /* source address, network byte order */
	uint8_t ip_options; /* IPv4 only: bytes of options (multiple of 4, <= 40) */
	size_t payload;	    /* UDP payload bytes */
};

/*
 * Write a frame into buf (at most buflen bytes) and return its length, or 0
 * if it does not fit.  Truncation tests cut the returned length themselves.
 */
size_t frame_build(const struct frame_spec *s, uint8_t *buf, size_t buflen);

#endif /* IPBLOCK_TEST_HARNESS_H */
