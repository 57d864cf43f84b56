/*
 * Fuzz the config loader (src/config.c on libinih): the input up to its
 * first NUL byte is the INI file; after it, NUL-separated strings are
 * --set overrides (at most 8). Besides not crashing, it checks what a user
 * is promised: a config that loads passes rfx_engine_config_check, and
 * every rejected one comes with a message that names where the fault is
 * (the file, or the --set that brought it).
 */
#include "builtin.h"

#include <reflex/config.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_SETS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    int fd = memfd_create("fuzz.ini", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < file_len;) {
        ssize_t k = write(fd, data + off, file_len - off);
        if (k <= 0)
            abort();
        off += (size_t)k;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    /* the overrides, each NUL-terminated in a copy of the rest */
    size_t rest = nul ? size - file_len - 1 : 0;
    char *sets_buf = malloc(rest + 1);
    if (!sets_buf)
        abort();
    if (rest)
        memcpy(sets_buf, nul + 1, rest);
    sets_buf[rest] = 0;
    const char *sets[MAX_SETS];
    int n_sets = 0;
    for (size_t i = 0; nul && i <= rest && n_sets < MAX_SETS;) {
        sets[n_sets++] = sets_buf + i;
        i += strlen(sets_buf + i) + 1;
    }

    struct rfx_engine_config cfg;
    char msg[1024] = "";
    int rc = rfx_config_load(path, sets, n_sets, rfx_builtin_stages, 5, &cfg, msg, sizeof msg);
    if (rc == 0) {
        char why[1024];
        if (rfx_engine_config_check(&cfg, why, sizeof why) != 0) {
            fprintf(stderr, "fuzz_config: loaded, yet the check says: %s\n", why);
            abort();
        }
    } else if (rc != -EINVAL || !msg[0] ||
               (strncmp(msg, path, strlen(path)) != 0 && strncmp(msg, "--set ", 6) != 0)) {
        fprintf(stderr, "fuzz_config: rejected (%d) without naming where: '%s'\n", rc, msg);
        abort();
    }
    free(sets_buf);
    close(fd);
    return 0;
}
