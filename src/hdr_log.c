/*
 * HdrHistogram log format 1.3: writer and reader.
 *
 *   #[Histogram log format version 1.3]
 *   #[StartTime: 1700000000.000 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]
 *   #[BaseTime: 1700000000.000 (seconds since epoch)]
 *   "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
 *   Tag=e2e,0.000,1.000,2.345,HISTFAAA...
 *
 * Start is relative to BaseTime; the second column is a length, not an end
 * time; the max column is divided by the unit ratio (ns -> ms) and readers
 * ignore it.
 */
#include "hdr_histogram_impl.h"
#include "java_format.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rfx_hlog_writer {
    FILE *f;
    double base_s;
};

struct rfx_hlog_reader {
    FILE *f;
    char *line;
    size_t cap;
    long lineno;
    double start_s, base_s;
    bool seen_start, seen_base;
    char err[256];
};

static void fixed3(char *buf, size_t n, double v)
{
    rfx_java_fixed(buf, n, v, 3, 0);
}

int rfx_hlog_writer_create(FILE *f, double start_time_s, struct rfx_hlog_writer **out)
{
    if (!f || !out || !(start_time_s >= 0))
        return -EINVAL;
    struct rfx_hlog_writer *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->f = f;
    w->base_s = start_time_s;
    /* java.util.Date.toString() form: "Tue Nov 14 22:13:20 UTC 2023". */
    char date[64], t[64];
    time_t secs = (time_t)start_time_s;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(date, sizeof date, "%a %b %d %H:%M:%S UTC %Y", &tm);
    fixed3(t, sizeof t, start_time_s);
    fprintf(f, "#[Histogram log format version 1.3]\n");
    fprintf(f, "#[StartTime: %s (seconds since epoch), %s]\n", t, date);
    fprintf(f, "#[BaseTime: %s (seconds since epoch)]\n", t);
    fprintf(f, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
               "\"Interval_Compressed_Histogram\"\n");
    if (ferror(f)) {
        free(w);
        return -EIO;
    }
    *out = w;
    return 0;
}

void rfx_hlog_writer_destroy(struct rfx_hlog_writer *w)
{
    free(w);
}

int rfx_hlog_write(struct rfx_hlog_writer *w, const char *tag, double start_time_s, double length_s,
                   const struct rfx_hdr *h, double max_unit_ratio)
{
    if (!w || !h || !(length_s >= 0) || !(max_unit_ratio > 0))
        return -EINVAL;
    if (tag && (strpbrk(tag, ", \r\n") || strlen(tag) >= sizeof((struct rfx_hlog_entry *)0)->tag))
        return -EINVAL;
    char *b64;
    int rc = rfx_hdr_encode_base64(h, &b64);
    if (rc < 0)
        return rc;
    char s[64], l[64], m[64];
    fixed3(s, sizeof s, start_time_s - w->base_s);
    fixed3(l, sizeof l, length_s);
    fixed3(m, sizeof m, (double)rfx_hdr_max(h) / max_unit_ratio);
    if (tag && *tag)
        fprintf(w->f, "Tag=%s,", tag);
    fprintf(w->f, "%s,%s,%s,%s\n", s, l, m, b64);
    free(b64);
    return ferror(w->f) ? -EIO : 0;
}

int rfx_hlog_reader_create(FILE *f, struct rfx_hlog_reader **out)
{
    if (!f || !out)
        return -EINVAL;
    struct rfx_hlog_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->f = f;
    *out = r;
    return 0;
}

void rfx_hlog_reader_destroy(struct rfx_hlog_reader *r)
{
    if (!r)
        return;
    free(r->line);
    free(r);
}

const char *rfx_hlog_reader_error(const struct rfx_hlog_reader *r)
{
    return r ? r->err : "";
}

double rfx_hlog_reader_start_time(const struct rfx_hlog_reader *r)
{
    return r ? r->start_s : 0;
}

double rfx_hlog_reader_base_time(const struct rfx_hlog_reader *r)
{
    return r ? r->base_s : 0;
}

static int fail(struct rfx_hlog_reader *r, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof r->err, "line %ld: %s", r->lineno, what);
    return -EBADMSG;
}

/* Parse a whole decimal field [s, end); false unless all of it is a number. */
static bool parse_double(const char *s, const char *end, double *out)
{
    if (s == end || end - s > 60)
        return false;
    char buf[64];
    memcpy(buf, s, (size_t)(end - s));
    buf[end - s] = 0;
    char *e;
    *out = strtod(buf, &e);
    return *e == 0 && *out == *out;
}

static bool header_time(const char *line, const char *prefix, double *out)
{
    size_t n = strlen(prefix);
    if (strncmp(line, prefix, n) != 0)
        return false;
    const char *s = line + n, *e = s;
    while (*e && *e != ' ' && *e != ']')
        e++;
    return parse_double(s, e, out);
}

int rfx_hlog_read(struct rfx_hlog_reader *r, struct rfx_hlog_entry *e)
{
    if (!r || !e)
        return -EINVAL;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->line, &r->cap, r->f);
        if (n < 0 && ferror(r->f)) { /* e.g. "Is a directory" */
            snprintf(r->err, sizeof r->err, "read error: %s", strerror(errno ? errno : EIO));
            return -EIO;
        }
        if (n < 0)
            return 0;
        r->lineno++;
        char *line = r->line;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        if (line[0] == '#') {
            double t;
            if (strncmp(line, "#[StartTime: ", 13) == 0) {
                if (!header_time(line, "#[StartTime: ", &t))
                    return fail(r, "unreadable StartTime");
                r->start_s = t, r->seen_start = true;
            } else if (strncmp(line, "#[BaseTime: ", 12) == 0) {
                if (!header_time(line, "#[BaseTime: ", &t))
                    return fail(r, "unreadable BaseTime");
                r->base_s = t, r->seen_base = true;
            }
            continue;
        }
        if (strncmp(line, "\"StartTimestamp\"", 16) == 0)
            continue;

        const char *p = line;
        e->tag[0] = 0;
        if (strncmp(p, "Tag=", 4) == 0) {
            const char *c = strchr(p + 4, ',');
            if (!c)
                return fail(r, "tag without the fields after it");
            size_t len = (size_t)(c - (p + 4));
            if (len == 0 || len >= sizeof e->tag)
                return fail(r, "tag empty or longer than %zu bytes", sizeof e->tag - 1);
            memcpy(e->tag, p + 4, len);
            e->tag[len] = 0;
            p = c + 1;
        }
        double f[3];
        static const char *const names[] = {"start timestamp", "interval length", "interval max"};
        for (int i = 0; i < 3; i++) {
            const char *c = strchr(p, ',');
            if (!c)
                return fail(r, "expected 4 comma-separated fields, found %d", i + 1);
            if (!parse_double(p, c, &f[i]))
                return fail(r, "%s is not a number", names[i]);
            p = c + 1;
        }
        if (strchr(p, ','))
            return fail(r, "more than 4 fields");
        struct rfx_hdr *h;
        int rc = rfx_hdr_decode_base64(p, strlen(p), &h);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            return fail(r, "histogram does not decode (%s)",
                        rc == -ENOTSUP ? "unsupported encoding" : "corrupt or truncated");
        if (!r->seen_start) {
            r->start_s = f[0];
            r->seen_start = true;
        }
        if (!r->seen_base) {
            /* As HdrHistogram: timestamps far below StartTime are relative to it. */
            r->base_s = f[0] < r->start_s - 365 * 24 * 3600.0 ? r->start_s : 0.0;
            r->seen_base = true;
        }
        e->start_s = f[0] + r->base_s;
        e->length_s = f[1];
        e->max_column = f[2];
        e->h = h;
        return 1;
    }
}
