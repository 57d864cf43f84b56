/*
 * Fuzz the histogram log reader (src/hdr_log.c, formats 1.2 and 1.3, as
 * `reflex hist` and `reflex plot` read them): every interval it returns
 * holds a whole histogram (fuzz_hdr_check.h), and a malformed line is
 * reported with a message.
 */
#include "fuzz_hdr_check.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* fmemopen refuses a zero-length buffer */
    static const uint8_t empty[1];
    FILE *f = fmemopen((void *)(size ? data : empty), size ? size : 1, "r");
    if (!f)
        abort();
    struct rfx_hlog_reader *r = NULL;
    if (rfx_hlog_reader_create(f, &r) != 0)
        abort();
    struct rfx_hlog_entry e;
    int rc, n = 0;
    while ((rc = rfx_hlog_read(r, &e)) == 1) {
        /* The tag is a string inside its buffer: a NUL somewhere in it (the
         * bytes after that NUL are whatever the stack held). */
        if (!memchr(e.tag, 0, sizeof e.tag) || !e.h)
            abort();
        fuzz_hdr_check(e.h);
        rfx_hdr_destroy(e.h);
        if (++n >= 64)
            break;
    }
    if (rc == -EBADMSG) {
        const char *why = rfx_hlog_reader_error(r);
        if (!why || !why[0]) {
            fprintf(stderr, "fuzz_hlog: a malformed line with no message\n");
            abort();
        }
    } else if (rc < 0 && rc != -ENOMEM) {
        fprintf(stderr, "fuzz_hlog: read returned %d\n", rc);
        abort();
    }
    rfx_hlog_reader_destroy(r);
    fclose(f);
    return 0;
}
