/*
 * A file of the run bundle, written whole or not at all: opened as
 * PATH.tmp and renamed over PATH only when every write reached the file.
 * A full disk or a quota leaves the previous PATH (or none) and no
 * temporary file, never a truncated file under the real name, and the
 * error is the write's own (ENOSPC, EDQUOT), not a generic EIO.
 *
 * Not thread-safe: one writer per rfx_outfile.
 */
#ifndef REFLEX_OUTFILE_H
#define REFLEX_OUTFILE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include <reflex/engine.h>

struct rfx_outfile {
    FILE *f;
    bool reserved; /* written into a reservation: cut to its length at commit */
    char path[RFX_PATH_MAX + 64];
    char tmp[RFX_PATH_MAX + 72];
};

/* Open DIR/NAME.tmp for writing. 0 or -errno (o->f NULL). */
int rfx_outfile_open(struct rfx_outfile *o, const char *dir, const char *name);

/*
 * Disk space kept for a file written at the end of a run, so that a disk
 * that fills during the run (a growing log, another program) cannot take
 * it: DIR/NAME.tmp is made now with `bytes` allocated (posix_fallocate).
 * Returns 0, or -errno with no file left (ENOSPC: less room than that;
 * EOPNOTSUPP: the file system cannot allocate ahead).
 */
int rfx_outfile_reserve(const char *dir, const char *name, off_t bytes);

/* rfx_outfile_open into the reservation, writing over its allocated
 * blocks (commit cuts the file to what was written); without one (it was
 * never made, or is gone), as rfx_outfile_open. */
int rfx_outfile_open_reserved(struct rfx_outfile *o, const char *dir, const char *name);

/* Remove a reservation that will not be used. */
void rfx_outfile_unreserve(const char *dir, const char *name);

/* Close, and rename over the real name when `rc` (the caller's own
 * result) is 0 and every write succeeded; otherwise remove the temporary
 * file. Returns `rc` if nonzero, else 0 or -errno of the first failure. */
int rfx_outfile_commit(struct rfx_outfile *o, int rc);

#endif
