/*
 * Static-function names from .symtab, for stack dumps (symbolize.h).
 *
 * backtrace_symbols() names only what dladdr() finds, the dynamic symbol
 * table, so a stalled thread's frames in static or hidden functions read
 * `reflex(+0x9876)`. The full symbol table is in the file unless it was
 * stripped; read its section headers, the symbol table and the one name
 * wanted, with pread (no mapping: under mlockall(MCL_FUTURE) a mapping
 * would be locked and read whole).
 */
#include "symbolize.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SECTIONS 4096
#define MAX_SYMTAB   (64u << 20)

static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        done += (size_t)k;
    }
    return 0;
}

/* The function symbol covering `want` (a symbol value: the address less the
 * object's load bias), from fd's .symtab. */
static int lookup(int fd, uint64_t want, char *name, size_t len, uintptr_t *off)
{
    Elf64_Ehdr eh;
    int rc = read_at(fd, &eh, sizeof eh, 0);
    if (rc)
        return rc;
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum > MAX_SECTIONS)
        return -ENOENT;
    Elf64_Shdr *sh = malloc(eh.e_shnum * sizeof *sh);
    if (!sh)
        return -ENOMEM;
    rc = read_at(fd, sh, eh.e_shnum * sizeof *sh, eh.e_shoff);
    int symtab = -1;
    for (int i = 0; rc == 0 && i < eh.e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB && sh[i].sh_link < eh.e_shnum &&
            sh[i].sh_entsize == sizeof(Elf64_Sym) && sh[i].sh_size <= MAX_SYMTAB)
            symtab = i;
    if (rc || symtab < 0) {
        free(sh);
        return rc ? rc : -ENOENT;
    }
    Elf64_Shdr st = sh[symtab], str = sh[sh[symtab].sh_link];
    free(sh);
    size_t n = st.sh_size / sizeof(Elf64_Sym);
    Elf64_Sym *syms = malloc(n ? n * sizeof *syms : 1);
    if (!syms)
        return -ENOMEM;
    if ((rc = read_at(fd, syms, n * sizeof *syms, st.sh_offset)) != 0) {
        free(syms);
        return rc;
    }
    const Elf64_Sym *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const Elf64_Sym *s = &syms[i];
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF)
            continue;
        if (want >= s->st_value && want - s->st_value < (s->st_size ? s->st_size : 1))
            best = s;
    }
    rc = -ENOENT;
    if (best && best->st_name < str.sh_size && len > 0) {
        size_t k = len - 1;
        if (k > str.sh_size - best->st_name)
            k = str.sh_size - best->st_name;
        if ((rc = read_at(fd, name, k, str.sh_offset + best->st_name)) == 0) {
            name[k] = 0;
            *off = (uintptr_t)(want - best->st_value);
            rc = name[0] ? 0 : -ENOENT;
        }
    }
    free(syms);
    return rc;
}

int rfx_symbolize(const void *pc, char *name, size_t len, uintptr_t *off)
{
    Dl_info di;
    struct link_map *lm = NULL;
    if (!dladdr1(pc, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return -ENOENT;
    /* The main program's link map has no name (dladdr reports argv[0],
     * which need not open, or may open another file): read
     * /proc/self/exe, the file itself. */
    const char *path = lm->l_name && lm->l_name[0] ? lm->l_name : "/proc/self/exe";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Symbol values are addresses less the object's load bias (0 for a
     * fixed-address executable). */
    int rc = lookup(fd, (uint64_t)((uintptr_t)pc - lm->l_addr), name, len, off);
    close(fd);
    return rc;
}

void rfx_symbolize_line(const char *line, const void *pc, const void *at, char *out, size_t len)
{
    const char *open = strstr(line, "(+");
    const char *close = open ? strchr(open, ')') : NULL;
    char name[128];
    uintptr_t off = 0;
    if (!close || rfx_symbolize(at, name, sizeof name, &off) != 0) {
        snprintf(out, len, "%s", line);
        return;
    }
    off += (uintptr_t)((const char *)pc - (const char *)at);
    snprintf(out, len, "%.*s(%s+0x%jx)%s", (int)(open - line), line, name, (uintmax_t)off,
             close + 1);
}
