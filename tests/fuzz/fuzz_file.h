/* For harnesses of readers that take a file path: the input as a file. */
#ifndef REFLEX_FUZZ_FILE_H
#define REFLEX_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Write size bytes to a fresh memfd; path receives its /proc/self/fd name.
 * Returns the fd (close it after reading); aborts on failure. */
static inline int fuzz_file(const uint8_t *data, size_t size, char path[64])
{
    int fd = memfd_create("fuzz.input", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* The input without its first byte, in memory the harness may change;
 * *fix receives the first byte's low bit (the harnesses' "make the
 * checksums match" switch). NULL for an empty input. Free it. */
static inline uint8_t *fuzz_body(const uint8_t *data, size_t *size, int *fix)
{
    if (*size == 0)
        return NULL;
    *fix = data[0] & 1;
    (*size)--;
    uint8_t *file = malloc(*size ? *size : 1);
    if (!file)
        abort();
    memcpy(file, data + 1, *size);
    return file;
}

#endif
