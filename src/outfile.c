/* Bundle files written whole or not at all (outfile.h). */
#include "outfile.h"

#include <errno.h>
#include <unistd.h>

int rfx_outfile_open(struct rfx_outfile *o, const char *dir, const char *name)
{
    int n = snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    o->f = NULL;
    if (n < 0 || (size_t)n >= sizeof o->path)
        return -ENAMETOOLONG;
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    o->f = fopen(o->tmp, "we");
    return o->f ? 0 : -errno;
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
    if (fclose(o->f) != 0 && rc == 0)
        rc = -errno;
    o->f = NULL;
    if (rc == 0 && rename(o->tmp, o->path) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(o->tmp);
    return rc;
}
