/*
 * io.h - the I/O layer.  Every file access of the engine (open, read, write,
 * sync, truncate, rename, directory sync, locks) goes through a sop_io
 * method table, so tests can swap in fault injection (fail the Nth call with
 * EIO/ENOSPC, short writes, failed fsync) and crash simulation.
 * Methods return SOP_OK or an SOP_IOERR/SOP_NOSPACE code with a detail
 * message naming the file and the OS error.
 */
#ifndef SOP_IO_H
#define SOP_IO_H

#include "sop_int.h"

#define SOP_IO_CREATE 0x1
#define SOP_IO_READONLY 0x2
/* open may return something that is not a regular file (a device such as
 * /dev/urandom); without it, a FIFO, device, socket or folder under a
 * database file's name is refused with SOP_IOERR, and opening never blocks */
#define SOP_IO_DEVICE 0x4

typedef struct sop_io sop_io;
typedef struct sop_file {
    const sop_io *io; /* the table that opened it */
    char *path;       /* owned */
} sop_file;

struct sop_io {
    int version; /* 1 */
    void *arg;   /* implementation data (fault injectors keep their state here) */
    int (*open)(const sop_io *io, const char *path, int flags, sop_file **out);
    int (*close)(sop_file *f);
    /* Read exactly n bytes at off; a short read (end of file) gives *got < n, SOP_OK. */
    int (*pread)(sop_file *f, void *buf, size_t n, uint64_t off, size_t *got);
    /* Write all n bytes at off. */
    int (*pwrite)(sop_file *f, const void *buf, size_t n, uint64_t off);
    int (*sync)(sop_file *f); /* data (and size) durable */
    int (*truncate)(sop_file *f, uint64_t size);
    int (*size)(sop_file *f, uint64_t *size);
    /* Advisory whole-file lock (flock), exclusive or shared.  When another
     * open file holds it: deadline_ns 0 gives SOP_BUSY at once; otherwise
     * the call retries until sop_mono_ns() passes deadline_ns, then gives
     * SOP_BUSY (UINT64_MAX: no bound).  Uncontended, it is one flock call. */
    int (*lock)(sop_file *f, int exclusive, uint64_t deadline_ns);
    int (*unlock)(sop_file *f);
    int (*unlink)(const sop_io *io, const char *path);
    int (*rename)(const sop_io *io, const char *from, const char *to);
    int (*mkdir)(const sop_io *io, const char *path); /* SOP_OK if it exists */
    int (*sync_dir)(const sop_io *io, const char *path);
    /* Call fn(arg, name) for each entry of dir (not "." / ".."). */
    int (*list)(const sop_io *io, const char *dir, int (*fn)(void *arg, const char *name), void *arg);
    /* 1 if path exists, 0 if not, negative -rc on error. */
    int (*exists)(const sop_io *io, const char *path);
    /* Name of the file system type of path (e.g. "ext4", "nfs"), into out. */
    int (*fs_type)(const sop_io *io, const char *path, char *out, size_t n);
    /* Byte-range lock owned by this open file (not the process), released by
     * the kernel when the owner dies: SOP_OK, or SOP_BUSY if someone else
     * holds a conflicting lock.  Never waits. */
    int (*lock_range)(sop_file *f, uint64_t off, uint64_t len);
    /* 1 if another open file holds a lock on part of the range, 0 if not,
     * negative -rc on error. */
    int (*range_locked)(sop_file *f, uint64_t off, uint64_t len);
    /* Give bytes [off, off+len) disk blocks (fallocate; the file grows to
     * off+len if shorter), so later writes there cannot fail for lack of
     * space: SOP_NOSPACE when the file system is full.  Where the file
     * system cannot allocate ahead, the part beyond the end of the file is
     * written with zeros instead. */
    int (*alloc)(sop_file *f, uint64_t off, uint64_t len);
    /* Is f still the file named path (same device and inode)?  1 yes, 0 no
     * (deleted, or replaced by another file), negative -rc on error. */
    int (*same_file)(sop_file *f, const char *path);
};

/** The POSIX implementation (static storage). */
const sop_io *sop_io_posix(void);

/** Join dir and name into a malloc'd path (NULL on OOM). */
char *sop_path_join(const char *dir, const char *name);

#endif
