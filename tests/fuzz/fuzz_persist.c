/*
 * Fuzz the cache snapshot reader (src/persist.c), then publish what it
 * accepts into an action cache, as a warm start does. A CRC-32C guards the
 * payload, which a fuzzer would rarely get right: when the input's first
 * byte is odd, the harness writes the rest with its length and checksum
 * fields made to match, so the records behind them are explored too.
 */
#include "fuzz_file.h"
#include "persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fix;
    uint8_t *file = fuzz_body(data, &size, &fix);
    if (!file)
        return 0;
    if (fix && size >= 24) {
        uint64_t length = size - 24;
        uint32_t crc = rfx_crc32c(0, file + 24, length);
        memcpy(file + 8, &length, 8);
        memcpy(file + 16, &crc, 4);
    }
    /* Read as a pipeline of the file's own key schema, so that the records
     * behind the header are reached, unless the first byte's bit 1 asks for
     * schema 0 (a mismatch is refused before the records). */
    uint32_t schema = 0;
    if (size >= 24 && !(data[0] & 2))
        memcpy(&schema, file + 20, 4);
    char path[64];
    int fd = fuzz_file(file, size, path);
    free(file);

    struct rfx_cache_entry *l1 = NULL, *l2 = NULL;
    size_t n1 = 0, n2 = 0;
    char msg[512] = "";
    int rc = rfx_persist_read(path, schema, &l1, &n1, &l2, &n2, msg, sizeof msg);
    if (rc == 0) {
        struct rfx_action_cache_config cfg;
        rfx_action_cache_config_default(&cfg);
        struct rfx_action_cache *c;
        if (rfx_action_cache_create(&cfg, &c) != 0)
            abort();
        int64_t g = rfx_action_cache_publish(c, l1, n1, l2, n2);
        if (g <= 0 && g != -ENOSPC && g != -ENOMEM) { /* the reader refuses key 0 */
            fprintf(stderr, "fuzz_persist: publish returned %lld\n", (long long)g);
            abort();
        }
        rfx_action_cache_destroy(c);
        free(l1);
        free(l2);
    } else if (strncmp(msg, path, strlen(path)) != 0) {
        fprintf(stderr, "fuzz_persist: rejected (%d) without naming the file: '%s'\n", rc, msg);
        abort();
    }
    close(fd);
    return 0;
}
