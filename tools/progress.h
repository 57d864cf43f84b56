/* Progress on stderr for the CLI's long reads (replay, hist, plot): on a
 * terminal one line redrawn about once a second, otherwise a line every
 * 5 s; nothing in the first second, so short work stays quiet. */
#ifndef REFLEX_TOOLS_PROGRESS_H
#define REFLEX_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
    const char *who;  /* "replay", "reflex hist", ... */
    const char *unit; /* what is counted: "frames", "intervals" */
    int64_t t0, last;
    uint64_t size; /* of the file read, for the percentage (0: unknown) */
    bool tty;
    bool drawn; /* a progress line is on the terminal: clear it before other output */
};

/* Begin: `path`'s size for the percentage. */
void progress_begin(struct progress *p, const char *who, const char *unit, const char *path);
/* `count` done, `offset` bytes into the file. */
void progress_tick(struct progress *p, uint64_t count, uint64_t offset);
/* Clear the line on a terminal before other output. */
void progress_clear(struct progress *p);

#endif
