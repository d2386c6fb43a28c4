// SPDX-License-Identifier: GPL-2.0
/* Crash reports: a symbol table built at start-up, read by a signal handler. */
#include "stacktrace.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

/* Deep enough for any real call chain; a runaway recursion is cut here. */
#define MAX_FRAMES 64

/* Frames of the handler itself, skipped when the faulting PC is not found. */
#define HANDLER_FRAMES 2

/* The unwinder and our formatting need a few KiB; the kernel's minimum is not enough. */
#define ALTSTACK_MIN (64 * 1024)

struct st_sym {
	uintptr_t start;
	uintptr_t end; /* == start when the symbol has no size */
	uint32_t name; /* offset in strs */
	uint16_t mod;
	uint8_t bind; /* only used while sorting: global beats weak beats local */
};

struct st_line {
	uintptr_t addr;
	uint32_t file; /* offset in strs */
	uint32_t line; /* 0: end of a sequence, no line from here on */
};

struct st_mod {
	uintptr_t start;
	uintptr_t end;
	uint32_t name; /* basename, offset in strs */
	uint16_t id;   /* index before sorting, to fix up st_sym.mod */
	bool main;     /* the executable: the header already names it */
};

/* Everything the handler reads; written once, before the handlers exist. */
struct st_table {
	struct st_sym *syms;
	size_t nsyms;
	struct st_line *lines;
	size_t nlines;
	struct st_mod *mods;
	size_t nmods;
	char *strs;
};

/* Growth state used only while building. */
struct builder {
	struct st_table t;
	size_t syms_cap;
	size_t lines_cap;
	size_t mods_cap;
	size_t strs_len;
	size_t strs_cap;
	uint32_t *files; /* open-addressing set of file names: offset + 1, 0 = free */
	size_t files_cap;
	size_t files_used;
	Dwfl *dwfl;
	Dwfl_Module *main_mod;
	int nobj; /* objects seen by dl_iterate_phdr, the first is the executable */
	int err;
};

static struct st_table the_table;
static const struct st_table *table; /* set once the_table is complete */
static char program_path[PATH_MAX];
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool handlers_installed;
static int reporting; /* first crashing thread wins, the others wait to die */

static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP };

/* ---- building the table (normal context: malloc and libdw are fine) ---- */

/* Room for need elements of p; the (possibly moved) array, or NULL with p untouched. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;

	if (need <= *cap)
		return p;
	while (n < need)
		n *= 2;
	p = realloc(p, n * elem);
	if (p)
		*cap = n;
	return p;
}

/* Offsets are 32 bits to keep the arrays small; 4 GiB of names is not a real case. */
static int64_t str_add_n(struct builder *b, const char *s, size_t n)
{
	size_t off = b->strs_len;
	char *strs;

	if (off + n + 1 > UINT32_MAX)
		return -1;
	strs = grow(b->t.strs, &b->strs_cap, off + n + 1, 1);
	if (!strs)
		return -1;
	b->t.strs = strs;
	memcpy(b->t.strs + off, s, n);
	b->t.strs[off + n] = '\0';
	b->strs_len += n + 1;
	return (int64_t)off;
}

static int64_t str_add(struct builder *b, const char *s)
{
	return str_add_n(b, s, strlen(s));
}

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
	return h;
}

/* Each CU lists its headers again, so file names are shared across CUs. */
static int64_t file_intern(struct builder *b, const char *s)
{
	size_t i, mask;
	int64_t off;

	if ((b->files_used + 1) * 2 > b->files_cap) {
		size_t ncap = b->files_cap ? b->files_cap * 2 : 256;
		uint32_t *n = calloc(ncap, sizeof(*n));

		if (!n)
			return -1;
		for (i = 0; i < b->files_cap; i++) {
			uint32_t v = b->files[i];
			size_t j;

			if (!v)
				continue;
			for (j = str_hash(b->t.strs + v - 1) & (ncap - 1); n[j];
			     j = (j + 1) & (ncap - 1))
				;
			n[j] = v;
		}
		free(b->files);
		b->files = n;
		b->files_cap = ncap;
	}
	mask = b->files_cap - 1;
	for (i = str_hash(s) & mask; b->files[i]; i = (i + 1) & mask)
		if (!strcmp(b->t.strs + b->files[i] - 1, s))
			return b->files[i] - 1;
	off = str_add(b, s);
	if (off < 0 || off + 1 > UINT32_MAX)
		return -1;
	b->files[i] = (uint32_t)off + 1;
	b->files_used++;
	return off;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int add_symbols(struct builder *b, Dwfl_Module *mod, uint16_t modi)
{
	int i, n = dwfl_module_getsymtab(mod);

	/* No symbol table at all is fine: frames then show object+offset. */
	for (i = 1; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name;
		struct st_sym *s;
		int type;
		int64_t off;

		name = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, NULL, NULL);
		type = GELF_ST_TYPE(sym.st_info);
		if (!name || !*name || shndx == SHN_UNDEF || !addr)
			continue;
		if (type != STT_FUNC && type != STT_GNU_IFUNC)
			continue;
		s = grow(b->t.syms, &b->syms_cap, b->t.nsyms + 1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		b->t.syms = s;
		/* "memcpy@@GLIBC_2.14": the version is noise in a trace. */
		off = str_add_n(b, name, strcspn(name, "@"));
		if (off < 0)
			return -ENOMEM;
		s = &b->t.syms[b->t.nsyms++];
		s->start = addr;
		s->end = addr + sym.st_size;
		s->name = (uint32_t)off;
		s->mod = modi;
		s->bind = GELF_ST_BIND(sym.st_info);
	}
	return 0;
}

static int push_line(struct builder *b, uintptr_t addr, uint32_t file, uint32_t line)
{
	struct st_line *l = grow(b->t.lines, &b->lines_cap, b->t.nlines + 1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	b->t.lines = l;
	l = &b->t.lines[b->t.nlines++];
	l->addr = addr;
	l->file = file;
	l->line = line;
	return 0;
}

static int add_lines(struct builder *b, Dwfl_Module *mod)
{
	Dwarf_Die *cu = NULL;
	Dwarf_Addr bias;

	while ((cu = dwfl_module_nextcu(mod, cu, &bias))) {
		Dwarf_Lines *lines;
		size_t i, n;
		const char *last_src = NULL;
		uint32_t file = 0, last_line = 0;

		if (dwarf_getsrclines(cu, &lines, &n) != 0)
			continue;
		for (i = 0; i < n; i++) {
			Dwarf_Line *l = dwarf_onesrcline(lines, i);
			Dwarf_Addr addr;
			bool end = false;
			int lineno = 0;
			const char *src;
			int err;

			if (!l || dwarf_lineaddr(l, &addr) || dwarf_lineendsequence(l, &end))
				continue;
			if (end) {
				err = push_line(b, addr + bias, 0, 0);
				last_line = 0;
			} else {
				src = dwarf_linesrc(l, NULL, NULL);
				if (!src || dwarf_lineno(l, &lineno) || lineno <= 0)
					continue;
				/* Names are stable pointers within a CU: intern once per change. */
				if (src != last_src) {
					int64_t off = file_intern(b, src);

					if (off < 0)
						return -ENOMEM;
					last_src = src;
					file = (uint32_t)off;
					last_line = 0;
				}
				/* Several rows per line (columns, views) add nothing to a trace. */
				if ((uint32_t)lineno == last_line)
					continue;
				last_line = (uint32_t)lineno;
				err = push_line(b, addr + bias, file, (uint32_t)lineno);
			}
			if (err)
				return err;
		}
	}
	return 0;
}

static int add_module(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
		      void *arg)
{
	struct builder *b = arg;
	Dwarf_Addr end = 0;
	struct st_mod *m;
	int64_t off;
	int err;

	(void)userdata;
	(void)start;
	if (b->t.nmods >= UINT16_MAX)
		return DWARF_CB_ABORT;
	dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
	m = grow(b->t.mods, &b->mods_cap, b->t.nmods + 1, sizeof(*m));
	if (!m)
		goto nomem;
	b->t.mods = m;
	off = str_add(b, base_name(name));
	if (off < 0)
		goto nomem;
	m = &b->t.mods[b->t.nmods];
	m->start = start;
	m->end = end;
	m->name = (uint32_t)off;
	m->id = (uint16_t)b->t.nmods;
	m->main = mod == b->main_mod;
	err = add_symbols(b, mod, (uint16_t)b->t.nmods);
	/*
	 * Line tables only for the executable: that is our code, and reading
	 * libc's (with libc6-dbg installed) would add ~150 ms to every start.
	 */
	if (!err && mod == b->main_mod)
		err = add_lines(b, mod);
	b->t.nmods++;
	if (err) {
		b->err = err;
		return DWARF_CB_ABORT;
	}
	return DWARF_CB_OK;
nomem:
	b->err = -ENOMEM;
	return DWARF_CB_ABORT;
}

/* dl_iterate_phdr knows where each object really is (PIE, ASLR) without parsing /proc. */
static int report_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct builder *b = arg;
	const char *name = info->dlpi_name, *file = name;
	Dwfl_Module *mod;
	bool is_main = b->nobj++ == 0;

	(void)size;
	if (is_main) {
		/* The executable has no name here; /proc/self/exe opens it even if replaced. */
		name = program_path[0] ? program_path : "/proc/self/exe";
		file = "/proc/self/exe";
	}
	if (!name || !*name || info->dlpi_phnum == 0)
		return 0;
	/* Unopenable objects (the vDSO) are skipped: their frames print as addresses. */
	mod = dwfl_report_elf(b->dwfl, name, file, -1, info->dlpi_addr, true);
	if (is_main)
		b->main_mod = mod;
	return 0;
}

static int sym_cmp(const void *pa, const void *pb)
{
	const struct st_sym *a = pa, *b = pb;
	static const int rank[] = { [STB_GLOBAL] = 0, [STB_WEAK] = 1, [STB_LOCAL] = 2 };
	int ra = a->bind <= STB_WEAK ? rank[a->bind] : 3;
	int rb = b->bind <= STB_WEAK ? rank[b->bind] : 3;

	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	/* Aliases share an address: prefer a sized symbol, then the most public name. */
	if ((a->end - a->start) != (b->end - b->start))
		return (a->end - a->start) > (b->end - b->start) ? -1 : 1;
	if (ra != rb)
		return ra - rb;
	return a->name < b->name ? -1 : a->name > b->name;
}

static int line_cmp(const void *pa, const void *pb)
{
	const struct st_line *a = pa, *b = pb;

	if (a->addr != b->addr)
		return a->addr < b->addr ? -1 : 1;
	/* A sequence may end where the next begins: the end marker must sort first. */
	if ((a->line != 0) != (b->line != 0))
		return a->line ? 1 : -1;
	return 0;
}

static int mod_cmp(const void *pa, const void *pb)
{
	const struct st_mod *a = pa, *b = pb;

	return a->start < b->start ? -1 : a->start > b->start;
}

static int build_table(struct st_table *out)
{
	static char *debuginfo_path;
	static const Dwfl_Callbacks callbacks = {
		.find_elf = dwfl_linux_proc_find_elf,
		/*
		 * Build-id lookup under /usr/lib/debug only.  The standard
		 * finder also dlopens the debuginfod client (curl, TLS) and may
		 * fetch over the network: not at every start of a firewall tool.
		 */
		.find_debuginfo = dwfl_build_id_find_debuginfo,
		.debuginfo_path = &debuginfo_path,
	};
	struct builder b;
	uint16_t *remap = NULL;
	size_t i, n;

	memset(&b, 0, sizeof(b));
	b.dwfl = dwfl_begin(&callbacks);
	if (!b.dwfl)
		return -ENOMEM;
	dwfl_report_begin(b.dwfl);
	dl_iterate_phdr(report_object, &b);
	if (dwfl_report_end(b.dwfl, NULL, NULL) == 0)
		dwfl_getmodules(b.dwfl, add_module, &b, 0);
	else
		b.err = -ENOMEM;
	dwfl_end(b.dwfl);
	free(b.files);
	if (!b.err && !b.t.nmods)
		b.err = -ENOENT;
	if (b.err)
		goto fail;

	qsort(b.t.mods, b.t.nmods, sizeof(*b.t.mods), mod_cmp);
	remap = malloc(b.t.nmods * sizeof(*remap));
	if (!remap) {
		b.err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < b.t.nmods; i++)
		remap[b.t.mods[i].id] = (uint16_t)i;
	for (i = 0; i < b.t.nsyms; i++)
		b.t.syms[i].mod = remap[b.t.syms[i].mod];
	free(remap);

	qsort(b.t.syms, b.t.nsyms, sizeof(*b.t.syms), sym_cmp);
	for (i = n = 0; i < b.t.nsyms; i++)
		if (!n || b.t.syms[i].start != b.t.syms[n - 1].start)
			b.t.syms[n++] = b.t.syms[i];
	b.t.nsyms = n;
	qsort(b.t.lines, b.t.nlines, sizeof(*b.t.lines), line_cmp);
	*out = b.t;
	return 0;
fail:
	free(b.t.syms);
	free(b.t.lines);
	free(b.t.mods);
	free(b.t.strs);
	return b.err;
}

/* ---- lookups and output: async-signal-safe, no malloc, stdio or locks ---- */

static const struct st_mod *find_mod(const struct st_table *t, uintptr_t a)
{
	size_t lo = 0, hi = t->nmods;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->mods[mid].start <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && a < t->mods[lo - 1].end)
		return &t->mods[lo - 1];
	return NULL;
}

static const struct st_sym *find_sym(const struct st_table *t, uintptr_t a)
{
	size_t lo = 0, hi = t->nsyms;
	const struct st_sym *s;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->syms[mid].start <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	s = &t->syms[lo - 1];
	if (a < s->end)
		return s;
	/* A sizeless symbol (hand-written assembly) runs to the next one in its object. */
	if (s->end == s->start && a < t->mods[s->mod].end)
		return s;
	return NULL;
}

static const struct st_line *find_line(const struct st_table *t, uintptr_t a)
{
	size_t lo = 0, hi = t->nlines;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->lines[mid].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && t->lines[lo - 1].line)
		return &t->lines[lo - 1];
	return NULL;
}

struct out {
	int fd;
	int err; /* first write error as -errno; later output is dropped */
	size_t len;
	char buf[512];
};

static void out_flush(struct out *o)
{
	size_t done = 0;

	while (done < o->len && !o->err) {
		ssize_t n = write(o->fd, o->buf + done, o->len - done);

		if (n > 0)
			done += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			o->err = n < 0 ? -errno : -EIO;
	}
	o->len = 0;
}

static void out_char(struct out *o, char c)
{
	if (o->len == sizeof(o->buf))
		out_flush(o);
	o->buf[o->len++] = c;
}

static void out_str(struct out *o, const char *s)
{
	while (*s)
		out_char(o, *s++);
}

/* snprintf is not async-signal-safe, so numbers are formatted by hand. */
static void out_num(struct out *o, uintmax_t v, unsigned int base, int width)
{
	char tmp[sizeof(uintmax_t) * 8 + 1];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n < width && n < (int)sizeof(tmp))
		tmp[n++] = '0';
	while (n)
		out_char(o, tmp[--n]);
}

static void out_hex(struct out *o, uintmax_t v, int width)
{
	out_str(o, "0x");
	out_num(o, v, 16, width);
}

/*
 * pc is exact for the faulting frame; for the others it is a return address,
 * which may already belong to the next line or even the next function (a
 * call to a noreturn function at the very end), so those are looked up one
 * byte earlier.
 */
static void put_frame(struct out *o, const struct st_table *t, unsigned int idx, uintptr_t pc,
		      bool exact)
{
	uintptr_t look = exact || !pc ? pc : pc - 1;
	const struct st_sym *sym = t ? find_sym(t, look) : NULL;
	const struct st_line *line = t ? find_line(t, look) : NULL;
	const struct st_mod *mod = t ? find_mod(t, look) : NULL;

	out_str(o, "#");
	out_num(o, idx, 10, 0);
	out_str(o, idx < 10 ? "  " : " ");
	out_hex(o, pc, (int)sizeof(void *) * 2);
	if (sym) {
		out_str(o, " ");
		out_str(o, t->strs + sym->name);
		out_str(o, "+");
		out_hex(o, pc - sym->start, 0);
	} else {
		out_str(o, " ??");
	}
	if (line) {
		out_str(o, " at ");
		out_str(o, t->strs + line->file);
		out_str(o, ":");
		out_num(o, line->line, 10, 0);
	}
	/* Without a name, object+offset is what addr2line and gdb need. */
	if (mod && (!mod->main || !sym)) {
		out_str(o, " in ");
		out_str(o, t->strs + mod->name);
		if (!sym) {
			out_str(o, "+");
			out_hex(o, pc - mod->start, 0);
		}
	}
	out_str(o, "\n");
}

static const char *signal_name(int sig, const char **what)
{
	switch (sig) {
	case SIGSEGV:
		*what = "invalid memory access";
		return "SIGSEGV";
	case SIGBUS:
		*what = "bus error";
		return "SIGBUS";
	case SIGILL:
		*what = "illegal instruction";
		return "SIGILL";
	case SIGFPE:
		*what = "arithmetic exception";
		return "SIGFPE";
	case SIGABRT:
		*what = "aborted";
		return "SIGABRT";
	case SIGTRAP:
		*what = "trace/breakpoint trap";
		return "SIGTRAP";
	}
	*what = "fatal signal";
	return "signal";
}

static uintptr_t context_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__i386__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_EIP];
#elif defined(__aarch64__)
	return (uintptr_t)uc->uc_mcontext.pc;
#else
	(void)uc;
	return 0;
#endif
}

/*
 * When the PC is outside every object (a call through a bad function
 * pointer) the unwinder has no CFI to go on and stops there.  On x86 the
 * call has just pushed its return address, so that names the caller.
 */
static uintptr_t context_return_guess(const ucontext_t *uc)
{
#if defined(__x86_64__)
	const uintptr_t *sp = (const uintptr_t *)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__i386__)
	const uintptr_t *sp = (const uintptr_t *)uc->uc_mcontext.gregs[REG_ESP];
#else
	const uintptr_t *sp = NULL;
#endif
	if (!sp || ((uintptr_t)sp & (sizeof(*sp) - 1)))
		return 0;
	return *sp;
}

static void report(int fd, int sig, const siginfo_t *si, const ucontext_t *uc)
{
	const struct st_table *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	void *frames[MAX_FRAMES];
	struct out o = { .fd = fd };
	uintptr_t ret, last = 0, pc = uc ? context_pc(uc) : 0;
	int i, n, first = -1;
	unsigned int idx = 0;
	bool found, lost;
	const char *what, *name = signal_name(sig, &what);

	out_str(&o, "*** ");
	out_str(&o, name);
	out_str(&o, " (");
	out_str(&o, what);
	if (si->si_code <= 0) {
		out_str(&o, ", sent by pid ");
		out_num(&o, (uintmax_t)si->si_pid, 10, 0);
	} else if (sig == SIGSEGV || sig == SIGBUS) {
		out_str(&o, " at ");
		out_hex(&o, (uintptr_t)si->si_addr, 0);
	}
	out_str(&o, ") in ");
	out_str(&o, program_path[0] ? program_path : "?");
	out_str(&o, " [pid ");
	out_num(&o, (uintmax_t)getpid(), 10, 0);
	out_str(&o, "]\n");
	out_flush(&o);

	n = backtrace(frames, MAX_FRAMES);
	/* Start at the faulting frame: what came before it is this handler. */
	for (i = 0; i < n && uc; i++)
		if ((uintptr_t)frames[i] == pc) {
			first = i;
			break;
		}
	found = first >= 0;
	lost = uc && !(t && find_mod(t, pc));
	if (!found) {
		/*
		 * A PC outside every object ends the unwind (glibc even drops it
		 * when it is NULL), so every frame we have is the handler's.
		 * Otherwise guess where the handler's frames end.
		 */
		if (uc)
			put_frame(&o, t, idx++, pc, true);
		last = pc;
		first = lost ? n : HANDLER_FRAMES + 1;
	}
	for (i = first; i < n; i++) {
		last = (uintptr_t)frames[i];
		put_frame(&o, t, idx++, last, found && i == first);
	}
	if (lost && last == pc) {
		/* Flushed first: a bad stack pointer may fault on the read below. */
		out_flush(&o);
		ret = context_return_guess(uc);
		if (ret)
			put_frame(&o, t, idx++, ret, false);
	}
	if (n == MAX_FRAMES)
		out_str(&o, "... outer frames omitted\n");
	out_flush(&o);
}

static void crash_handler(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	int saved_errno = errno;
	struct sigaction dfl;

	if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQ_REL)) {
		/* Another thread is reporting and will end the process; don't interleave. */
		for (;;)
			pause();
	}
	report(STDERR_FILENO, sig, si, uc);

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	/*
	 * The signal stays pending until we return, so the default action runs
	 * in the crashing context and a core dump shows the crash, not us.
	 */
	raise(sig);
	if (uc)
		sigdelset(&uc->uc_sigmask, sig);
	errno = saved_errno;
}

/* ---- set-up ---- */

static int ensure_altstack(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = ALTSTACK_MIN;
	stack_t cur, ss;
	char *mem;
	int err;

#ifdef _SC_SIGSTKSZ
	long min = sysconf(_SC_SIGSTKSZ);

	if (min > 0 && (size_t)min * 4 > size)
		size = (size_t)min * 4;
#endif
	if (sigaltstack(NULL, &cur))
		return -errno;
	/* Keep one the program set up itself if it is big enough (or in use). */
	if ((cur.ss_flags & SS_ONSTACK) || (!(cur.ss_flags & SS_DISABLE) && cur.ss_size >= size))
		return 0;
	size = (size + page - 1) & ~(page - 1);
	mem = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	/* A guard page, so a handler that overflows its stack faults instead of scribbling. */
	if (mprotect(mem, page, PROT_NONE))
		goto fail;
	ss.ss_sp = mem + page;
	ss.ss_size = size;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL))
		goto fail;
	return 0;
fail:
	err = -errno;
	munmap(mem, size + page);
	return err;
}

static int install_handlers(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = crash_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	/* A second fault inside the handler then kills at once instead of recursing. */
	for (i = 0; i < sizeof(crash_signals) / sizeof(crash_signals[0]); i++)
		sigaddset(&sa.sa_mask, crash_signals[i]);
	for (i = 0; i < sizeof(crash_signals) / sizeof(crash_signals[0]); i++)
		if (sigaction(crash_signals[i], &sa, NULL))
			return -errno;
	return 0;
}

int stacktrace_init(void)
{
	int err;

	pthread_mutex_lock(&init_lock);
	err = ensure_altstack();
	if (!err && !handlers_installed) {
		void *probe[2];
		ssize_t n = readlink("/proc/self/exe", program_path, sizeof(program_path) - 1);

		if (n > 0)
			program_path[n] = '\0';
		else
			strncpy(program_path, program_invocation_name, sizeof(program_path) - 1);
		if (!table && build_table(&the_table) == 0)
			__atomic_store_n(&table, &the_table, __ATOMIC_RELEASE);
		/* backtrace() dlopens libgcc_s on first use: not in the handler. */
		backtrace(probe, 2);
		err = install_handlers();
		handlers_installed = !err;
	}
	pthread_mutex_unlock(&init_lock);
	return err;
}

__attribute__((noinline)) int stacktrace_print(int fd)
{
	const struct st_table *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	void *frames[MAX_FRAMES];
	struct out o = { .fd = fd };
	void *caller = __builtin_return_address(0);
	int i, n, first;

	if (fcntl(fd, F_GETFD) < 0)
		return -errno;
	n = backtrace(frames, MAX_FRAMES);
	/* Start at our caller; an interposed backtrace() (TSan) adds frames of its own. */
	for (first = 0; first < n && frames[first] != caller; first++)
		;
	if (first == n)
		first = 1;
	for (i = first; i < n; i++)
		put_frame(&o, t, (unsigned int)(i - first), (uintptr_t)frames[i], false);
	if (n == MAX_FRAMES)
		out_str(&o, "... outer frames omitted\n");
	out_flush(&o);
	return o.err;
}
