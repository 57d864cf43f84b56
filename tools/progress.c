#include "progress.h"

#include <reflex/engine.h>

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

void progress_begin(struct progress *p, const char *who, const char *unit, const char *path)
{
    *p = (struct progress){.who = who, .unit = unit, .t0 = rfx_now_ns(),
                           .tty = isatty(STDERR_FILENO)};
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        p->size = (uint64_t)st.st_size;
}

void progress_tick(struct progress *p, uint64_t count, uint64_t offset)
{
    int64_t now = rfx_now_ns();
    if (now - p->t0 < 1000000000LL || now - p->last < (p->tty ? 1000000000LL : 5000000000LL))
        return;
    p->last = now;
    double pct = p->size ? 100.0 * (double)offset / (double)p->size : 0;
    if (p->tty) {
        fprintf(stderr, "\r%s: %llu %s, %.0f%% of the file\033[K", p->who,
                (unsigned long long)count, p->unit, pct);
        p->drawn = true;
    } else {
        fprintf(stderr, "%s: %llu %s, %.0f%% of the file\n", p->who, (unsigned long long)count,
                p->unit, pct);
    }
}

void progress_clear(struct progress *p)
{
    if (p->drawn)
        fprintf(stderr, "\r\033[K");
    p->drawn = false;
}
