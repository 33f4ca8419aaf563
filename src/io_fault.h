/*
 * io_fault.h - a wrapping I/O layer for tests: fails the Nth call (EIO,
 * ENOSPC, a short write, a failed fsync), counts calls, and simulates a crash
 * by rolling every file back to its last synced content (optionally keeping
 * a torn prefix of the last unsynced write).
 */
#ifndef SOP_IO_FAULT_H
#define SOP_IO_FAULT_H

#include "io.h"

#define FAULT_EIO 1    /* the call fails with SOP_IOERR */
#define FAULT_ENOSPC 2 /* writes fail with SOP_NOSPACE (other calls: EIO) */
#define FAULT_SHORT 3  /* a write stores only half its bytes, then fails */
#define FAULT_FSYNC 4  /* only sync calls count; the Nth fails */
#define FAULT_ALLOC 5  /* only alloc calls count; the Nth fails with SOP_NOSPACE */

typedef struct io_fault io_fault;

io_fault *io_fault_new(const sop_io *inner);
void io_fault_free(io_fault *f);
const sop_io *io_fault_io(io_fault *f);
/* Fail call number n (1 = the next counted call) with `kind`; persistent:
 * every later call fails too (a dead disk).  n = 0 disarms. */
void io_fault_arm(io_fault *f, long n, int kind, int persistent);
int io_fault_fired(const io_fault *f);
long io_fault_calls(const io_fault *f); /* counted calls since arming */
/* Track writes so that io_fault_crash can undo what was not synced. */
void io_fault_track(io_fault *f, int on);
/* Power loss: every file goes back to its last synced state; when torn,
 * the first half of the last unsynced write survives. */
int io_fault_crash(io_fault *f, int torn);
/* Call fn(arg, path) after every exclusive lock taken through this layer
 * (e.g. to stop the process while it holds the commit lock); NULL: none. */
void io_fault_on_lock(io_fault *f, void (*fn)(void *arg, const char *path), void *arg);

#endif
