# SPDX-License-Identifier: GPL-2.0
#
# make            build/ipblock-loader, build/ipblock-rule, build/ipblock.bpf.o
# make demo       build, then show ipblock dropping real traffic between two netns
#                 (DEMO=flood: a flood, its drop log plotted into docs/droplog-flood.png)
# make test       every test: cmocka (plain, ASan+UBSan, TSan) and selftests/,
#                 then the kernel matrix (Debian 12's 6.1 and 6.12 under qemu)
# make test-kernels  the kernel matrix alone
# make bench      benchmarks (not tests)
# make bench-crowdsec  ipblock's CrowdSec bouncer beside crowdsec-firewall-bouncer
# make install    PREFIX=/usr/local, DESTDIR honoured; fail2ban's action into
#                 /etc/fail2ban/action.d when it exists (FAIL2BAN_ACTION_DIR)
#
# BUILD=dir puts every generated file under dir (default build/), so several
# builds (and the sanitizer flavours) never share an object.

BUILD	?= build
PREFIX	?= /usr/local
DESTDIR	?=
SBINDIR	?= $(PREFIX)/sbin
# fail2ban's action (contrib/fail2ban) goes here when the directory exists.
FAIL2BAN_ACTION_DIR ?= /etc/fail2ban/action.d

CC	?= gcc
CLANG	?= clang
BPFTOOL	?= bpftool
MULTIARCH := $(shell $(CC) -dumpmachine)

# SAN is set by the sanitizer flavours: asan (ASan+UBSan) or tsan.
SAN	?=
SANFLAGS_asan := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SANFLAGS_tsan := -fsanitize=thread -fno-omit-frame-pointer
SANFLAGS := $(SANFLAGS_$(SAN))

CFLAGS	?= -O2 -g
WFLAGS	:= -Wall -Wextra -Werror
ALL_CFLAGS := $(CFLAGS) $(WFLAGS) $(SANFLAGS) -std=gnu11 -pthread
ALL_CPPFLAGS := -D_GNU_SOURCE -Icommon -I$(BUILD) $(CPPFLAGS)
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS) -pthread -rdynamic
LDLIBS	:= -lxdp -lbpf -lelf -lz -ldw -lpthread
# What users of the CrowdSec LAPI client (common/lapi*.c) link besides.
LAPI_LDLIBS := -lcurl -ljson-c

BPF_CFLAGS := -O2 -g -target bpf -Wall -Wextra -Werror -Wno-unused-parameter \
	-I/usr/include/$(MULTIARCH) -Icommon -Ibpf

BPF_OBJ	:= $(BUILD)/ipblock.bpf.o
SKEL	:= $(BUILD)/ipblock.skel.h
LIB	:= $(BUILD)/libipblock-common.a

COMMON_SRCS := $(sort $(wildcard common/*.c))
COMMON_OBJS := $(COMMON_SRCS:common/%.c=$(BUILD)/common/%.o)
COMMON_HDRS := $(wildcard common/*.h)

TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
# Object files a test links besides the library (tests/helpers/*.c).
TEST_HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
TEST_HELPER_OBJS := $(TEST_HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/helpers/%.o)

BINS := $(BUILD)/ipblock-loader $(BUILD)/ipblock-rule

# Benchmark programs: each bench/*.c is one program linked with the library.
BENCH_SRCS := $(sort $(filter-out %.bpf.c,$(wildcard bench/*.c)))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

# Keep object files that are only steps towards a test or bench binary.
.SECONDARY:

.PHONY: all deps demo test test-build bench-build test-unit selftest test-kernels bench bench-crowdsec install uninstall clean format

all: $(BINS) $(BPF_OBJ)

deps:
	@scripts/deps.sh

$(BUILD)/.dir:
	@mkdir -p $(BUILD)/common $(BUILD)/bench $(BUILD)/tests/helpers $(BUILD)/loader $(BUILD)/rule
	@touch $@

# --- BPF object and skeleton -------------------------------------------------
# -mcpu=v3: 32-bit registers and jumps (Linux 5.1 on, older than any kernel
# ipblock supports) spare the packet path the shifts that zero-extend its
# 32-bit indices and entries after every step.
$(BPF_OBJ): bpf/ipblock.bpf.c $(wildcard bpf/*.h) common/ipblock.h common/flat_format.h | $(BUILD)/.dir
	$(CLANG) $(BPF_CFLAGS) -mcpu=v3 -c $< -o $@

$(SKEL): $(BPF_OBJ)
	$(BPFTOOL) gen skeleton $< name ipblock_bpf > $@.tmp && mv $@.tmp $@

# --- common library ----------------------------------------------------------
$(BUILD)/common/%.o: common/%.c $(COMMON_HDRS) | $(BUILD)/.dir
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(COMMON_OBJS)
	rm -f $@ && ar rcs $@ $^

# --- the two CLIs ------------------------------------------------------------
$(BUILD)/loader/%.o: loader/%.c $(wildcard loader/*.h) $(COMMON_HDRS) $(SKEL) | $(BUILD)/.dir
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/rule/%.o: rule/%.c $(COMMON_HDRS) $(SKEL) | $(BUILD)/.dir
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# Both tools print JSON (--json) through json-c (common/jsonout.c); the
# loader's service mode tells systemd how it is doing through libsystemd.
LOADER_OBJS := $(patsubst loader/%.c,$(BUILD)/loader/%.o,$(sort $(wildcard loader/*.c)))
$(BUILD)/ipblock-loader: $(LOADER_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS) $(LAPI_LDLIBS) -lsystemd -lmicrohttpd -o $@

# The metrics endpoint's ipblock_build_info{version=...}: the commit built.
IPBLOCK_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/loader/metrics_http.o: ALL_CPPFLAGS += -DIPBLOCK_VERSION='"$(IPBLOCK_VERSION)"'


$(BUILD)/ipblock-rule: $(BUILD)/rule/rule.o $(LIB)
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS) -ljson-c -o $@

# --- tests -------------------------------------------------------------------
$(BUILD)/tests/helpers/%.o: tests/helpers/%.c $(wildcard tests/helpers/*.h) $(COMMON_HDRS) | $(BUILD)/.dir
	$(CC) $(ALL_CPPFLAGS) -Itests/helpers $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c $(wildcard tests/helpers/*.h) $(COMMON_HDRS) | $(BUILD)/.dir
	$(CC) $(ALL_CPPFLAGS) -Itests/helpers $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(TEST_HELPER_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

# Tests that include the skeleton (they load the XDP program themselves).
SKEL_TESTS := $(shell grep -l 'ipblock.skel.h' tests/*.c tests/helpers/*.c 2>/dev/null)
$(patsubst tests/%.c,$(BUILD)/tests/%.o,$(SKEL_TESTS)): $(SKEL)

$(BUILD)/bench/%.o: bench/%.c $(COMMON_HDRS) $(wildcard bench/*.h) | $(BUILD)/.dir
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS) -o $@

SKEL_BENCH := $(shell grep -l 'ipblock.skel.h' bench/*.c 2>/dev/null)
$(patsubst bench/%.c,$(BUILD)/bench/%.o,$(SKEL_BENCH)): $(SKEL)

# The LAPI client's tests: canned answers from libmicrohttpd, and the driver
# selftests/test_lapi.sh runs against a real CrowdSec LAPI.
$(BUILD)/tests/test_lapi: LDLIBS += $(LAPI_LDLIBS) -lmicrohttpd
$(BUILD)/tests/test_jsonout: LDLIBS += -ljson-c
$(BUILD)/tests/test_dropagg: LDLIBS += -ljson-c
$(BUILD)/tests/test_droptop: LDLIBS += -ljson-c
$(BUILD)/tests/test_bouncer: LDLIBS += $(LAPI_LDLIBS)
$(BUILD)/tests/lapi_poll: $(BUILD)/tests/lapi_poll.o $(LIB)
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS) $(LAPI_LDLIBS) -o $@
test-build: $(BUILD)/tests/lapi_poll

bench-build: $(BENCH_BINS) $(BINS)

test-build: $(TEST_BINS) $(BINS) $(BPF_OBJ)

# Which tests each flavour runs.  TSan: the concurrency tests.  ASan+UBSan:
# every test but the crash-handler one, whose children must die by their own
# signal rather than by a sanitizer report (it runs under valgrind instead).
TSAN_TESTS := test_rwlock test_lfqueue test_rulecache test_bulk test_dropagg
ASAN_SKIP  := test_stacktrace
VALGRIND_TESTS := test_stacktrace test_cidr test_lfqueue test_config test_value test_statefile

test: deps
	@scripts/run-tests.sh all

# The pieces scripts/run-tests.sh calls; usable on their own too.
test-unit: test-build
	@BUILD=$(BUILD) scripts/run-tests.sh unit

selftest: all
	@BUILD=$(BUILD) scripts/run-tests.sh selftests

# The kernel matrix alone (KERNELS="6.1 6.12"): see selftests/kernels/.
test-kernels: deps
	@$(MAKE) --no-print-directory test-build
	@BUILD=$(BUILD) scripts/run-tests.sh kernels

# make demo DEMO=flood: selftests/demo_flood.sh (a flood, its drop log plotted
# into docs/droplog-flood.png); plain make demo: selftests/demo.sh.
DEMO_SCRIPT := selftests/demo$(if $(DEMO),_$(DEMO)).sh
demo: deps
	@test -x $(DEMO_SCRIPT) || { echo "no demo '$(DEMO)': make demo, or make demo DEMO=flood" >&2; exit 2; }
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) $(DEMO_SCRIPT)

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bench/run.sh

# About 1.5 minutes; its own target, as it needs crowdsec and its bouncer.
bench-crowdsec: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/trafficgen
	@BUILD=$(BUILD) bench/crowdsec_vs_bouncer.sh -o bench/results/crowdsec_vs_bouncer.md

print-%:
	@echo $($*)

# make install: the tools, the unit, the man pages, and the example
# configuration as /etc/ipblock/ipblock.conf unless one is there already.
MANDIR	?= $(PREFIX)/share/man
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/ipblock
	install -m 0755 $(BUILD)/ipblock-loader $(DESTDIR)$(SBINDIR)/ipblock-loader
	install -m 0755 $(BUILD)/ipblock-rule $(DESTDIR)$(SBINDIR)/ipblock-rule
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|/etc/ipblock/|$(SYSCONFDIR)/ipblock/|g' \
		etc/ipblock.service >$(DESTDIR)$(UNITDIR)/ipblock.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/ipblock.service.tmp
	mv $(DESTDIR)$(UNITDIR)/ipblock.service.tmp $(DESTDIR)$(UNITDIR)/ipblock.service
	install -m 0644 man/ipblock.conf.5 $(DESTDIR)$(MANDIR)/man5/ipblock.conf.5
	install -m 0644 man/ipblock-loader.8 man/ipblock-rule.8 $(DESTDIR)$(MANDIR)/man8/
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/ipblock/ipblock.conf ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/ipblock/ipblock.conf (the example is etc/ipblock.conf)"; \
	else \
		install -m 0644 etc/ipblock.conf $(DESTDIR)$(SYSCONFDIR)/ipblock/ipblock.conf; \
	fi
	@if [ -d $(DESTDIR)$(FAIL2BAN_ACTION_DIR) ]; then \
		echo "install contrib/fail2ban/action.d/ipblock.conf -> $(DESTDIR)$(FAIL2BAN_ACTION_DIR)"; \
		sed 's|^ipblock_rule = .*|ipblock_rule = $(SBINDIR)/ipblock-rule|' \
			contrib/fail2ban/action.d/ipblock.conf >$(DESTDIR)$(FAIL2BAN_ACTION_DIR)/ipblock.conf && \
		chmod 0644 $(DESTDIR)$(FAIL2BAN_ACTION_DIR)/ipblock.conf; \
	else \
		echo "no $(DESTDIR)$(FAIL2BAN_ACTION_DIR): fail2ban's action not installed"; \
	fi

# The configuration stays: it is the operator's.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/ipblock-loader $(DESTDIR)$(SBINDIR)/ipblock-rule \
		$(DESTDIR)$(UNITDIR)/ipblock.service $(DESTDIR)$(MANDIR)/man5/ipblock.conf.5 \
		$(DESTDIR)$(MANDIR)/man8/ipblock-loader.8 $(DESTDIR)$(MANDIR)/man8/ipblock-rule.8
	rm -f $(DESTDIR)$(FAIL2BAN_ACTION_DIR)/ipblock.conf

format:
	clang-format -i $(wildcard bpf/*.c bpf/*.h common/*.c common/*.h loader/*.c rule/*.c tests/*.c tests/helpers/*.[ch])

clean:
	rm -rf $(BUILD)

# --- bench: the traffic generator's BPF object (owned by bench/) -------------
TG_BPF_OBJ := $(BUILD)/bench/trafficgen.bpf.o
TG_SKEL	:= $(BUILD)/trafficgen.skel.h

$(TG_BPF_OBJ): bench/trafficgen.bpf.c bench/trafficgen.h bpf/parse.h | $(BUILD)/.dir
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(TG_SKEL): $(TG_BPF_OBJ)
	$(BPFTOOL) gen skeleton $< name trafficgen_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/bench/trafficgen.o $(BUILD)/bench/bench_prog.o: $(TG_SKEL) bench/trafficgen.h bench/rulegen.h
