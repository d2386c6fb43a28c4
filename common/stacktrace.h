/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stack trace on crash.  A fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 * SIGABRT, SIGTRAP) writes one header line and one line per frame to stderr,
 * then the process dies by that same signal, so exit status and core dumps
 * are what they would have been without us.
 *
 * Symbolising needs the ELF and DWARF readers, which allocate and lock, so it
 * is done once at start-up: every loaded object's function symbols and the
 * executable's DWARF line table go into sorted arrays, and the handler
 * only binary-searches them and formats numbers itself.  Frames come from
 * glibc backtrace() (libgcc's CFI unwinder, which also steps over the signal
 * frame and copes with -O2 code that keeps no frame pointer); it is called
 * once at init so its lazy dlopen of libgcc_s never happens in the handler.
 *
 * The reader is elfutils (libdwfl/libdw), not libbfd: it is already in LDLIBS
 * (-ldw), it is licensed LGPL-3.0+/GPL-2.0+ where libbfd is
 * GPL-3.0+ only and so cannot be combined with this GPL-2.0 code, libbfd has
 * no stable ABI (binutils ships it as a private, version-named library), and
 * libdwfl already knows how to place a PIE or shared object at its load
 * address and how to find separate debug info by build-id (-dbgsym packages).
 * Without any DWARF the trace falls back to .symtab or, fully stripped, to
 * .dynsym (every global function with -rdynamic), then to object+offset.
 *
 * Objects dlopen()ed after stacktrace_init() show as raw addresses.
 * The alternate signal stack, which lets a stack overflow be reported, is
 * per thread: threads that want that should call stacktrace_init() too
 * (64 KiB each, left mapped when the thread ends).
 */
#ifndef IPBLOCK_STACKTRACE_H
#define IPBLOCK_STACKTRACE_H

/*
 * Build the symbol table, give the calling thread an alternate signal stack
 * and install the crash handlers.  Call first thing in main().  Calling it
 * again (from any thread) only adds the alternate stack for that thread.  A
 * missing symbol table is not an error (frames print as addresses).
 * Returns 0 or -errno.
 */
int stacktrace_init(void);

/* Write the caller's stack, one frame per line, to fd.  Returns 0 or -errno. */
int stacktrace_print(int fd);

#endif /* IPBLOCK_STACKTRACE_H */
