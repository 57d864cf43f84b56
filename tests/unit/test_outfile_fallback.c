/* Files written where the file system has no O_TMPFILE (vfat and NFS among
 * them): the bundle's reserved summary.json and the cache snapshot fall
 * back to a named temporary file. This binary
 * interposes open() to refuse O_TMPFILE as such a file system does, so that
 * the fallback runs on this machine's tmpfs/ext4, which support it. */
#undef _FORTIFY_SOURCE /* this file defines open() itself */
#include "outfile.h"
#include "persist.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int refused; /* opens with O_TMPFILE turned away */

static int forward(const char *path, int flags, mode_t mode)
{
    if ((flags & __O_TMPFILE) == __O_TMPFILE) {
        atomic_fetch_add(&refused, 1);
        errno = EOPNOTSUPP; /* what the kernel returns for such a file system */
        return -1;
    }
    union { /* ISO C has no cast from void * to a function pointer */
        void *p;
        int (*f)(const char *, int, ...);
    } real = {.p = dlsym(RTLD_NEXT, "open")};
    if (!real.p) {
        errno = ENOSYS;
        return -1;
    }
    return real.f(path, flags, mode);
}

/* With _FILE_OFFSET_BITS=64 <fcntl.h> names this open64, as it names the
 * library's calls: either way they come here. */
int open(const char *path, int flags, ...);

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return forward(path, flags, mode);
}

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfx-fallback-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    atomic_store(&refused, 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* The names in dir, sorted, comma-separated. */
static const char *names_in(char *buf, size_t len)
{
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i]->d_name, ".") != 0 && strcmp(list[i]->d_name, "..") != 0)
            used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
                                     used ? "," : "", list[i]->d_name);
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    return buf;
}

Test(outfile_fallback, a_reservation_is_a_named_file_renamed_at_commit, .init = setup,
     .fini = teardown)
{
    char tmp[128], path[128], names[256];
    snprintf(tmp, sizeof tmp, "%s/s.json.tmp", dir);
    snprintf(path, sizeof path, "%s/s.json", dir);
    FILE *stale = fopen(tmp, "w"); /* an earlier run's, killed */
    cr_assert_not_null(stale);
    fputs("stale", stale);
    fclose(stale);
    struct rfx_reserve r;
    cr_assert_eq(rfx_outfile_reserve(&r, dir, "s.json", 1 << 20), 0);
    cr_expect_gt(atomic_load(&refused), 0, "the O_TMPFILE open was not refused");
    cr_expect(r.named, "no O_TMPFILE: the named fallback");
    cr_expect_str_eq(names_in(names, sizeof names), "s.json.tmp");
    struct stat st;
    cr_assert_eq(stat(tmp, &st), 0);
    cr_expect(st.st_size == 1 << 20 && st.st_blocks * 512 >= 1 << 20,
              "the stale file replaced by 1 MiB allocated: size %lld, %lld blocks",
              (long long)st.st_size, (long long)st.st_blocks);
    struct rfx_outfile o;
    cr_assert_eq(rfx_outfile_open_reserved(&o, &r, dir, "s.json"), 0);
    cr_expect(o.reserved);
    cr_expect(!o.anonymous);
    fprintf(o.f, "{\"a\": 1}\n");
    cr_assert_eq(rfx_outfile_commit(&o, 0), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_size, 9, "cut to what was written: %lld bytes", (long long)st.st_size);
    cr_expect_str_eq(names_in(names, sizeof names), "s.json");
    /* One not used is removed, name and all. */
    cr_assert_eq(rfx_outfile_reserve(&r, dir, "v.json", 4096), 0);
    cr_expect_str_eq(names_in(names, sizeof names), "s.json,v.json.tmp");
    rfx_outfile_unreserve(&r, dir, "v.json");
    cr_expect_eq(r.fd, -1);
    cr_expect_str_eq(names_in(names, sizeof names), "s.json");
}

/* What the fallback cannot do: a process killed while it holds the
 * reservation leaves the named file. The next run's reservation of the same
 * name removes it (docs/telemetry.md). */
Test(outfile_fallback, a_killed_holder_leaves_the_file_for_the_next_run_to_remove,
     .init = setup, .fini = teardown)
{
    char names[256];
    pid_t child = fork();
    if (child == 0) {
        struct rfx_reserve k;
        if (rfx_outfile_reserve(&k, dir, "w.json", 1 << 20) == 0 && k.named)
            raise(SIGKILL);
        _exit(1);
    }
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the child reserved a named file, then was killed");
    cr_expect_str_eq(names_in(names, sizeof names), "w.json.tmp");
    struct rfx_reserve r;
    cr_assert_eq(rfx_outfile_reserve(&r, dir, "w.json", 4096), 0);
    struct rfx_outfile o;
    cr_assert_eq(rfx_outfile_open_reserved(&o, &r, dir, "w.json"), 0);
    fputs("{}\n", o.f);
    cr_assert_eq(rfx_outfile_commit(&o, 0), 0);
    cr_expect_str_eq(names_in(names, sizeof names), "w.json");
}

Test(outfile_fallback, a_snapshot_is_written_named_synced_and_renamed, .init = setup,
     .fini = teardown)
{
    char path[128], msg[256], names[256];
    snprintf(path, sizeof path, "%s/cache.rfxc", dir);
    struct rfx_cache_entry a[300], b[40];
    for (size_t i = 0; i < 300; i++)
        a[i] = (struct rfx_cache_entry){.key = i + 1, .action = (uint32_t)(i % 5), .category = 1,
                                        .created_ns = (int64_t)i};
    for (size_t i = 0; i < 40; i++)
        b[i] = (struct rfx_cache_entry){.key = 7000 + i, .action = 2, .category = 2,
                                        .created_ns = (int64_t)i};
    for (int round = 0; round < 2; round++) { /* the second replaces the first */
        cr_assert_eq(rfx_persist_write(path, 3, a, 300 - (size_t)round * 100, b, 40, msg,
                                       sizeof msg),
                     0, "%s", msg);
        cr_expect_str_eq(names_in(names, sizeof names), "cache.rfxc", "no temporary file left");
    }
    cr_expect_geq(atomic_load(&refused), 2, "each write tried O_TMPFILE first");
    struct rfx_cache_entry *x, *y;
    size_t nx, ny;
    cr_assert_eq(rfx_persist_read(path, 3, &x, &nx, &y, &ny, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(nx, 200);
    cr_expect_eq(ny, 40);
    cr_expect_eq(memcmp(x, a, 200 * sizeof *a), 0);
    cr_expect_eq(memcmp(y, b, 40 * sizeof *b), 0);
    free(x);
    free(y);
}
