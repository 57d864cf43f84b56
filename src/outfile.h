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

#include <stdio.h>

#include <reflex/engine.h>

struct rfx_outfile {
    FILE *f;
    char path[RFX_PATH_MAX + 64];
    char tmp[RFX_PATH_MAX + 72];
};

/* Open DIR/NAME.tmp for writing. 0 or -errno (o->f NULL). */
int rfx_outfile_open(struct rfx_outfile *o, const char *dir, const char *name);

/* Close, and rename over the real name when `rc` (the caller's own
 * result) is 0 and every write succeeded; otherwise remove the temporary
 * file. Returns `rc` if nonzero, else 0 or -errno of the first failure. */
int rfx_outfile_commit(struct rfx_outfile *o, int rc);

#endif
