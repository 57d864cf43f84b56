/*
 * Reading run records (record.rfx). Every size is checked against what the
 * header allows before anything is read or allocated, and every record's
 * checksum before it is decoded, so a corrupt or cut file gives an error
 * naming its byte offset, never a crash or a huge allocation.
 */
#include "record_format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- the header ---- */

struct cursor {
    unsigned char *w;
    const unsigned char *r;
};

static void put(struct cursor *c, const void *v, size_t n)
{
    memcpy(c->w, v, n);
    c->w += n;
}

static void get(struct cursor *c, void *v, size_t n)
{
    memcpy(v, c->r, n);
    c->r += n;
}

void rfx_record_header_encode(const struct rfx_record_header *h,
                              unsigned char out[RFX_RECORD_HEADER_BYTES])
{
    struct cursor c = {.w = out};
    memset(out, 0, RFX_RECORD_HEADER_BYTES);
    put(&c, &h->payload_bytes, 4);
    put(&c, &h->frame_hz, 8);
    put(&c, &h->seed, 8);
    put(&c, &h->start_ns, 8);
    put(&c, &h->n_stages, 4);
    put(&c, h->stages, sizeof h->stages);
    put(&c, h->source_kind, RFX_NAME_MAX);
    put(&c, h->sink_kind, RFX_NAME_MAX);
    put(&c, &h->cache_l1_slots, 4);
    put(&c, &h->cache_l2_slots, 4);
    put(&c, &h->miss_queue, 4);
    for (int i = 0; i < 5; i++) {
        uint32_t a = h->level_actions[i];
        put(&c, &a, 4);
    }
    put(&c, h->fail_stage, RFX_NAME_MAX);
    put(&c, &h->fail_prob, 8);
}

static bool name_ok(const char *s)
{
    return memchr(s, 0, RFX_NAME_MAX) != NULL;
}

int rfx_record_header_decode(const unsigned char in[RFX_RECORD_HEADER_BYTES],
                             struct rfx_record_header *h, char *msg, size_t msglen)
{
    struct cursor c = {.r = in};
    memset(h, 0, sizeof *h);
    h->version = RFX_RECORD_VERSION;
    get(&c, &h->payload_bytes, 4);
    get(&c, &h->frame_hz, 8);
    get(&c, &h->seed, 8);
    get(&c, &h->start_ns, 8);
    get(&c, &h->n_stages, 4);
    get(&c, h->stages, sizeof h->stages);
    get(&c, h->source_kind, RFX_NAME_MAX);
    get(&c, h->sink_kind, RFX_NAME_MAX);
    get(&c, &h->cache_l1_slots, 4);
    get(&c, &h->cache_l2_slots, 4);
    get(&c, &h->miss_queue, 4);
    for (int i = 0; i < 5; i++) {
        uint32_t a;
        get(&c, &a, 4);
        h->level_actions[i] = a;
    }
    get(&c, h->fail_stage, RFX_NAME_MAX);
    get(&c, &h->fail_prob, 8);
    const char *bad = NULL;
    if (h->payload_bytes > RFX_RECORD_MAX_PAYLOAD)
        bad = "payload_bytes";
    else if (h->n_stages < 2 || h->n_stages > RFX_MAX_STAGES)
        bad = "n_stages";
    else if (!name_ok(h->source_kind) || !name_ok(h->sink_kind) || !name_ok(h->fail_stage))
        bad = "a kind or stage name (not terminated)";
    else if (h->cache_l1_slots > RFX_RECORD_MAX_ENTRIES ||
             h->cache_l2_slots > RFX_RECORD_MAX_ENTRIES)
        bad = "cache sizes";
    else if (!(h->fail_prob >= 0 && h->fail_prob <= 1))
        bad = "fail_prob";
    else if (!(h->frame_hz >= 0 && h->frame_hz < 1e9))
        bad = "frame_hz";
    for (uint32_t i = 0; !bad && i < h->n_stages; i++)
        if (!name_ok(h->stages[i]) || !h->stages[i][0])
            bad = "a stage name";
    if (bad) {
        snprintf(msg, msglen, "header: %s out of range", bad);
        return -EINVAL;
    }
    return 0;
}

/* ---- the reader ---- */

struct rfx_record_reader {
    FILE *f;
    bool owns;
    uint64_t offset; /* of the next record */
    uint32_t payload_bytes;
    bool ended;
    bool accept_cut, cut; /* rfx_record_accept_cut; the file was cut at `offset` */
    unsigned char *buf;
    size_t cap;
};

static int fail(char *msg, size_t msglen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *msg, size_t msglen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (msg && msglen)
        vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Read exactly n bytes: 1, 0 at a clean EOF before any byte, -1 cut short,
 * -2 read error. */
static int read_exact(FILE *f, void *p, size_t n)
{
    size_t got = fread(p, 1, n, f);
    if (got == n)
        return 1;
    if (ferror(f))
        return -2;
    return got == 0 ? 0 : -1;
}

static int open_stream(FILE *f, bool owns, struct rfx_record_reader **out,
                       struct rfx_record_header *h, char *msg, size_t msglen)
{
    unsigned char head[16], body[RFX_RECORD_HEADER_BYTES];
    int rc = read_exact(f, head, sizeof head);
    if (rc == -2)
        return fail(msg, msglen, -EIO, "read error: %s", strerror(errno));
    if (rc <= 0 || memcmp(head, RFX_RECORD_MAGIC, 8) != 0)
        return fail(msg, msglen, -EINVAL, "not a reflex record (its first 8 bytes are not %s)",
                    "\"RFXREC\\r\\n\"");
    uint32_t version, len;
    memcpy(&version, head + 8, 4);
    memcpy(&len, head + 12, 4);
    if (version != RFX_RECORD_VERSION)
        return fail(msg, msglen, -EINVAL, "record version %" PRIu32 " (this reflex reads %u)",
                    version, RFX_RECORD_VERSION);
    if (len != RFX_RECORD_HEADER_BYTES)
        return fail(msg, msglen, -EINVAL, "byte 12: header length %" PRIu32 ", expected %u", len,
                    RFX_RECORD_HEADER_BYTES);
    uint32_t crc;
    rc = read_exact(f, body, sizeof body);
    if (rc == 1)
        rc = read_exact(f, &crc, 4);
    if (rc == -2)
        return fail(msg, msglen, -EIO, "read error: %s", strerror(errno));
    if (rc != 1)
        return fail(msg, msglen, -EINVAL, "truncated in the header (%u bytes needed)",
                    16 + RFX_RECORD_HEADER_BYTES + 4);
    if (crc != (uint32_t)crc32(0, body, sizeof body))
        return fail(msg, msglen, -EINVAL, "byte 16: the header's checksum does not match");
    struct rfx_record_header hh;
    char why[200];
    if (rfx_record_header_decode(body, &hh, why, sizeof why) != 0)
        return fail(msg, msglen, -EINVAL, "byte 16: %s", why);
    struct rfx_record_reader *r = calloc(1, sizeof *r);
    if (!r)
        return fail(msg, msglen, -ENOMEM, "out of memory");
    r->f = f;
    r->owns = owns;
    r->offset = 16 + RFX_RECORD_HEADER_BYTES + 4;
    r->payload_bytes = hh.payload_bytes;
    if (h)
        *h = hh;
    *out = r;
    return 0;
}

int rfx_record_open(const char *path, struct rfx_record_reader **out, struct rfx_record_header *h,
                    char *msg, size_t msglen)
{
    if (!path || !out)
        return fail(msg, msglen, -EINVAL, "no file");
    FILE *f = fopen(path, "rbe");
    if (!f)
        return fail(msg, msglen, -errno, "%s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return fail(msg, msglen, -EISDIR, "%s", strerror(EISDIR));
    }
    int rc = open_stream(f, true, out, h, msg, msglen);
    if (rc)
        fclose(f);
    return rc;
}

static int grow(struct rfx_record_reader *r, size_t n)
{
    if (n <= r->cap)
        return 0;
    unsigned char *b = realloc(r->buf, n);
    if (!b)
        return -ENOMEM;
    r->buf = b;
    r->cap = n;
    return 0;
}

static const char *kind_name(uint32_t k)
{
    return k == RFX_RECORD_FRAME         ? "a frame record"
           : k == RFX_RECORD_PUBLICATION ? "a publication record"
                                         : "the end record";
}

int rfx_record_next(struct rfx_record_reader *r, struct rfx_record_item *it, char *msg,
                    size_t msglen)
{
    if (!r || !it)
        return fail(msg, msglen, -EINVAL, "no reader");
    uint64_t at = r->offset;
    uint32_t head[2];
    int rc = read_exact(r->f, head, sizeof head);
    if (rc == -2)
        return fail(msg, msglen, -EIO, "byte %" PRIu64 ": read error: %s", at, strerror(errno));
    if (r->ended) {
        if (rc == 0)
            return 0;
        return fail(msg, msglen, -EINVAL, "byte %" PRIu64 ": data after the end record", at);
    }
    if (rc <= 0 && r->accept_cut) {
        r->cut = true;
        return 0;
    }
    if (rc == 0)
        return fail(msg, msglen, -EINVAL,
                    "byte %" PRIu64 ": the record ends without its end record (the run did not "
                    "stop cleanly, or the file was cut short)",
                    at);
    if (rc < 0)
        return fail(msg, msglen, -EINVAL, "byte %" PRIu64 ": truncated in a record's head", at);
    uint32_t kind = head[0], len = head[1];
    /* The body's length must be what its kind allows, before anything is
     * allocated for it. */
    uint64_t max = 0;
    if (kind == RFX_RECORD_FRAME)
        max = RFX_RECORD_FRAME_FIXED + (uint64_t)r->payload_bytes;
    else if (kind == RFX_RECORD_PUBLICATION)
        max = RFX_RECORD_PUB_FIXED + 2ull * RFX_RECORD_MAX_ENTRIES * 32;
    else if (kind == RFX_RECORD_END)
        max = RFX_RECORD_END_BYTES;
    else
        return fail(msg, msglen, -EINVAL, "byte %" PRIu64 ": unknown record kind %" PRIu32, at,
                    kind);
    bool exact = kind != RFX_RECORD_PUBLICATION;
    if ((exact && len != max) || len > max || (!exact && len < RFX_RECORD_PUB_FIXED))
        return fail(msg, msglen, -EINVAL,
                    "byte %" PRIu64 ": %s of %" PRIu32 " bytes (expected %s%" PRIu64 ")", at,
                    kind_name(kind), len, exact ? "" : "at most ", max);
    if (grow(r, (size_t)len + 4) != 0)
        return fail(msg, msglen, -ENOMEM, "byte %" PRIu64 ": out of memory", at);
    rc = read_exact(r->f, r->buf, (size_t)len + 4);
    if (rc == -2)
        return fail(msg, msglen, -EIO, "byte %" PRIu64 ": read error: %s", at, strerror(errno));
    if (rc != 1 && r->accept_cut) {
        r->cut = true;
        return 0;
    }
    if (rc != 1)
        return fail(msg, msglen, -EINVAL,
                    "byte %" PRIu64 ": truncated in %s (%" PRIu32 " bytes needed)", at,
                    kind_name(kind), len + 12);
    uint32_t crc;
    memcpy(&crc, r->buf + len, 4);
    uLong want = crc32(0, (const Bytef *)head, sizeof head);
    want = crc32(want, r->buf, len);
    if (crc != (uint32_t)want)
        return fail(msg, msglen, -EINVAL, "byte %" PRIu64 ": %s's checksum does not match", at,
                    kind_name(kind));
    memset(it, 0, sizeof *it);
    it->kind = (enum rfx_record_kind)kind;
    it->offset = at;
    if (kind == RFX_RECORD_FRAME) {
        struct rfx_record_frame_disk d;
        memcpy(&d, r->buf, sizeof d);
        if (d.payload_size != r->payload_bytes)
            return fail(msg, msglen, -EINVAL,
                        "byte %" PRIu64 ": frame %" PRIu64 " has a payload of %" PRIu32
                        " bytes (the header says %" PRIu32 ")",
                        at, d.seq, d.payload_size, r->payload_bytes);
        struct rfx_record_frame *f = &it->u.frame;
        f->seq = d.seq;
        f->scheduled_ns = d.scheduled_ns;
        f->context_key = d.context_key;
        f->pattern_key = d.pattern_key;
        f->cache_generation = d.cache_generation;
        f->action = d.action;
        f->payload_size = d.payload_size;
        f->drop_reason = d.drop_reason;
        f->reached = d.reached;
        f->flags = d.flags;
        f->context_class = d.context_class;
        f->level = d.level;
        f->cache_result = d.cache_result;
        f->payload = r->buf + RFX_RECORD_FRAME_FIXED;
    } else if (kind == RFX_RECORD_PUBLICATION) {
        struct rfx_record_publication *p = &it->u.pub;
        memcpy(&p->generation, r->buf, 8);
        memcpy(&p->n1, r->buf + 8, 4);
        memcpy(&p->n2, r->buf + 12, 4);
        if (p->n1 > RFX_RECORD_MAX_ENTRIES || p->n2 > RFX_RECORD_MAX_ENTRIES ||
            len != RFX_RECORD_PUB_FIXED + ((uint64_t)p->n1 + p->n2) * 32)
            return fail(msg, msglen, -EINVAL,
                        "byte %" PRIu64 ": a publication of %" PRIu32 " + %" PRIu32
                        " entries in %" PRIu32 " bytes",
                        at, p->n1, p->n2, len);
        if (p->generation == 0)
            return fail(msg, msglen, -EINVAL, "byte %" PRIu64 ": a publication of generation 0",
                        at);
        p->l1 = (const struct rfx_cache_entry *)(void *)(r->buf + RFX_RECORD_PUB_FIXED);
        p->l2 = p->l1 + p->n1;
        for (uint64_t i = 0; i < (uint64_t)p->n1 + p->n2; i++)
            if (p->l1[i].key == 0)
                return fail(msg, msglen, -EINVAL,
                            "byte %" PRIu64 ": publication %" PRIu64 " has an entry with key 0", at,
                            p->generation);
    } else {
        struct rfx_record_end *e = &it->u.end;
        memcpy(&e->frames, r->buf, 8);
        memcpy(&e->frames_lost, r->buf + 8, 8);
        memcpy(&e->publications, r->buf + 16, 8);
        memcpy(&e->end_ns, r->buf + 24, 8);
        r->ended = true;
    }
    r->offset = at + 12 + len;
    return 1;
}

void rfx_record_accept_cut(struct rfx_record_reader *r)
{
    if (r)
        r->accept_cut = true;
}

bool rfx_record_was_cut(const struct rfx_record_reader *r, uint64_t *at, uint64_t *ignored)
{
    if (!r || !r->cut)
        return false;
    struct stat st;
    uint64_t size = fstat(fileno(r->f), &st) == 0 ? (uint64_t)st.st_size : r->offset;
    if (at)
        *at = r->offset;
    if (ignored)
        *ignored = size > r->offset ? size - r->offset : 0;
    return true;
}

void rfx_record_close(struct rfx_record_reader *r)
{
    if (!r)
        return;
    if (r->owns && r->f)
        fclose(r->f);
    free(r->buf);
    free(r);
}

int rfx_record_parse(const void *data, size_t len, struct rfx_record_header *h, rfx_record_fn fn,
                     void *arg, char *msg, size_t msglen)
{
    if (!data || len == 0)
        return fail(msg, msglen, -EINVAL, "not a reflex record (empty)");
    FILE *f = fmemopen((void *)data, len, "rb");
    if (!f)
        return fail(msg, msglen, -errno, "%s", strerror(errno));
    struct rfx_record_reader *r = NULL;
    int rc = open_stream(f, true, &r, h, msg, msglen);
    if (rc) {
        fclose(f);
        return rc;
    }
    struct rfx_record_item it;
    while ((rc = rfx_record_next(r, &it, msg, msglen)) == 1)
        if (fn && (rc = fn(arg, &it)) != 0)
            break;
    rfx_record_close(r);
    return rc;
}
