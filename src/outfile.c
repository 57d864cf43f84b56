/* Bundle files written whole or not at all (outfile.h). */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int set_paths(struct rfx_outfile *o, const char *dir, const char *name)
{
    int n = snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    o->f = NULL;
    o->reserved = o->anonymous = false;
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

int rfx_tmpfile_open(const char *dir, const char *fallback, bool *named)
{
    *named = false;
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        fd = open(fallback, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        *named = true;
    }
    return fd >= 0 ? fd : -errno;
}

int rfx_tmpfile_link(int fd, const char *name)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    int err = errno;
    if (err == EEXIST) { /* a temporary file of a writer killed between link and rename */
        unlink(name);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        err = errno;
    }
    /* No /proc: by the descriptor itself (needs CAP_DAC_READ_SEARCH). */
    if (err == ENOENT && linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH) == 0)
        return 0;
    return -err;
}

int rfx_outfile_reserve(struct rfx_reserve *r, const char *dir, const char *name, off_t bytes)
{
    r->fd = -1;
    r->named = false;
    struct rfx_outfile o;
    int rc = set_paths(&o, dir, name);
    if (rc)
        return rc;
    unlink(o.tmp); /* an earlier run's, killed before its commit */
    int fd = rfx_tmpfile_open(dir, o.tmp, &r->named);
    if (fd < 0)
        return fd;
    rc = -posix_fallocate(fd, 0, bytes); /* returns the error, sets no errno */
    if (rc) {
        close(fd);
        if (r->named)
            unlink(o.tmp);
        return rc;
    }
    r->fd = fd;
    return 0;
}

int rfx_outfile_open_reserved(struct rfx_outfile *o, struct rfx_reserve *r, const char *dir,
                              const char *name)
{
    int rc = set_paths(o, dir, name);
    if (rc || r->fd < 0)
        return rc ? rc : rfx_outfile_open(o, dir, name);
    int fd = r->fd;
    r->fd = -1;
    if ((o->f = fdopen(fd, "w")) == NULL) {
        rc = -errno;
        close(fd);
        if (r->named)
            unlink(o->tmp);
        return rc;
    }
    o->reserved = true;
    o->anonymous = !r->named;
    return 0;
}

void rfx_outfile_unreserve(struct rfx_reserve *r, const char *dir, const char *name)
{
    if (r->fd < 0)
        return;
    close(r->fd);
    r->fd = -1;
    struct rfx_outfile o;
    if (r->named && set_paths(&o, dir, name) == 0)
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
    if (o->anonymous && rc == 0)
        rc = rfx_tmpfile_link(fileno(o->f), o->tmp);
    if (fclose(o->f) != 0 && rc == 0)
        rc = -errno;
    o->f = NULL;
    if (rc == 0 && rename(o->tmp, o->path) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(o->tmp);
    return rc;
}
