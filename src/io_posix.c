/*
 * io_posix.c - the POSIX implementation of the I/O layer (io.h).  The only
 * file in the engine that calls open/pread/pwrite/fdatasync/rename.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

#define LOCK_YIELDS 8            /* tries that only yield the processor */
#define LOCK_MAX_PAUSE 1000000u  /* ns: the longest sleep between tries */

typedef struct posix_file {
    sop_file base;
    int fd;
} posix_file;

static int io_error(const char *op, const char *path, int err)
{
    int rc = (err == ENOSPC || err == EDQUOT) ? SOP_NOSPACE : SOP_IOERR;
    return sop_report(rc, "%s %s: %s", op, path, strerror(err));
}

char *sop_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = sop_malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int p_open(const sop_io *io, const char *path, int flags, sop_file **out)
{
    *out = NULL;
    int oflags = O_CLOEXEC | ((flags & SOP_IO_READONLY) ? O_RDONLY : O_RDWR);
    if (flags & SOP_IO_CREATE)
        oflags |= O_CREAT;
    if (!(flags & SOP_IO_DEVICE))
        oflags |= O_NONBLOCK; /* a FIFO under a database file's name must not block the open */
    int fd;
    do
        fd = open(path, oflags, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return io_error("open", path, errno);
    if (!(flags & SOP_IO_DEVICE)) {
        struct stat st;
        if (fstat(fd, &st) != 0) {
            int e = errno;
            close(fd);
            return io_error("stat", path, e);
        }
        if (!S_ISREG(st.st_mode)) {
            close(fd);
            return sop_report(SOP_IOERR, "%s is not a regular file (%s)", path,
                              S_ISFIFO(st.st_mode)  ? "a FIFO"
                              : S_ISDIR(st.st_mode) ? "a folder"
                              : S_ISSOCK(st.st_mode) ? "a socket"
                                                     : "a device");
        }
        /* back to blocking I/O (O_NONBLOCK means nothing for regular files,
         * but the flag stays visible to fcntl users) */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    posix_file *f = sop_calloc(1, sizeof *f);
    char *p = sop_strdup(path);
    if (!f || !p) {
        close(fd);
        sop_free(f);
        sop_free(p);
        return sop_report(SOP_NOMEM, "open %s", path);
    }
    f->base.io = io;
    f->base.path = p;
    f->fd = fd;
    *out = &f->base;
    return SOP_OK;
}

static int p_close(sop_file *file)
{
    if (!file)
        return SOP_OK;
    posix_file *f = (posix_file *)file;
    int rc = SOP_OK;
    if (close(f->fd) != 0 && errno != EINTR)
        rc = io_error("close", file->path, errno);
    sop_free(file->path);
    sop_free(f);
    return rc;
}

static int p_pread(sop_file *file, void *buf, size_t n, uint64_t off, size_t *got)
{
    posix_file *f = (posix_file *)file;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *got = done;
            return io_error("read", file->path, errno);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return SOP_OK;
}

static int p_pwrite(sop_file *file, const void *buf, size_t n, uint64_t off)
{
    posix_file *f = (posix_file *)file;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(f->fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return io_error("write", file->path, errno);
        }
        if (r == 0)
            return io_error("write", file->path, EIO);
        done += (size_t)r;
    }
    return SOP_OK;
}

static int p_sync(sop_file *file)
{
    posix_file *f = (posix_file *)file;
    if (fdatasync(f->fd) != 0)
        return io_error("fsync", file->path, errno);
    return SOP_OK;
}

static int p_truncate(sop_file *file, uint64_t size)
{
    posix_file *f = (posix_file *)file;
    int r;
    do
        r = ftruncate(f->fd, (off_t)size);
    while (r != 0 && errno == EINTR);
    if (r != 0)
        return io_error("truncate", file->path, errno);
    return SOP_OK;
}

static int p_size(sop_file *file, uint64_t *size)
{
    posix_file *f = (posix_file *)file;
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return io_error("stat", file->path, errno);
    *size = (uint64_t)st.st_size;
    return SOP_OK;
}

/* Waiting for a lock polls flock(LOCK_NB): a blocking flock cannot be given
 * a time limit without signals, which a library must not use.  Holders keep
 * the commit lock for tens of microseconds (fsync runs after it is
 * released), so a waiter first yields the processor a few times (the holder
 * may be waiting for it), then sleeps 20 us growing by half up to 1 ms,
 * never past the deadline. */
static int p_lock(sop_file *file, int exclusive, uint64_t deadline_ns)
{
    posix_file *f = (posix_file *)file;
    int op = (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
    uint64_t start = 0, pause = 20000;
    for (int tries = 0;; tries++) {
        if (flock(f->fd, op) == 0)
            return SOP_OK;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return io_error("lock", file->path, errno);
        uint64_t now = sop_mono_ns();
        if (!start)
            start = now;
        if (!deadline_ns || now >= deadline_ns)
            break;
        if (tries < LOCK_YIELDS) {
            sched_yield();
            continue;
        }
        uint64_t nap = SOP_MIN(pause, deadline_ns - now);
        struct timespec ts = {(time_t)(nap / 1000000000u), (long)(nap % 1000000000u)};
        nanosleep(&ts, NULL); /* an early wake-up just retries sooner */
        if (pause < LOCK_MAX_PAUSE)
            pause += pause / 2;
    }
    if (!deadline_ns)
        return sop_report(SOP_BUSY, "%s is locked by another process", file->path);
    return sop_report(SOP_BUSY,
                      "%s is locked by another process (waited %llu ms); if that process is stopped "
                      "(SIGSTOP, a debugger), resume or end it: `fuser %s` names it",
                      file->path, (unsigned long long)((sop_mono_ns() - start) / 1000000u), file->path);
}

static int p_unlock(sop_file *file)
{
    posix_file *f = (posix_file *)file;
    if (flock(f->fd, LOCK_UN) != 0)
        return io_error("unlock", file->path, errno);
    return SOP_OK;
}

static int p_unlink(const sop_io *io, const char *path)
{
    (void)io;
    if (unlink(path) != 0 && errno != ENOENT)
        return io_error("unlink", path, errno);
    return SOP_OK;
}

static int p_rename(const sop_io *io, const char *from, const char *to)
{
    (void)io;
    if (rename(from, to) != 0)
        return io_error("rename", from, errno);
    return SOP_OK;
}

static int p_mkdir(const sop_io *io, const char *path)
{
    (void)io;
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return io_error("mkdir", path, errno);
    return SOP_OK;
}

static int p_sync_dir(const sop_io *io, const char *path)
{
    (void)io;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_error("open directory", path, errno);
    int rc = SOP_OK;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = io_error("fsync directory", path, errno);
    close(fd);
    return rc;
}

static int p_list(const sop_io *io, const char *dir, int (*fn)(void *, const char *), void *arg)
{
    (void)io;
    DIR *d = opendir(dir);
    if (!d)
        return io_error("list", dir, errno);
    int rc = SOP_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((rc = fn(arg, e->d_name)) != SOP_OK)
            break;
    }
    closedir(d);
    return rc;
}

static int p_exists(const sop_io *io, const char *path)
{
    (void)io;
    struct stat st;
    if (stat(path, &st) == 0)
        return 1;
    if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    return -io_error("stat", path, errno);
}

static int p_fs_type(const sop_io *io, const char *path, char *out, size_t n)
{
    (void)io;
    struct statfs sf;
    if (statfs(path, &sf) != 0)
        return io_error("statfs", path, errno);
    const char *name = "local";
    switch ((unsigned long)sf.f_type) {
    case 0x6969UL: name = "nfs"; break;
    case 0xFF534D42UL: name = "cifs"; break;
    case 0xFE534D42UL: name = "smb2"; break;
    case 0x517BUL: name = "smb"; break;
    case 0x01021997UL: name = "9p"; break;
    default: break;
    }
    snprintf(out, n, "%s", name);
    return SOP_OK;
}

static int p_lock_range(sop_file *file, uint64_t off, uint64_t len)
{
    posix_file *f = (posix_file *)file;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)off;
    fl.l_len = (off_t)len;
    if (fcntl(f->fd, F_OFD_SETLK, &fl) != 0) {
        if (errno == EAGAIN || errno == EACCES)
            return SOP_BUSY;
        return io_error("lock range of", file->path, errno);
    }
    return SOP_OK;
}

static int p_range_locked(sop_file *file, uint64_t off, uint64_t len)
{
    posix_file *f = (posix_file *)file;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)off;
    fl.l_len = (off_t)len;
    if (fcntl(f->fd, F_OFD_GETLK, &fl) != 0)
        return -io_error("test lock of", file->path, errno);
    return fl.l_type != F_UNLCK;
}

static int p_alloc(sop_file *file, uint64_t off, uint64_t len)
{
    posix_file *f = (posix_file *)file;
    int r;
    do
        r = fallocate(f->fd, 0, (off_t)off, (off_t)len);
    while (r != 0 && errno == EINTR);
    if (r == 0)
        return SOP_OK;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return io_error("allocate", file->path, errno);
    /* no fallocate here: bytes past the end of the file are written as
     * zeros (bytes before it are someone's data and are left alone) */
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return io_error("stat", file->path, errno);
    static const unsigned char zeros[4096];
    for (uint64_t at = SOP_MAX((uint64_t)st.st_size, off); at < off + len;) {
        size_t n = (size_t)SOP_MIN(off + len - at, (uint64_t)sizeof zeros);
        int rc = p_pwrite(file, zeros, n, at);
        if (rc != SOP_OK)
            return rc;
        at += n;
    }
    return SOP_OK;
}

static int p_same_file(sop_file *file, const char *path)
{
    posix_file *f = (posix_file *)file;
    struct stat a, b;
    if (fstat(f->fd, &a) != 0)
        return -io_error("stat", file->path, errno);
    if (stat(path, &b) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return -io_error("stat", path, errno);
    }
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static const sop_io posix_io = {
    1, NULL, p_open, p_close, p_pread, p_pwrite, p_sync, p_truncate, p_size, p_lock, p_unlock,
    p_unlink, p_rename, p_mkdir, p_sync_dir, p_list, p_exists, p_fs_type, p_lock_range, p_range_locked,
    p_alloc, p_same_file,
};

const sop_io *sop_io_posix(void)
{
    return &posix_io;
}
