// SPDX-License-Identifier: GPL-2.0
/* The sampled drop log, user space: setting, counts, reader; see droplog.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "droplog.h"

struct droplog {
	struct ring_buffer *rb;
	droplog_fn fn;
	void *ctx;
	int64_t offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC, taken at each poll */
	int stop;	/* the callback's negative answer */
};

int droplog_set(const struct pins *p, uint32_t rate, uint32_t sample)
{
	struct ipblock_droplog_config c = { .rate = rate, .sample = sample };
	__u32 k = IPBLOCK_CONFIG_DROPLOG;

	/* One 8-byte value: the program reads the old setting or the new. */
	return bpf_map_update_elem(p->fd[IPBLOCK_MAP_CONFIG], &k, &c, BPF_ANY) ? -errno : 0;
}

int droplog_get(const struct pins *p, uint32_t *rate, uint32_t *sample)
{
	struct ipblock_droplog_config c;
	__u32 k = IPBLOCK_CONFIG_DROPLOG;

	if (bpf_map_lookup_elem(p->fd[IPBLOCK_MAP_CONFIG], &k, &c))
		return -errno;
	*rate = c.rate;
	*sample = c.sample;
	return 0;
}

int droplog_counts(const struct pins *p, uint64_t *emitted, uint64_t *lost)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ipblock_droplog_state *s;
	__u32 zero = 0;
	int ret = 0;

	*emitted = *lost = 0;
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	s = calloc((size_t)ncpu, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (bpf_map_lookup_elem(p->fd[IPBLOCK_MAP_DROPLOG_STATE], &zero, s))
		ret = -errno;
	for (int i = 0; i < ncpu && !ret; i++) {
		*emitted += s[i].emitted;
		*lost += s[i].lost;
	}
	free(s);
	return ret;
}

int64_t droplog_clock_offset(void)
{
	struct timespec mono, real;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	return ((int64_t)real.tv_sec - mono.tv_sec) * 1000000000 + (real.tv_nsec - mono.tv_nsec);
}

int droplog_decode(const void *data, size_t len, int64_t mono_to_real, struct droplog_event *out)
{
	struct ipblock_drop_event ev;
	int64_t t;

	if (len != sizeof(ev))
		return -EINVAL;
	memcpy(&ev, data, sizeof(ev));
	if (ev.family != 4 && ev.family != 6)
		return -EINVAL;
	t = (int64_t)ev.time_ns + mono_to_real;
	*out = (struct droplog_event){
		.when = { .tv_sec = t / 1000000000, .tv_nsec = t % 1000000000 },
		.source = { .family = ev.family == 4 ? AF_INET : AF_INET6,
			    .len = ev.family == 4 ? 32 : 128 },
		.ifindex = ev.ifindex,
		.rule_id = ev.rule_id,
		.frame_len = ev.frame_len,
		.l4_proto = ev.l4_proto,
		.has_ports = ev.flags & IPBLOCK_DROP_PORTS,
		.sport = ntohs(ev.sport),
		.dport = ntohs(ev.dport),
	};
	memcpy(out->source.addr, ev.addr, ev.family == 4 ? 4 : 16);
	return 0;
}

/* ring_buffer's callback: decode, hand on; a negative answer stops the poll. */
static int on_record(void *ctx, void *data, size_t len)
{
	struct droplog *d = ctx;
	struct droplog_event ev;
	int ret;

	if (droplog_decode(data, len, d->offset, &ev))
		return 0; /* not an event of this build: skip it */
	ret = d->fn(&ev, d->ctx);
	if (ret < 0)
		d->stop = ret;
	return ret < 0 ? ret : 0;
}

int droplog_open(const struct pins *p, droplog_fn fn, void *ctx, struct droplog **out)
{
	struct droplog *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->fn = fn;
	d->ctx = ctx;
	d->rb = ring_buffer__new(p->fd[IPBLOCK_MAP_DROPLOG], on_record, d, NULL);
	if (!d->rb) {
		int ret = -errno;

		free(d);
		return ret ? ret : -ENOMEM;
	}
	*out = d;
	return 0;
}

int droplog_poll(struct droplog *d, int timeout_ms)
{
	int n;

	d->offset = droplog_clock_offset();
	d->stop = 0;
	n = timeout_ms ? ring_buffer__poll(d->rb, timeout_ms) : ring_buffer__consume(d->rb);
	/*
	 * A poll that timed out consumed nothing, even with records waiting
	 * (the program wakes readers only when the ring is an eighth full):
	 * read what is there, so a reader polling with a timeout of T gets
	 * its events within T, as droplog.h promises.
	 */
	if (timeout_ms && n == 0 && !d->stop)
		n = ring_buffer__consume(d->rb);
	if (d->stop)
		return d->stop;
	return n < 0 && n != -EINTR ? n : n < 0 ? 0 : n;
}

int droplog_fd(const struct droplog *d)
{
	return ring_buffer__epoll_fd(d->rb);
}

void droplog_close(struct droplog *d)
{
	if (!d)
		return;
	ring_buffer__free(d->rb);
	free(d);
}
