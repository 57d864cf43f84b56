/* Cache snapshots on disk; see persist.h. */
#include "persist.h"
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
 * Debian packages no C library for it; check value: "123456789" ->
 * 0xE3069283 (RFC 3720, tested in tests/unit/test_persist.c). */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t rfx_crc32c(uint32_t crc, const void *buf, size_t len)
{
    /* Once per process: two engines persisting at once would otherwise
     * both write the table (a data race, if of equal values). */
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = buf;
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

struct header {
    uint32_t magic, version;
    uint64_t length; /* payload bytes */
    uint32_t crc;    /* CRC-32C of the payload */
    uint32_t key_schema; /* rfx_stage_ops.key_schema of the writing pipeline */
};
_Static_assert(sizeof(struct header) == 24, "the header is 24 bytes");

struct record {
    uint64_t key;
    uint32_t action, category;
    int64_t created_ns;
};
_Static_assert(sizeof(struct record) == 24, "a record is 24 bytes");

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int rfx_persist_write(const char *path, uint32_t key_schema, const struct rfx_cache_entry *l1,
                      size_t n1, const struct rfx_cache_entry *l2, size_t n2, char *msg,
                      size_t msglen)
{
    size_t len = 16 + (n1 + n2) * sizeof(struct record);
    unsigned char *buf = malloc(len);
    if (!buf) {
        snprintf(msg, msglen, "%s: out of memory", path);
        return -ENOMEM;
    }
    uint64_t counts[2] = {n1, n2};
    memcpy(buf, counts, 16);
    struct record *r = (struct record *)(void *)(buf + 16);
    for (size_t i = 0; i < n1 + n2; i++) {
        const struct rfx_cache_entry *e = i < n1 ? &l1[i] : &l2[i - n1];
        r[i] = (struct record){e->key, e->action, e->category, e->created_ns};
    }
    struct header h = {RFX_PERSIST_MAGIC, RFX_PERSIST_VERSION, len, rfx_crc32c(0, buf, len),
                       key_schema};
    /* Written with no name (a kill leaves nothing), named .tmp.PID once
     * whole and synced, then renamed over the path. */
    char tmp[4200], dir[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    snprintf(dir, sizeof dir, "%s", path);
    const char *in = dirname(dir); /* dir, cut; or "." */
    bool named;
    int rc = 0;
    int fd = rfx_tmpfile_open(in, tmp, &named);
    if (fd < 0) {
        snprintf(msg, msglen, "%s: %s", named ? tmp : in, strerror(-fd));
        free(buf);
        return fd;
    }
    if ((rc = write_all(fd, &h, sizeof h)) == 0 && (rc = write_all(fd, buf, len)) == 0 &&
        fsync(fd) != 0)
        rc = -errno;
    free(buf);
    bool linked = named;
    if (rc == 0 && !named)
        linked = (rc = rfx_tmpfile_link(fd, tmp)) == 0;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        snprintf(msg, msglen, "%s: %s", path, strerror(-rc));
        if (linked)
            unlink(tmp);
        return rc;
    }
    /* The rename is durable once the directory is. */
    int dfd = open(in, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            rc = -errno;
        close(dfd);
    }
    if (rc)
        snprintf(msg, msglen, "%s: fsync of its directory: %s", path, strerror(-rc));
    return rc;
}

int rfx_persist_read(const char *path, uint32_t key_schema, struct rfx_cache_entry **l1, size_t *n1,
                     struct rfx_cache_entry **l2, size_t *n2, char *msg, size_t msglen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int rc = -errno;
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        return rc;
    }
    struct header h;
    struct stat st;
    int rc = 0;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || fread(&h, sizeof h, 1, f) != 1) {
        snprintf(msg, msglen, "%s: truncated (no complete header)", path);
        rc = -EBADMSG;
    } else if (h.magic != RFX_PERSIST_MAGIC) {
        snprintf(msg, msglen, "%s: not a reflex cache snapshot (magic 0x%08x)", path, h.magic);
        rc = -EBADMSG;
    } else if (h.version != RFX_PERSIST_VERSION) {
        snprintf(msg, msglen, "%s: version %u, this reflex reads version %u", path, h.version,
                 RFX_PERSIST_VERSION);
        rc = -ENOTSUP;
    } else if (h.length < 16 || (uint64_t)st.st_size != sizeof h + h.length ||
               (h.length - 16) % sizeof(struct record) != 0) {
        snprintf(msg, msglen, "%s: length %llu does not match the file (%lld bytes)", path,
                 (unsigned long long)h.length, (long long)st.st_size);
        rc = -EBADMSG;
    } else if (!(buf = malloc(h.length))) {
        snprintf(msg, msglen, "%s: out of memory", path);
        rc = -ENOMEM;
    } else if (fread(buf, 1, h.length, f) != h.length) {
        snprintf(msg, msglen, "%s: truncated payload", path);
        rc = -EBADMSG;
    } else if (rfx_crc32c(0, buf, h.length) != h.crc) {
        snprintf(msg, msglen, "%s: checksum mismatch (CRC-32C 0x%08x, header says 0x%08x)", path,
                 rfx_crc32c(0, buf, h.length), h.crc);
        rc = -EBADMSG;
    } else if (h.key_schema != key_schema) {
        snprintf(msg, msglen,
                 "%s: made for keys of schema %u, this pipeline's are schema %u (its pattern "
                 "stage's key_schema): not loaded",
                 path, h.key_schema, key_schema);
        rc = -ESTALE;
    }
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    uint64_t counts[2];
    memcpy(counts, buf, 16);
    size_t total = (h.length - 16) / sizeof(struct record);
    if (counts[0] > total || counts[1] != total - counts[0]) { /* no sum: it could wrap */
        snprintf(msg, msglen, "%s: entry counts %llu + %llu do not match %zu records", path,
                 (unsigned long long)counts[0], (unsigned long long)counts[1], total);
        free(buf);
        return -EBADMSG;
    }
    struct rfx_cache_entry *a = malloc((counts[0] ? counts[0] : 1) * sizeof *a);
    struct rfx_cache_entry *b = malloc((counts[1] ? counts[1] : 1) * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        free(buf);
        snprintf(msg, msglen, "%s: out of memory", path);
        return -ENOMEM;
    }
    const struct record *r = (const struct record *)(const void *)(buf + 16);
    for (size_t i = 0; i < total; i++) {
        struct rfx_cache_entry e = {.key = r[i].key,
                                    .action = r[i].action,
                                    .category = r[i].category,
                                    .created_ns = r[i].created_ns};
        if (e.key == 0) {
            snprintf(msg, msglen, "%s: record %zu has key 0", path, i);
            free(a);
            free(b);
            free(buf);
            return -EBADMSG;
        }
        if (i < counts[0])
            a[i] = e;
        else
            b[i - counts[0]] = e;
    }
    free(buf);
    *l1 = a;
    *n1 = counts[0];
    *l2 = b;
    *n2 = counts[1];
    return 0;
}
