/* Bundle files written whole or not at all (outfile.h). */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int set_paths(struct rfx_outfile *o, const char *dir, const char *name)
{
    int n = snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    o->f = NULL;
    o->reserved = false;
    if (n < 0 || (size_t)n >= sizeof o->path)
        return -ENAMETOOLONG;
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    return 0;
}

int rfx_outfile_open(struct rfx_outfile *o, const char *dir, const char *name)
{
    int rc = set_paths(o, dir, name);
    if (rc)
        return rc;
    o->f = fopen(o->tmp, "we");
    return o->f ? 0 : -errno;
}

int rfx_outfile_reserve(const char *dir, const char *name, off_t bytes)
{
    struct rfx_outfile o;
    int rc = set_paths(&o, dir, name);
    if (rc)
        return rc;
    int fd = open(o.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc = -posix_fallocate(fd, 0, bytes); /* returns the error, sets no errno */
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc)
        unlink(o.tmp);
    return rc;
}

int rfx_outfile_open_reserved(struct rfx_outfile *o, const char *dir, const char *name)
{
    int rc = set_paths(o, dir, name);
    if (rc)
        return rc;
    int fd = open(o->tmp, O_WRONLY | O_CLOEXEC); /* no O_TRUNC: keep the blocks */
    if (fd >= 0 && (o->f = fdopen(fd, "w")) != NULL) {
        o->reserved = true;
        return 0;
    }
    if (fd >= 0)
        close(fd);
    return rfx_outfile_open(o, dir, name);
}

void rfx_outfile_unreserve(const char *dir, const char *name)
{
    struct rfx_outfile o;
    if (set_paths(&o, dir, name) == 0)
        unlink(o.tmp);
}

int rfx_outfile_commit(struct rfx_outfile *o, int rc)
{
    if (!o->f)
        return rc ? rc : -EBADF;
    /* A write that failed set the stream's error flag and left its bytes
     * in the buffer: flushing them again gives the failure's errno, which
     * is more use than the EIO a writer returns for a stream in error. */
    errno = 0;
    int flushed = fflush(o->f) != 0 && errno ? -errno : 0;
    if (flushed && (rc == 0 || rc == -EIO))
        rc = flushed;
    if (ferror(o->f) && rc == 0)
        rc = -EIO;
    /* A reservation is longer than what was written: cut it there. */
    off_t len = o->reserved ? ftello(o->f) : 0;
    if (o->reserved && rc == 0 && (len < 0 || ftruncate(fileno(o->f), len) != 0))
        rc = -errno;
    if (fclose(o->f) != 0 && rc == 0)
        rc = -errno;
    o->f = NULL;
    if (rc == 0 && rename(o->tmp, o->path) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(o->tmp);
    return rc;
}
