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
    bool reserved;  /* written into a reservation: cut to its length at commit */
    bool anonymous; /* ... which has no name yet (O_TMPFILE): linked at commit */
    char path[RFX_PATH_MAX + 64];
    char tmp[RFX_PATH_MAX + 72];
};

/* Disk space kept for a file (rfx_outfile_reserve). */
struct rfx_reserve {
    int fd;     /* -1: none */
    bool named; /* DIR/NAME.tmp; else a file with no name, which vanishes
                   with the process however it ends */
};

/* Open DIR/NAME.tmp for writing. 0 or -errno (o->f NULL). */
int rfx_outfile_open(struct rfx_outfile *o, const char *dir, const char *name);

/*
 * Disk space kept for a file written at the end of a run, so that a disk
 * that fills during the run (a growing log, another program) cannot take
 * it: a file with `bytes` allocated (posix_fallocate), held open in r. It
 * has no name (O_TMPFILE in DIR), so a process killed before it is used
 * leaves nothing behind; on a file system without O_TMPFILE it is
 * DIR/NAME.tmp. A DIR/NAME.tmp left by an earlier run is removed.
 * Returns 0, or -errno with no file left and r->fd -1 (ENOSPC: less room
 * than that; EOPNOTSUPP: the file system cannot allocate ahead).
 */
int rfx_outfile_reserve(struct rfx_reserve *r, const char *dir, const char *name, off_t bytes);

/* rfx_outfile_open into the reservation r, which it takes (r->fd becomes
 * -1), writing over its allocated blocks (commit cuts the file to what was
 * written and gives it its name); without one (r->fd -1), as
 * rfx_outfile_open. */
int rfx_outfile_open_reserved(struct rfx_outfile *o, struct rfx_reserve *r, const char *dir,
                              const char *name);

/* Give back a reservation that will not be used (none: nothing). */
void rfx_outfile_unreserve(struct rfx_reserve *r, const char *dir, const char *name);

/*
 * The pieces underneath, for files written through a descriptor
 * (src/persist.c). rfx_tmpfile_open: a file open for writing in `dir` with
 * no name (O_TMPFILE), or on a file system without O_TMPFILE the new,
 * truncated file `fallback` (*named true); the descriptor or -errno.
 * rfx_tmpfile_link: give the unnamed file `fd` the name `name`, replacing
 * a file of that name (through /proc/self/fd, else AT_EMPTY_PATH); 0 or
 * -errno. A process killed before the link leaves nothing.
 */
int rfx_tmpfile_open(const char *dir, const char *fallback, bool *named);
int rfx_tmpfile_link(int fd, const char *name);

/* Close, and rename over the real name when `rc` (the caller's own
 * result) is 0 and every write succeeded; otherwise remove the temporary
 * file. Returns `rc` if nonzero, else 0 or -errno of the first failure. */
int rfx_outfile_commit(struct rfx_outfile *o, int rc);

#endif
