// SPDX-License-Identifier: GPL-2.0
/*
 * Crash reports: children crash on purpose after stacktrace_init(); the
 * parent reads their stderr through a pipe and checks what killed them.
 *
 * Everything runs in children because cmocka installs its own SIGSEGV/SIGFPE/
 * SIGILL handlers around each test in the parent.
 *
 * Under valgrind (VALGRIND_TESTS, --trace-children=yes) the children run
 * under memcheck too: it logs the deliberate faults (the NULL store, the
 * stack overflow) and, since they die by a signal before glibc's exit-time
 * clean-up, a "possibly lost" block of the dynamic loader.  That is expected
 * and cannot fail the run; the children that exit normally (init, print)
 * do turn any memcheck error in the table building or lookups into a failed
 * test.  Two cases skip themselves there, see each.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "stacktrace.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

/* Generous: under valgrind a child needs seconds just to read the symbol tables. */
#define CHILD_TIMEOUT	  120
#define CHILD_INIT_FAILED 97
#define OUT_MAX		  65536

/*
 * The crashing functions are global (not static) so that -rdynamic puts them
 * in .dynsym: the stripped-binary test relies on that.  Values come from
 * volatile objects so the compiler can neither fold the crash away nor turn
 * it into a different one (a known NULL store becomes a trap at -O2).
 */
void crash_by_null_write(void);
void crash_by_abort(void);
void crash_by_divide_by_zero(void);
int crash_by_stack_overflow(int depth);
void crash_by_trap(void);
void crash_by_breakpoint(void);
void crash_by_bus_error(void);
void crash_by_null_function_call(void);
void print_stack_from_here(void);

static int *volatile null_ptr;
static void (*volatile null_fn)(void);
static volatile int divisor;
static volatile int sink;
static volatile int recursion_limit = INT_MAX;

__attribute__((noinline)) void crash_by_null_write(void)
{
	*null_ptr = 42;
}

__attribute__((noinline)) void crash_by_abort(void)
{
	abort();
}

__attribute__((noinline)) void crash_by_divide_by_zero(void)
{
	volatile int dividend = 7;

	sink = dividend / divisor;
}

__attribute__((noinline)) int crash_by_stack_overflow(int depth)
{
	volatile char pad[512];

	pad[0] = (char)depth;
	if (depth < recursion_limit)
		return crash_by_stack_overflow(depth + 1) + pad[0];
	return pad[0];
}

__attribute__((noinline)) void crash_by_trap(void)
{
	__builtin_trap();
}

__attribute__((noinline)) void crash_by_breakpoint(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("int3");
#else
	raise(SIGTRAP);
#endif
}

/* Touching a mapped page past the end of its file is SIGBUS, not SIGSEGV. */
__attribute__((noinline)) void crash_by_bus_error(void)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = memfd_create("stacktrace-bus", 0);
	volatile char *p;

	if (fd < 0 || ftruncate(fd, page))
		_exit(96);
	p = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		_exit(96);
	p[page] = 1;
}

/* The unwinder has no CFI for address 0, so only the return address names the caller. */
__attribute__((noinline)) void crash_by_null_function_call(void)
{
	null_fn();
	sink = 1; /* not a tail call: the return address must point here */
}

__attribute__((noinline)) void print_stack_from_here(void)
{
	int err = stacktrace_print(STDERR_FILENO);

	_exit(err ? 1 : 0);
}

static void overflow_stack(void)
{
	struct rlimit lim;

	/* With "ulimit -s unlimited" the recursion would eat memory instead of overflowing. */
	if (!getrlimit(RLIMIT_STACK, &lim) && lim.rlim_cur > 8 << 20) {
		lim.rlim_cur = 8 << 20;
		setrlimit(RLIMIT_STACK, &lim);
	}
	sink = crash_by_stack_overflow(0);
}

static void *overflow_in_thread(void *arg)
{
	(void)arg;
	/* The alternate stack is per thread: without this call it could not report. */
	if (stacktrace_init() != 0)
		_exit(CHILD_INIT_FAILED);
	sink = crash_by_stack_overflow(0);
	return NULL;
}

static void overflow_thread_stack(void)
{
	pthread_attr_t attr;
	pthread_t tid;

	/* A small stack overflows fast, which matters under valgrind. */
	if (pthread_attr_init(&attr) || pthread_attr_setstacksize(&attr, 256 * 1024) ||
	    pthread_create(&tid, &attr, overflow_in_thread, NULL))
		_exit(95);
	pthread_join(tid, NULL);
}

static void init_twice_and_exit(void)
{
	if (stacktrace_init() != 0)
		_exit(CHILD_INIT_FAILED);
}

static const struct {
	const char *name;
	void (*fn)(void);
} crashes[] = {
	{ "null_write", crash_by_null_write },
	{ "abort", crash_by_abort },
	{ "divide_by_zero", crash_by_divide_by_zero },
	{ "stack_overflow", overflow_stack },
	{ "trap", crash_by_trap },
	{ "breakpoint", crash_by_breakpoint },
	{ "bus_error", crash_by_bus_error },
	{ "null_function_call", crash_by_null_function_call },
};

struct child {
	int status;
	size_t len;
	char out[OUT_MAX];
};

static char self_path[PATH_MAX];

static void read_all(int fd, struct child *c)
{
	char drain[4096];
	ssize_t n;

	c->len = 0;
	for (;;) {
		if (c->len < sizeof(c->out) - 1)
			n = read(fd, c->out + c->len, sizeof(c->out) - 1 - c->len);
		else
			n = read(fd, drain, sizeof(drain));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (c->len < sizeof(c->out) - 1)
			c->len += (size_t)n;
	}
	c->out[c->len] = '\0';
	close(fd);
}

/* Run fn in a child that set up crash reporting first; collect its stderr and fate. */
static __attribute__((noinline)) void run_child(void (*fn)(void), struct child *c)
{
	int pfd[2];
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], STDERR_FILENO);
		/* A hang in the handler must fail the test, not stall it. */
		alarm(CHILD_TIMEOUT);
		if (stacktrace_init() != 0)
			_exit(CHILD_INIT_FAILED);
		fn();
		_exit(0);
	}
	close(pfd[1]);
	read_all(pfd[0], c);
	assert_int_equal(waitpid(pid, &c->status, 0), pid);
}

/* Exec argv with stderr into the child record; exec failure exits 127. */
static void run_exec(char *const argv[], struct child *c)
{
	int pfd[2];
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], STDERR_FILENO);
		alarm(CHILD_TIMEOUT);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	read_all(pfd[0], c);
	assert_int_equal(waitpid(pid, &c->status, 0), pid);
}

static void dump(const struct child *c)
{
	print_message("--- child stderr (%zu bytes), status 0x%x:\n%s--- end\n", c->len, c->status,
		      c->out);
}

static void expect_signal(const struct child *c, int sig)
{
	if (!WIFSIGNALED(c->status) || WTERMSIG(c->status) != sig) {
		dump(c);
		fail_msg("child did not die by signal %d", sig);
	}
}

static void expect_text(const struct child *c, const char *text)
{
	if (!strstr(c->out, text)) {
		dump(c);
		fail_msg("\"%s\" missing from the child's report", text);
	}
}

/* The line of frame #idx, copied into line (empty if there is none). */
static void frame_line(const struct child *c, int idx, char *line, size_t len)
{
	char tag[16];
	const char *p, *end;

	snprintf(tag, sizeof(tag), "\n#%d ", idx);
	line[0] = '\0';
	if (!strncmp(c->out, tag + 1, strlen(tag + 1)))
		p = c->out;
	else if ((p = strstr(c->out, tag)))
		p++;
	else
		return;
	end = strchr(p, '\n');
	if (!end)
		end = p + strlen(p);
	if ((size_t)(end - p) >= len)
		end = p + len - 1;
	memcpy(line, p, (size_t)(end - p));
	line[end - p] = '\0';
}

/* Frame #0 must be the crashing instruction itself, with its source file. */
static void expect_first_frame(const struct child *c, const char *fn)
{
	char line[1024];

	frame_line(c, 0, line, sizeof(line));
	if (!strstr(line, fn) || !strstr(line, "test_stacktrace.c:")) {
		dump(c);
		fail_msg("frame #0 is \"%s\", expected %s at test_stacktrace.c:LINE", line, fn);
	}
}

/* The report starts at the crash: the handler and the signal trampoline are noise. */
static void expect_no_handler_frames(const struct child *c)
{
	if (strstr(c->out, "crash_handler") || strstr(c->out, "__restore_rt") ||
	    strstr(c->out, "common/stacktrace.c")) {
		dump(c);
		fail_msg("the report shows frames of the crash handler itself");
	}
}

static void expect_report(const struct child *c, int sig, const char *signame, const char *fn)
{
	const char *at_fn, *at_caller;

	expect_signal(c, sig);
	/* Header first: signal name and program, so a log grep finds the culprit. */
	if (strncmp(c->out, "*** ", 4) != 0) {
		dump(c);
		fail_msg("report does not start with the header line");
	}
	expect_text(c, signame);
	expect_text(c, self_path);
	expect_text(c, fn);
	expect_text(c, "test_stacktrace.c:");
	expect_no_handler_frames(c);
	/* Unwinding went past the crashing function into its caller. */
	at_fn = strstr(c->out, fn);
	at_caller = strstr(c->out, "run_child+");
	if (!at_caller || at_caller < at_fn) {
		dump(c);
		fail_msg("caller run_child not reported after %s", fn);
	}
}

static void test_null_write_is_reported_and_dies_by_sigsegv(void **state)
{
	static struct child c;
	char line[1024];

	(void)state;
	run_child(crash_by_null_write, &c);
	expect_report(&c, SIGSEGV, "SIGSEGV", "crash_by_null_write");
	expect_first_frame(&c, "crash_by_null_write+");
	expect_text(&c, " at 0x0)");
	frame_line(&c, 1, line, sizeof(line));
	if (!strstr(line, "run_child+")) {
		dump(&c);
		fail_msg("frame #1 is \"%s\", expected the caller run_child", line);
	}
}

static void test_abort_is_reported_and_dies_by_sigabrt(void **state)
{
	static struct child c;

	(void)state;
	run_child(crash_by_abort, &c);
	expect_report(&c, SIGABRT, "SIGABRT", "crash_by_abort");
	expect_text(&c, "sent by pid");
}

static void test_divide_by_zero_is_reported_and_dies_by_sigfpe(void **state)
{
	static struct child c;

	(void)state;
	run_child(crash_by_divide_by_zero, &c);
	expect_report(&c, SIGFPE, "SIGFPE", "crash_by_divide_by_zero");
	expect_first_frame(&c, "crash_by_divide_by_zero+");
}

static void test_stack_overflow_is_reported_from_alternate_stack(void **state)
{
	static struct child c;
	char line[1024];

	(void)state;
	/*
	 * Valgrind emulates the growth of the main stack: past its limit it
	 * reports the overflow itself, and the unwinder then reads stack words
	 * memcheck calls undefined, so the trace is cut short at random.  The
	 * thread case below (an ordinary mapping with a guard page) still runs.
	 */
	if (UNDER_VALGRIND())
		skip();
	run_child(overflow_stack, &c);
	expect_signal(&c, SIGSEGV);
	expect_text(&c, "SIGSEGV");
	expect_first_frame(&c, "crash_by_stack_overflow+");
	/* The recursion itself is visible, and the trace is cut rather than endless. */
	frame_line(&c, 1, line, sizeof(line));
	if (!strstr(line, "crash_by_stack_overflow+")) {
		dump(&c);
		fail_msg("frame #1 is \"%s\", expected the recursion", line);
	}
	expect_text(&c, "outer frames omitted");
	expect_no_handler_frames(&c);
}

static void test_stack_overflow_in_thread_is_reported_after_thread_init(void **state)
{
	static struct child c;

	(void)state;
	run_child(overflow_thread_stack, &c);
	expect_signal(&c, SIGSEGV);
	expect_text(&c, "SIGSEGV");
	expect_first_frame(&c, "crash_by_stack_overflow+");
	expect_no_handler_frames(&c);
}

static void test_trap_instruction_is_reported_and_dies_by_sigill(void **state)
{
	static struct child c;

	(void)state;
	run_child(crash_by_trap, &c);
	expect_report(&c, SIGILL, "SIGILL", "crash_by_trap");
	expect_first_frame(&c, "crash_by_trap+");
}

static void test_breakpoint_is_reported_and_dies_by_sigtrap(void **state)
{
	static struct child c;

	(void)state;
	run_child(crash_by_breakpoint, &c);
	expect_report(&c, SIGTRAP, "SIGTRAP", "crash_by_breakpoint");
}

static void test_access_past_end_of_mapped_file_dies_by_sigbus(void **state)
{
	static struct child c;

	(void)state;
	run_child(crash_by_bus_error, &c);
	expect_report(&c, SIGBUS, "SIGBUS", "crash_by_bus_error");
	expect_first_frame(&c, "crash_by_bus_error+");
}

static void test_call_through_null_pointer_names_the_caller(void **state)
{
	static struct child c;
	char line[1024];
	unsigned long addr = 1;

	(void)state;
#if !defined(__x86_64__) && !defined(__i386__)
	skip(); /* the caller is recovered from the stack only on x86 */
#endif
	run_child(crash_by_null_function_call, &c);
	expect_signal(&c, SIGSEGV);
	frame_line(&c, 0, line, sizeof(line));
	if (sscanf(line, "#0 %lx", &addr) != 1 || addr != 0 || !strstr(line, " ??")) {
		dump(&c);
		fail_msg("frame #0 is \"%s\", expected address 0", line);
	}
	frame_line(&c, 1, line, sizeof(line));
	if (!strstr(line, "crash_by_null_function_call+") || !strstr(line, "test_stacktrace.c:")) {
		dump(&c);
		fail_msg("frame #1 is \"%s\", expected crash_by_null_function_call", line);
	}
}

static void test_init_is_idempotent_and_silent_without_crash(void **state)
{
	static struct child c;

	(void)state;
	run_child(init_twice_and_exit, &c);
	if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0 || c.len != 0) {
		dump(&c);
		fail_msg("second init failed or a clean exit printed something");
	}
}

static void test_print_outside_signal_names_its_caller(void **state)
{
	static struct child c;
	char line[1024];

	(void)state;
	run_child(print_stack_from_here, &c);
	if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
		dump(&c);
		fail_msg("stacktrace_print failed");
	}
	frame_line(&c, 0, line, sizeof(line));
	if (!strstr(line, "print_stack_from_here+") || !strstr(line, "test_stacktrace.c:")) {
		dump(&c);
		fail_msg("frame #0 is \"%s\", expected print_stack_from_here", line);
	}
	expect_text(&c, "run_child+");
	/* Not a crash: no header. */
	assert_null(strstr(c.out, "***"));
}

static void test_print_to_closed_fd_returns_ebadf(void **state)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stacktrace_print(fd), -EBADF);
}

/*
 * A fully stripped copy keeps only .dynsym: function names (global ones, via
 * -rdynamic) but no file:line.  The copy is made with objcopy, which
 * valgrind's --trace-children would run under memcheck too, so that case is
 * left to the plain run.
 */
static void test_stripped_binary_still_names_crashing_function(void **state)
{
	static struct child c;
	char copy[PATH_MAX + 32];
	char *strip_argv[] = { "objcopy", "--strip-all", self_path, copy, NULL };
	char *crash_argv[] = { copy, "--crash", "null_write", NULL };
	char line[1024];

	(void)state;
	if (UNDER_VALGRIND())
		skip();
	/* Next to the binary: /tmp may be mounted noexec. */
	snprintf(copy, sizeof(copy), "%s.stripped.%d", self_path, (int)getpid());
	run_exec(strip_argv, &c);
	if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 127)
		skip();
	if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
		unlink(copy);
		dump(&c);
		fail_msg("objcopy --strip-all failed");
	}
	run_exec(crash_argv, &c);
	unlink(copy);
	expect_signal(&c, SIGSEGV);
	expect_text(&c, "SIGSEGV");
	frame_line(&c, 0, line, sizeof(line));
	if (!strstr(line, "crash_by_null_write+")) {
		dump(&c);
		fail_msg("frame #0 is \"%s\", expected crash_by_null_write", line);
	}
	/* Proves the names came from .dynsym, not from debug info found elsewhere. */
	if (strstr(c.out, "test_stacktrace.c:")) {
		dump(&c);
		fail_msg("a file:line was printed for a binary without debug info");
	}
}

/* Re-exec entry for the stripped-binary test: crash by name, like a real CLI would. */
static int crash_main(const char *name)
{
	size_t i;

	if (stacktrace_init() != 0)
		return CHILD_INIT_FAILED;
	for (i = 0; i < sizeof(crashes) / sizeof(crashes[0]); i++)
		if (!strcmp(crashes[i].name, name))
			crashes[i].fn();
	return 2;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_write_is_reported_and_dies_by_sigsegv),
		cmocka_unit_test(test_abort_is_reported_and_dies_by_sigabrt),
		cmocka_unit_test(test_divide_by_zero_is_reported_and_dies_by_sigfpe),
		cmocka_unit_test(test_stack_overflow_is_reported_from_alternate_stack),
		cmocka_unit_test(test_stack_overflow_in_thread_is_reported_after_thread_init),
		cmocka_unit_test(test_trap_instruction_is_reported_and_dies_by_sigill),
		cmocka_unit_test(test_breakpoint_is_reported_and_dies_by_sigtrap),
		cmocka_unit_test(test_access_past_end_of_mapped_file_dies_by_sigbus),
		cmocka_unit_test(test_call_through_null_pointer_names_the_caller),
		cmocka_unit_test(test_init_is_idempotent_and_silent_without_crash),
		cmocka_unit_test(test_print_outside_signal_names_its_caller),
		cmocka_unit_test(test_print_to_closed_fd_returns_ebadf),
		cmocka_unit_test(test_stripped_binary_still_names_crashing_function),
	};
	ssize_t n;

	if (argc == 3 && !strcmp(argv[1], "--crash"))
		return crash_main(argv[2]);
	n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n <= 0)
		return 1;
	self_path[n] = '\0';
	return cmocka_run_group_tests(tests, NULL, NULL);
}
