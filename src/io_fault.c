/*
 * io_fault.c - fault and crash injection over another I/O layer (see
 * io_fault.h).  Used only by tests; it lives in the library so every test
 * binary can link it.
 */
#include <stdio.h>

#include "io_fault.h"

typedef struct undo {
    uint64_t off;
    size_t len;          /* bytes written */
    unsigned char *old;  /* previous bytes (old_len of them) */
    size_t old_len;
    uint64_t old_size;   /* file size before the write */
    struct undo *next;   /* newer first */
} undo;

typedef struct ffile {
    sop_file base;
    sop_file *inner;
    io_fault *owner;
    undo *undos;         /* writes since the last sync */
    struct ffile *next;  /* owner's list of open files */
} ffile;

struct io_fault {
    sop_io io;
    const sop_io *inner;
    long countdown, calls;
    int kind, persistent, fired, track;
    ffile *files;
    void (*on_lock)(void *arg, const char *path);
    void *on_lock_arg;
};

/* is_sync: 1 for sync calls, 2 for alloc calls */
static int hit(io_fault *f, int is_write, int is_sync)
{
    if (f->fired && f->persistent)
        return (f->kind == FAULT_ENOSPC || f->kind == FAULT_ALLOC) && is_write ? SOP_NOSPACE : SOP_IOERR;
    if (!f->countdown || f->fired)
        return 0;
    if (f->kind == FAULT_FSYNC && is_sync != 1)
        return 0;
    if (f->kind == FAULT_ALLOC && is_sync != 2)
        return 0;
    f->calls++;
    if (--f->countdown > 0)
        return 0;
    f->fired = 1;
    if ((f->kind == FAULT_ENOSPC || f->kind == FAULT_ALLOC) && is_write)
        return SOP_NOSPACE;
    if (f->kind == FAULT_SHORT && is_write)
        return -1; /* caller writes half, then fails */
    return SOP_IOERR;
}

static int injected(int rc, const char *what, const char *path)
{
    return sop_report(rc, "%s %s: injected fault", what, path ? path : "");
}

static void drop_undos(ffile *ff)
{
    while (ff->undos) {
        undo *u = ff->undos;
        ff->undos = u->next;
        sop_free(u->old);
        sop_free(u);
    }
}

/* ---- file methods */
static int f_close(sop_file *file)
{
    ffile *ff = (ffile *)file;
    io_fault *f = ff->owner;
    for (ffile **pp = &f->files; *pp; pp = &(*pp)->next)
        if (*pp == ff) {
            *pp = ff->next;
            break;
        }
    int rc = ff->inner->io->close(ff->inner);
    drop_undos(ff);
    sop_free(file->path);
    sop_free(ff);
    return rc;
}

static int f_pread(sop_file *file, void *buf, size_t n, uint64_t off, size_t *got)
{
    ffile *ff = (ffile *)file;
    int rc = hit(ff->owner, 0, 0);
    if (rc) {
        *got = 0;
        return injected(SOP_IOERR, "read", file->path);
    }
    return ff->inner->io->pread(ff->inner, buf, n, off, got);
}

static int remember(ffile *ff, const void *buf, size_t n, uint64_t off)
{
    (void)buf;
    undo *u = sop_calloc(1, sizeof *u);
    if (!u)
        return SOP_NOMEM;
    ff->inner->io->size(ff->inner, &u->old_size);
    u->off = off;
    u->len = n;
    if (off < u->old_size) {
        u->old_len = (size_t)SOP_MIN((uint64_t)n, u->old_size - off);
        u->old = sop_malloc(u->old_len);
        size_t got = 0;
        if (u->old)
            ff->inner->io->pread(ff->inner, u->old, u->old_len, off, &got);
    }
    u->next = ff->undos;
    ff->undos = u;
    return SOP_OK;
}

static int f_pwrite(sop_file *file, const void *buf, size_t n, uint64_t off)
{
    ffile *ff = (ffile *)file;
    int rc = hit(ff->owner, 1, 0);
    if (rc == -1) {
        if (ff->owner->track)
            remember(ff, buf, n / 2, off);
        ff->inner->io->pwrite(ff->inner, buf, n / 2, off);
        return injected(SOP_IOERR, "short write", file->path);
    }
    if (rc)
        return injected(rc, "write", file->path);
    if (ff->owner->track)
        remember(ff, buf, n, off);
    return ff->inner->io->pwrite(ff->inner, buf, n, off);
}

static int f_sync(sop_file *file)
{
    ffile *ff = (ffile *)file;
    int rc = hit(ff->owner, 0, 1);
    if (rc)
        return injected(SOP_IOERR, "fsync", file->path);
    rc = ff->inner->io->sync(ff->inner);
    if (rc == SOP_OK)
        drop_undos(ff);
    return rc;
}

static int f_truncate(sop_file *file, uint64_t size)
{
    ffile *ff = (ffile *)file;
    int rc = hit(ff->owner, 1, 0);
    if (rc)
        return injected(rc == -1 ? SOP_IOERR : rc, "truncate", file->path);
    if (ff->owner->track) {
        /* remember the cut bytes so a crash can bring them back */
        uint64_t cur = 0;
        ff->inner->io->size(ff->inner, &cur);
        if (size < cur) {
            undo *u = sop_calloc(1, sizeof *u);
            if (u) {
                u->off = size;
                u->len = 0;
                u->old_size = cur;
                u->old_len = (size_t)(cur - size);
                u->old = sop_malloc(u->old_len);
                size_t got = 0;
                if (u->old)
                    ff->inner->io->pread(ff->inner, u->old, u->old_len, size, &got);
                u->next = ff->undos;
                ff->undos = u;
            }
        }
    }
    return ff->inner->io->truncate(ff->inner, size);
}

static int f_size(sop_file *file, uint64_t *size)
{
    ffile *ff = (ffile *)file;
    return ff->inner->io->size(ff->inner, size);
}

static int f_lock(sop_file *file, int exclusive, uint64_t deadline_ns)
{
    ffile *ff = (ffile *)file;
    int rc = ff->inner->io->lock(ff->inner, exclusive, deadline_ns);
    if (rc == SOP_OK && exclusive && ff->owner->on_lock)
        ff->owner->on_lock(ff->owner->on_lock_arg, file->path);
    return rc;
}

static int f_unlock(sop_file *file)
{
    ffile *ff = (ffile *)file;
    return ff->inner->io->unlock(ff->inner);
}

/* ---- io methods */
static int f_open(const sop_io *io, const char *path, int flags, sop_file **out)
{
    io_fault *f = io->arg;
    *out = NULL;
    if (hit(f, 0, 0))
        return injected(SOP_IOERR, "open", path);
    sop_file *inner;
    int rc = f->inner->open(f->inner, path, flags, &inner);
    if (rc)
        return rc;
    ffile *ff = sop_calloc(1, sizeof *ff);
    char *p = sop_strdup(path);
    if (!ff || !p) {
        inner->io->close(inner);
        sop_free(ff);
        sop_free(p);
        return SOP_NOMEM;
    }
    ff->base.io = io;
    ff->base.path = p;
    ff->inner = inner;
    ff->owner = f;
    ff->next = f->files;
    f->files = ff;
    *out = &ff->base;
    return SOP_OK;
}

#define PASS(name, call, is_write)                                   \
    if (hit(f, is_write, 0))                                         \
        return injected(is_write ? SOP_IOERR : SOP_IOERR, name, path); \
    return call

static int f_unlink(const sop_io *io, const char *path)
{
    io_fault *f = io->arg;
    PASS("unlink", f->inner->unlink(f->inner, path), 1);
}
static int f_rename(const sop_io *io, const char *from, const char *to)
{
    io_fault *f = io->arg;
    const char *path = from;
    PASS("rename", f->inner->rename(f->inner, from, to), 1);
}
static int f_mkdir(const sop_io *io, const char *path)
{
    io_fault *f = io->arg;
    PASS("mkdir", f->inner->mkdir(f->inner, path), 1);
}
static int f_sync_dir(const sop_io *io, const char *path)
{
    io_fault *f = io->arg;
    if (hit(f, 0, 1))
        return injected(SOP_IOERR, "fsync directory", path);
    return f->inner->sync_dir(f->inner, path);
}
static int f_list(const sop_io *io, const char *dir, int (*fn)(void *, const char *), void *arg)
{
    io_fault *f = io->arg;
    const char *path = dir;
    PASS("list", f->inner->list(f->inner, dir, fn, arg), 0);
}
static int f_exists(const sop_io *io, const char *path)
{
    io_fault *f = io->arg;
    if (hit(f, 0, 0))
        return -injected(SOP_IOERR, "stat", path);
    return f->inner->exists(f->inner, path);
}
static int f_fs_type(const sop_io *io, const char *path, char *out, size_t n)
{
    io_fault *f = io->arg;
    return f->inner->fs_type(f->inner, path, out, n);
}

static int f_lock_range(sop_file *file, uint64_t off, uint64_t len)
{
    ffile *ff = (ffile *)file;
    return ff->inner->io->lock_range(ff->inner, off, len);
}
static int f_range_locked(sop_file *file, uint64_t off, uint64_t len)
{
    ffile *ff = (ffile *)file;
    return ff->inner->io->range_locked(ff->inner, off, len);
}

static int f_alloc(sop_file *file, uint64_t off, uint64_t len)
{
    ffile *ff = (ffile *)file;
    int rc = hit(ff->owner, 1, 2);
    if (rc)
        return injected(rc == -1 ? SOP_IOERR : rc, "allocate", file->path);
    return ff->inner->io->alloc(ff->inner, off, len);
}

static int f_same_file(sop_file *file, const char *path)
{
    ffile *ff = (ffile *)file;
    return ff->inner->io->same_file(ff->inner, path);
}

io_fault *io_fault_new(const sop_io *inner)
{
    io_fault *f = sop_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->inner = inner;
    f->io = (sop_io){1,       f,        f_open,     f_close,  f_pread,  f_pwrite,
                     f_sync,  f_truncate, f_size,   f_lock,   f_unlock, f_unlink,
                     f_rename, f_mkdir, f_sync_dir, f_list,   f_exists, f_fs_type,
                     f_lock_range, f_range_locked, f_alloc, f_same_file};
    return f;
}

void io_fault_free(io_fault *f)
{
    sop_free(f);
}

const sop_io *io_fault_io(io_fault *f)
{
    return &f->io;
}

void io_fault_arm(io_fault *f, long n, int kind, int persistent)
{
    f->countdown = n;
    f->kind = kind;
    f->persistent = persistent;
    f->fired = 0;
    f->calls = 0;
}

int io_fault_fired(const io_fault *f)
{
    return f->fired;
}

long io_fault_calls(const io_fault *f)
{
    return f->calls;
}

void io_fault_on_lock(io_fault *f, void (*fn)(void *arg, const char *path), void *arg)
{
    f->on_lock = fn;
    f->on_lock_arg = arg;
}

void io_fault_track(io_fault *f, int on)
{
    f->track = on;
}

int io_fault_crash(io_fault *f, int torn)
{
    for (ffile *ff = f->files; ff; ff = ff->next) {
        sop_file *in = ff->inner;
        if (torn && ff->undos) {
            /* earlier unsynced writes reached the disk; the newest one only
             * half */
            undo *u = ff->undos;
            size_t half = u->len / 2;
            if (u->off + half < u->old_size && u->old_len > half)
                in->io->pwrite(in, u->old + half, u->old_len - half, u->off + half);
            if (u->off + u->len > u->old_size)
                in->io->truncate(in, SOP_MAX(u->old_size, u->off + half));
        } else {
            for (undo *u = ff->undos; u; u = u->next) {
                if (u->old_len)
                    in->io->pwrite(in, u->old, u->old_len, u->off);
                in->io->truncate(in, u->old_size);
            }
        }
        drop_undos(ff);
    }
    return SOP_OK;
}
