/* Run records: the recorder's file read back field by field, the ring that
 * counts what it had no room for, publications in generation order (and a
 * replay's chosen generation), and every kind of bad file refused with its
 * byte offset. */
#include "action_cache_impl.h"
#include "record_format.h"
#include "recorder.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char path[64];

static void setup(void)
{
    snprintf(path, sizeof path, "/tmp/rfx-record-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
}

static void teardown(void)
{
    unlink(path);
}

static struct rfx_record_header header(uint32_t payload)
{
    struct rfx_record_header h = {
        .version = RFX_RECORD_VERSION,
        .payload_bytes = payload,
        .frame_hz = 60,
        .seed = 42,
        .start_ns = 123456789,
        .n_stages = 5,
        .cache_l1_slots = 64,
        .cache_l2_slots = 32,
        .miss_queue = 128,
        .level_actions = {0, 1, 3, 7, 31},
        .fail_prob = 0.25,
    };
    const char *st[5] = {"capture", "pattern", "decide", "execute", "telemetry"};
    for (int i = 0; i < 5; i++)
        snprintf(h.stages[i], RFX_NAME_MAX, "%s", st[i]);
    snprintf(h.source_kind, RFX_NAME_MAX, "demo");
    snprintf(h.sink_kind, RFX_NAME_MAX, "udp");
    snprintf(h.fail_stage, RFX_NAME_MAX, "pattern");
    return h;
}

/* n frames with payloads of `payload` bytes, each byte seq + offset. */
static struct rfx_frame *frames(size_t n, uint32_t payload, uint64_t first)
{
    struct rfx_frame *f = calloc(n, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = first + i;
        f[i] = (struct rfx_frame){
            .seq = seq,
            .scheduled_ns = (int64_t)(1000 + seq * 16666667),
            .context_key = seq * 7 + 1,
            .pattern_key = seq * 11 + 2,
            .cache_generation = seq / 10,
            .action = (uint32_t)(seq % 3),
            .payload_size = payload,
            .drop_reason = (uint8_t)(seq % 5 == 4 ? RFX_DROP_STAGE : RFX_DROP_NONE),
            .reached = (uint8_t)(seq % 5 == 4 ? 2 : 0),
            .flags = (uint8_t)(seq % 7 == 0 ? RFX_FRAME_FALLBACK_ONLY : 0),
            .context_class = (uint8_t)(seq % 3),
            .level = (uint8_t)(seq % 5),
            .cache_result = (uint8_t)(seq % 4),
            .payload = malloc(payload ? payload : 1),
        };
        for (uint32_t b = 0; b < payload; b++)
            f[i].payload[b] = (unsigned char)(seq + b);
    }
    return f;
}

static void free_frames(struct rfx_frame *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].payload);
    free(f);
}

static void push(struct rfx_recorder *r, struct rfx_frame *f, size_t n)
{
    struct rfx_frame *p[64];
    for (size_t i = 0; i < n; i += 64) {
        size_t k = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < k; j++)
            p[j] = &f[i + j];
        rfx_recorder_frames(r, p, k);
    }
}

static unsigned char *slurp(size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *d = malloc(*len);
    cr_assert_eq(fread(d, 1, *len, f), *len);
    fclose(f);
    return d;
}

TestSuite(record, .init = setup, .fini = teardown);

Test(record, round_trip_every_field)
{
    struct rfx_record_header h = header(48);
    struct rfx_recorder *r;
    char msg[256];
    cr_assert_eq(rfx_recorder_create(path, &h, 4096, &r, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(rfx_recorder_start(r, msg, sizeof msg), 0);
    /* two publications through the cache's hook, between the frames */
    struct rfx_action_cache_config cc;
    rfx_action_cache_config_default(&cc);
    struct rfx_action_cache *c;
    cr_assert_eq(rfx_action_cache_create(&cc, &c), 0);
    rfx_action_cache_observe(c, rfx_recorder_publication, r);
    struct rfx_frame *f = frames(300, 48, 0);
    push(r, f, 150);
    struct rfx_cache_entry l1[3] = {{.key = 5, .action = 1, .category = 2, .created_ns = 9},
                                    {.key = 6, .action = 2},
                                    {.key = 5, .action = 0, .created_ns = 10}}; /* last wins */
    struct rfx_cache_entry l2[1] = {{.key = 77, .action = 2, .generation = 1}};
    cr_assert_eq(rfx_action_cache_publish(c, l1, 3, l2, 1), 1);
    rfx_action_cache_next_generation(c, 9); /* as a replay does */
    cr_assert_eq(rfx_action_cache_publish(c, l1, 1, NULL, 0), 9);
    push(r, f + 150, 150);
    cr_assert_eq(rfx_recorder_finish(r, 999, msg, sizeof msg), 0, "%s", msg);
    struct rfx_recorder_stats st;
    rfx_recorder_stats(r, &st);
    cr_expect_eq(st.frames, 300);
    cr_expect_eq(st.frames_lost, 0);
    cr_expect_eq(st.publications, 2);

    struct rfx_record_reader *rd;
    struct rfx_record_header g;
    cr_assert_eq(rfx_record_open(path, &rd, &g, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(g.payload_bytes, 48);
    cr_expect_eq(g.seed, 42);
    cr_expect_eq(g.start_ns, 123456789);
    cr_expect_eq(g.n_stages, 5);
    cr_expect_str_eq(g.stages[2], "decide");
    cr_expect_str_eq(g.source_kind, "demo");
    cr_expect_str_eq(g.sink_kind, "udp");
    cr_expect_str_eq(g.fail_stage, "pattern");
    cr_expect_eq(g.fail_prob, 0.25);
    cr_expect_eq(g.level_actions[4], 31);
    cr_expect_eq(g.cache_l2_slots, 32);
    struct rfx_record_item it;
    uint64_t seen = 0, pubs = 0;
    int rc;
    while ((rc = rfx_record_next(rd, &it, msg, sizeof msg)) == 1) {
        if (it.kind == RFX_RECORD_FRAME) {
            const struct rfx_record_frame *x = &it.u.frame;
            const struct rfx_frame *y = &f[seen];
            cr_assert_eq(x->seq, seen);
            cr_expect_eq(x->scheduled_ns, y->scheduled_ns);
            cr_expect_eq(x->context_key, y->context_key);
            cr_expect_eq(x->pattern_key, y->pattern_key);
            cr_expect_eq(x->cache_generation, y->cache_generation);
            cr_expect_eq(x->action, y->action);
            cr_expect_eq(x->drop_reason, y->drop_reason);
            cr_expect_eq(x->reached, y->reached);
            cr_expect_eq(x->flags, y->flags);
            cr_expect_eq(x->context_class, y->context_class);
            cr_expect_eq(x->level, y->level);
            cr_expect_eq(x->cache_result, y->cache_result);
            cr_assert_eq(x->payload_size, 48);
            cr_expect_eq(memcmp(x->payload, y->payload, 48), 0);
            seen++;
        } else if (it.kind == RFX_RECORD_PUBLICATION) {
            const struct rfx_record_publication *p = &it.u.pub;
            if (pubs++ == 0) {
                cr_expect_eq(p->generation, 1);
                cr_assert_eq(p->n1, 2); /* key 5 once */
                cr_assert_eq(p->n2, 1);
                for (uint32_t i = 0; i < 2; i++) {
                    if (p->l1[i].key == 5) {
                        cr_expect_eq(p->l1[i].action, 0);
                        cr_expect_eq(p->l1[i].created_ns, 10);
                    } else {
                        cr_expect_eq(p->l1[i].key, 6);
                    }
                    cr_expect_eq(p->l1[i].generation, 1); /* stamped */
                }
                cr_expect_eq(p->l2[0].key, 77);
                /* every frame before it in the file came before it was made */
                cr_expect_leq(seen, 150);
            } else {
                cr_expect_eq(p->generation, 9);
                cr_expect_eq(p->n1, 1);
                cr_expect_eq(p->n2, 0);
            }
        } else {
            cr_expect_eq(it.u.end.frames, 300);
            cr_expect_eq(it.u.end.frames_lost, 0);
            cr_expect_eq(it.u.end.publications, 2);
            cr_expect_eq(it.u.end.end_ns, 999);
        }
    }
    cr_expect_eq(rc, 0, "%s", msg);
    cr_expect_eq(seen, 300);
    cr_expect_eq(pubs, 2);
    rfx_record_close(rd);
    rfx_recorder_destroy(r);
    rfx_action_cache_destroy(c);
    free_frames(f, 300);
}

Test(record, a_full_ring_counts_what_it_loses)
{
    struct rfx_record_header h = header(8);
    struct rfx_recorder *r;
    char msg[256];
    cr_assert_eq(rfx_recorder_create(path, &h, 1, &r, msg, sizeof msg), 0, "%s", msg);
    /* no drain thread: the ring (64 slots, its least) fills */
    struct rfx_frame *f = frames(100, 8, 0);
    f[3].flags |= RFX_FRAME_EMPTY; /* not a frame: never recorded */
    push(r, f, 100);
    struct rfx_recorder_stats st;
    rfx_recorder_stats(r, &st);
    cr_expect_eq(st.slots, 64);
    cr_expect_eq(st.frames_lost, 35);
    cr_assert_eq(rfx_recorder_finish(r, 1, msg, sizeof msg), 0);
    rfx_recorder_stats(r, &st);
    cr_expect_eq(st.frames, 64);
    struct rfx_record_reader *rd;
    cr_assert_eq(rfx_record_open(path, &rd, NULL, msg, sizeof msg), 0);
    struct rfx_record_item it;
    uint64_t last = 0, n = 0;
    while (rfx_record_next(rd, &it, msg, sizeof msg) == 1) {
        if (it.kind == RFX_RECORD_FRAME) {
            cr_expect_neq(it.u.frame.seq, 3);
            last = it.u.frame.seq;
            n++;
        } else if (it.kind == RFX_RECORD_END) {
            cr_expect_eq(it.u.end.frames, 64);
            cr_expect_eq(it.u.end.frames_lost, 35);
        }
    }
    cr_expect_eq(n, 64);
    cr_expect_eq(last, 64); /* the first 64 frames but the empty one */
    rfx_record_close(rd);
    rfx_recorder_destroy(r);
    free_frames(f, 100);
}

/* A small valid record in memory. */
static unsigned char *small_record(size_t *len)
{
    struct rfx_record_header h = header(16);
    struct rfx_recorder *r;
    char msg[256];
    cr_assert_eq(rfx_recorder_create(path, &h, 64, &r, msg, sizeof msg), 0);
    struct rfx_frame *f = frames(3, 16, 0);
    push(r, f, 3);
    cr_assert_eq(rfx_recorder_finish(r, 1, msg, sizeof msg), 0);
    rfx_recorder_destroy(r);
    free_frames(f, 3);
    return slurp(len);
}

static int parse(const unsigned char *d, size_t n, char *msg, size_t len)
{
    return rfx_record_parse(d, n, NULL, NULL, NULL, msg, len);
}

Test(record, bad_files_are_refused_with_where)
{
    size_t len;
    unsigned char *d = small_record(&len);
    char msg[300];
    const size_t first = 16 + RFX_RECORD_HEADER_BYTES + 4; /* the first frame record */
    cr_assert_eq(len, first + 3 * (12 + 64 + 16) + 12 + 32);
    cr_assert_eq(parse(d, len, msg, sizeof msg), 0, "%s", msg);

    unsigned char *b = malloc(len + 16);
    struct {
        size_t at; /* byte to change (xor 0x10), or the length to cut to */
        bool cut;
        const char *want;
    } cases[] = {
        {0, false, "not a reflex record"},
        {8, false, "record version"},
        {12, false, "header length"},
        {16 + 30, false, "the header's checksum does not match"},
        {100, true, "truncated in the header"},
        {first + 12 + 3, false, "byte 412: a frame record's checksum does not match"},
        {first + 4, false, "byte 412: a frame record of"},
        {first, false, "byte 412: unknown record kind"},
        {first + 40, true, "byte 412: truncated in a frame record"},
        {first + 3, true, "byte 412: truncated in a record's head"},
        {first + 92, true, "byte 504: the record ends without its end record"},
        {len - 5, true, "truncated in the end record"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, d, len);
        size_t n = len;
        if (cases[k].cut)
            n = cases[k].at;
        else
            b[cases[k].at] ^= 0x10;
        msg[0] = 0;
        cr_expect_eq(parse(b, n, msg, sizeof msg), -EINVAL, "case %zu", k);
        cr_expect_not_null(strstr(msg, cases[k].want), "case %zu: '%s' lacks '%s'", k, msg,
                           cases[k].want);
    }
    /* data after the end record */
    memcpy(b, d, len);
    memset(b + len, 0, 16);
    cr_expect_eq(parse(b, len + 16, msg, sizeof msg), -EINVAL);
    cr_expect_not_null(strstr(msg, "data after the end record"), "%s", msg);
    /* a header field out of range, its checksum made right */
    memcpy(b, d, len);
    uint32_t stages = 9;
    memcpy(b + 16 + 4 + 8 + 8 + 8, &stages, 4);
    uint32_t crc = (uint32_t)crc32(0, b + 16, RFX_RECORD_HEADER_BYTES);
    memcpy(b + 16 + RFX_RECORD_HEADER_BYTES, &crc, 4);
    cr_expect_eq(parse(b, len, msg, sizeof msg), -EINVAL);
    cr_expect_not_null(strstr(msg, "n_stages out of range"), "%s", msg);
    cr_expect_eq(parse(d, 0, msg, sizeof msg), -EINVAL);
    free(b);
    free(d);
}

Test(record, a_cut_record_reads_to_its_last_whole_record)
{
    size_t len;
    unsigned char *d = small_record(&len);
    const size_t first = 16 + RFX_RECORD_HEADER_BYTES + 4, rec = 12 + 64 + 16;
    /* cut 10 bytes into the third frame record */
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(d, 1, first + 2 * rec + 10, f), first + 2 * rec + 10);
    fclose(f);
    struct rfx_record_reader *r;
    char msg[300];
    cr_assert_eq(rfx_record_open(path, &r, NULL, msg, sizeof msg), 0, "%s", msg);
    rfx_record_accept_cut(r);
    struct rfx_record_item it;
    int n = 0, rc;
    while ((rc = rfx_record_next(r, &it, msg, sizeof msg)) == 1)
        n++;
    cr_expect_eq(rc, 0, "%s", msg);
    cr_expect_eq(n, 2);
    uint64_t at = 0, ignored = 0;
    cr_expect(rfx_record_was_cut(r, &at, &ignored));
    cr_expect_eq(at, first + 2 * rec);
    cr_expect_eq(ignored, 10);
    rfx_record_close(r);
    /* the whole file: not cut */
    f = fopen(path, "wb");
    cr_assert_eq(fwrite(d, 1, len, f), len);
    fclose(f);
    cr_assert_eq(rfx_record_open(path, &r, NULL, msg, sizeof msg), 0);
    rfx_record_accept_cut(r);
    while ((rc = rfx_record_next(r, &it, msg, sizeof msg)) == 1)
        ;
    cr_expect_eq(rc, 0);
    cr_expect_not(rfx_record_was_cut(r, NULL, NULL));
    rfx_record_close(r);
    free(d);
}
