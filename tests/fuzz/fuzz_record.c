/*
 * Fuzz the run record reader (src/record.c) and the replay on top of it
 * (src/replay.c, through the built-in stages of stages/replay.c), as
 * `reflex replay` runs them. Every record carries a
 * CRC-32, which a fuzzer would rarely get right: when the input's first
 * byte is odd, the harness recomputes the header's and every record's
 * checksum (walking the records by their stated lengths), so what lies
 * behind the checksums is explored too.
 *
 * Beyond not crashing: the reader and the replay must agree on whether the
 * file is well formed (a file the reader refuses, the replay refuses); a
 * replay that runs to the end accounts for every frame record (compared,
 * not reached or dropped by a fault) and every compared frame is identical
 * or different; with --partial's cut acceptance a whole record replays the
 * same, and a cut one accounts for its frames too. The same record
 * replayed through decide alone (rfx_replay without a pattern stage)
 * accounts for every frame, every compared frame decided again.
 */
#include "builtin.h"
#include "fuzz_file.h"
#include "record_format.h"
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fix_checksums(uint8_t *f, size_t size)
{
    const size_t body = 16, hdr_end = 16 + RFX_RECORD_HEADER_BYTES;
    if (size < hdr_end + 4)
        return;
    uint32_t crc = (uint32_t)crc32(0, f + body, RFX_RECORD_HEADER_BYTES);
    memcpy(f + hdr_end, &crc, 4);
    size_t off = hdr_end + 4;
    while (off + 12 <= size) {
        uint32_t len;
        memcpy(&len, f + off + 4, 4);
        if (len > size - off - 12)
            break;
        crc = (uint32_t)crc32(0, f + off, 8 + len);
        memcpy(f + off + 8 + len, &crc, 4);
        off += 12 + (size_t)len;
    }
}

static int count(void *arg, const struct rfx_record_item *it)
{
    (void)it;
    (*(long *)arg)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fix;
    uint8_t *file = fuzz_body(data, &size, &fix);
    if (!file)
        return 0;
    if (fix)
        fix_checksums(file, size);
    char msg[512] = "";
    long items = 0;
    struct rfx_record_header h;
    int parsed = rfx_record_parse(file, size, &h, count, &items, msg, sizeof msg);
    char path[64];
    int fd = fuzz_file(file, size, path);
    free(file);
    struct rfx_replay_result res, cut;
    int rc = rfx_replay_builtin(path, NULL, NULL, &res, msg, sizeof msg);
    /* --partial: a whole record replays the same; a cut one may replay too */
    struct rfx_replay_config partial = {.accept_cut = true};
    int rc_cut = rfx_replay_builtin(path, NULL, &partial, &cut, msg, sizeof msg);
    /* rfx_replay with decide alone (a bot's own stages, no pattern): the
     * synthetic decide, which reads only the recorded keys. */
    struct rfx_builtin *b = NULL;
    const struct rfx_stage_ops *pat_ops, *dec_ops;
    struct rfx_replay_result dres;
    int rc_d = 1;
    if (rfx_builtin_replay_setup("synthetic", &b, &pat_ops, &dec_ops, msg, sizeof msg) == 0) {
        struct rfx_replay_config dc = {.decide = {.name = "decide", .ops = dec_ops, .ctx = b}};
        rc_d = rfx_replay(path, &dc, &dres, msg, sizeof msg);
        rfx_builtin_destroy(b);
    }
    close(fd);
    if (rc_d == 0 && (dres.frames != dres.compared + dres.not_reached + dres.fault_drops ||
                      dres.compared != dres.identical + dres.differ ||
                      dres.decided != dres.compared || dres.pattern_drops != 0)) {
        fprintf(stderr, "fuzz_record: decide-alone replay accounting\n");
        abort();
    }
    if (rc_d == 0 && parsed != 0) {
        fprintf(stderr, "fuzz_record: the reader refused (%d) a record decide alone replayed\n",
                parsed);
        abort();
    }
    if (rc_d != 0 && rc_d != -EINVAL && rc_d != -ENOMEM) {
        fprintf(stderr, "fuzz_record: decide-alone replay returned %d (%s)\n", rc_d, msg);
        abort();
    }
    if (rc == 0 &&
        (rc_cut != 0 || cut.cut || cut.frames != res.frames || cut.differ != res.differ)) {
        fprintf(stderr, "fuzz_record: --partial changed a whole record's replay (%d)\n", rc_cut);
        abort();
    }
    if (rc_cut == 0 && cut.frames != cut.compared + cut.not_reached + cut.fault_drops) {
        fprintf(stderr, "fuzz_record: --partial replay accounting\n");
        abort();
    }
    if (rc_cut != 0 && rc_cut != -EINVAL && rc_cut != -ENOMEM) {
        fprintf(stderr, "fuzz_record: --partial replay returned %d (%s)\n", rc_cut, msg);
        abort();
    }
    if (parsed != 0 && rc == 0) {
        fprintf(stderr, "fuzz_record: the reader refused (%d) a record the replay ran\n", parsed);
        abort();
    }
    if (rc == 0 && (res.frames != res.compared + res.not_reached + res.fault_drops ||
                    res.compared != res.identical + res.differ || res.decided > res.compared ||
                    (long)(res.frames + res.publications + 1) != items)) {
        fprintf(stderr,
                "fuzz_record: replay accounting: %llu frames, %llu compared, %llu not reached, "
                "%llu fault drops, %llu identical, %llu differ; %ld records\n",
                (unsigned long long)res.frames, (unsigned long long)res.compared,
                (unsigned long long)res.not_reached, (unsigned long long)res.fault_drops,
                (unsigned long long)res.identical, (unsigned long long)res.differ, items);
        abort();
    }
    if (rc != 0 && rc != -EINVAL && rc != -ENOMEM) {
        fprintf(stderr, "fuzz_record: replay returned %d (%s)\n", rc, msg);
        abort();
    }
    return 0;
}
