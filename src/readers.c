/*
 * readers.c - the table shared by every process that has one database open:
 * each process's oldest snapshot, so space is reclaimed only when no
 * process's snapshot can read it, and the log epoch, so a process starting a
 * transaction knows without reading the log whether another process
 * committed since it last looked.
 *
 * sop.readers: READER_SLOTS slots of 16 bytes, {u64 oldest snapshot sequence
 * number of the owning process (with no snapshot open: the last commit it
 * applied, since it must still read everything after it; 0 once closed),
 * u32 pid, u32 reserved}, then at
 * READERS_EPOCH_OFF the u64 log epoch (all little-endian).  A process owns
 * one slot, holding an open-file-description lock on its bytes for as long
 * as the database is open; the kernel drops the lock when the process exits
 * or is killed, so a slot whose lock nobody holds is ignored, whatever it
 * says.  Nothing ever needs cleaning by hand.
 *
 * No signal, whatever happens to the file.  The table is read and written
 * only with pread/pwrite, never through a mapping.  A mapped file faults
 * (SIGBUS) when a page is touched that the file no longer covers (someone
 * truncated it) or that the file system cannot back (a sparse page on a
 * full disk), and no check can close that race: a size read by fstat is
 * stale the moment after, and truncate(1) takes none of our locks.  With
 * pread/pwrite the same events are return values: a short read (the file
 * was cut) or ENOSPC.  The cost is one system call where a memory access
 * did: reading the epoch at begin (pread of 8 bytes) and publishing a
 * snapshot (pwrite of 16), both about a microsecond.  The table's blocks
 * are allocated at open (io->alloc: fallocate), so those writes do not run
 * out of space later; a full file system fails the open with SOP_NOSPACE
 * and leaves nothing a later open cannot use.
 *
 * A table found cut short (a read of the epoch comes back short) is grown
 * back with its blocks allocated, this process's slot is written again, and
 * the process catches up with the log, as if the epoch had moved.  Slots of
 * other processes in the cut part read as empty until their owners publish
 * again (each does at its next oldest snapshot); meanwhile a checkpoint may
 * delete a log file such a process still reads, which it keeps reading
 * through its open descriptor.  The epoch is the sequence number of the
 * last batch appended (at least one more than before): it never comes back
 * to a value it had before the cut, so no process takes the regrown table's
 * epoch for one it caught up at.
 *
 * A process writes its slot before it catches up with the log for a new
 * oldest snapshot (the value is never above the snapshot it then takes), and
 * clears or raises it when its oldest snapshot ends.  A log file is deleted
 * only when every live slot is at or past the checkpoint that stopped
 * referring to it (reclaim.c).
 *
 * The epoch moves on, under the cross-process commit lock, after every batch
 * a process appends to the log and before its commit returns.  A process
 * remembers the epoch it last caught up at (read before catching up); while
 * the epoch still says that, nothing new is in the log (readers_log_moved).
 * A process that dies between writing a batch and moving the epoch leaves a
 * commit that was never acknowledged; others see it at the next epoch move.
 */
#include <stdio.h>
#include <unistd.h>

#include "core.h"

#define SLOT_BYTES 16
#define READERS_EPOCH_OFF ((uint64_t)READER_SLOTS * SLOT_BYTES)
#define READERS_BYTES (READERS_EPOCH_OFF + 64)

static int publish_now(sop_env *env, uint64_t seq);

int readers_open(sop_env *env)
{
    char *p = sop_path_join(env->path, "sop.readers");
    if (!p)
        return sop_report(SOP_NOMEM, "readers path");
    int rc = env->io->open(env->io, p, SOP_IO_CREATE, &env->readers_file);
    sop_free(p);
    if (rc != SOP_OK)
        return rc;
    sop_file *f = env->readers_file;
    if ((rc = f->io->alloc(f, 0, READERS_BYTES)) != SOP_OK)
        return rc;
    for (uint32_t i = 0; i < READER_SLOTS; i++) {
        rc = f->io->lock_range(f, (uint64_t)i * SLOT_BYTES, SLOT_BYTES);
        if (rc == SOP_BUSY)
            continue;
        if (rc != SOP_OK)
            return rc;
        env->reader_slot = (int)i;
        env->reader_pid = (uint32_t)getpid();
        return publish_now(env, readers_idle_value(env)); /* whatever a dead owner left */
    }
    return sop_report(SOP_BUSY, "%s: more than %d processes have the database open", env->path,
                      READER_SLOTS);
}

void readers_close(sop_env *env)
{
    if (env->readers_file) {
        if (env->reader_slot >= 0 && publish_now(env, 0) != SOP_OK)
            sop_clear_errmsg(); /* the slot's lock goes with the file: it is ignored now */
        env->readers_file->io->close(env->readers_file);
        env->readers_file = NULL;
    }
}

/* Write seq into our slot (env->mu held, or open/close). */
static int publish_now(sop_env *env, uint64_t seq)
{
    if (!env->readers_file || env->reader_slot < 0)
        return SOP_OK;
    __atomic_store_n(&env->reader_pub, seq, __ATOMIC_RELAXED);
    unsigned char b[SLOT_BYTES];
    sop_put64(b, seq);
    sop_put32(b + 8, env->reader_pid);
    sop_put32(b + 12, 0);
    return env->readers_file->io->pwrite(env->readers_file, b, sizeof b,
                                         (uint64_t)env->reader_slot * SLOT_BYTES);
}

int readers_publish(sop_env *env, uint64_t seq)
{
    /* the slot already says it (a process reading while nobody commits
     * writes nothing per transaction) */
    if (__atomic_load_n(&env->reader_pub, __ATOMIC_RELAXED) == seq && env->reader_slot >= 0)
        return SOP_OK;
    return publish_now(env, seq);
}

uint64_t readers_idle_value(sop_env *env)
{
    return __atomic_load_n(&env->seq_last, __ATOMIC_RELAXED);
}

int readers_min(sop_env *env, uint64_t *min_seq)
{
    unsigned char buf[READER_SLOTS * SLOT_BYTES];
    size_t got = 0;
    sop_file *f = env->readers_file;
    if (!f)
        return SOP_OK;
    int rc = f->io->pread(f, buf, sizeof buf, 0, &got);
    if (rc != SOP_OK)
        return rc;
    /* a cut table has fewer slots: the missing ones read as empty */
    for (size_t i = 0; i + SLOT_BYTES <= got; i += SLOT_BYTES) {
        if ((int)(i / SLOT_BYTES) == env->reader_slot)
            continue;
        uint64_t seq = sop_get64(buf + i);
        if (!seq || seq >= *min_seq)
            continue;
        int live = f->io->range_locked(f, i, SLOT_BYTES);
        if (live < 0)
            return -live;
        if (live)
            *min_seq = seq; /* a live process still reads at seq */
    }
    return SOP_OK;
}

/* The table was found cut short: grow it back (blocks allocated) and write
 * this process's slot again.  Failure is not this caller's: the table is
 * then used as it is, and the next look repairs it. */
static void regrow(sop_env *env)
{
    sop_file *f = env->readers_file;
    if (f->io->alloc(f, 0, READERS_BYTES) != SOP_OK) {
        sop_clear_errmsg();
        return;
    }
    pthread_mutex_lock(&env->mu); /* readers_publish's callers hold it */
    if (publish_now(env, __atomic_load_n(&env->reader_pub, __ATOMIC_RELAXED)) != SOP_OK)
        sop_clear_errmsg();
    pthread_mutex_unlock(&env->mu);
}

/* Is the table this process reads still the file named sop.readers?  A
 * table deleted or replaced while processes run splits them: processes that
 * open later write their epochs into the new one, and this one would never
 * see them move.  Looked at about every 50 ms (a stat, so not on every
 * begin); once replaced, the epoch is ignored for good: every begin reads
 * the log (always correct, only slower), and reclamation in other processes
 * no longer sees this process's snapshots, so a log file it has not read
 * may go: it then fails with SOP_POISONED (env.c, catch_up) rather than
 * answer from a stale state. */
static int table_replaced(sop_env *env)
{
    uint64_t now = sop_mono_ns(), last = __atomic_load_n(&env->readers_checked_ns, __ATOMIC_RELAXED);
    if (now - last < 50000000ull)
        return 0;
    __atomic_store_n(&env->readers_checked_ns, now, __ATOMIC_RELAXED);
    char *p = sop_path_join(env->path, "sop.readers");
    int same = p ? env->readers_file->io->same_file(env->readers_file, p) : 1;
    sop_free(p);
    if (same < 0) {
        sop_clear_errmsg();
        return 1; /* cannot tell: catch up */
    }
    if (!same) {
        __atomic_store_n(&env->readers_stale, 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

int readers_log_moved(sop_env *env, uint64_t *epoch)
{
    *epoch = 0;
    sop_file *f = env->readers_file;
    if (!f || __atomic_load_n(&env->readers_stale, __ATOMIC_RELAXED))
        return 1;
    unsigned char b[8];
    size_t got = 0;
    if (f->io->pread(f, b, sizeof b, READERS_EPOCH_OFF, &got) != SOP_OK) {
        sop_clear_errmsg();
        return 1; /* cannot tell: catch up */
    }
    if (got < sizeof b) {
        regrow(env);
        return 1;
    }
    *epoch = sop_get64(b);
    if (*epoch != __atomic_load_n(&env->seen_epoch, __ATOMIC_ACQUIRE))
        return 1;
    return table_replaced(env);
}

void readers_caught_up(sop_env *env, uint64_t epoch)
{
    /* commit_mu held.  Epochs never repeat, so an older epoch stored over a
     * newer one noted meanwhile costs one needless catch-up, never a missed
     * batch. */
    __atomic_store_n(&env->seen_epoch, epoch, __ATOMIC_RELEASE);
}

int readers_log_appended(sop_env *env)
{
    /* commit_mu and the cross-process commit lock held: nobody else moves
     * the epoch now, and this process has read the whole log before its
     * append, so it is caught up at the new epoch.  The new epoch is the
     * batch's sequence number, or one past the old epoch if that is more
     * (a table written by an older version counted appends): above every
     * value the epoch had, also after the table was cut and regrown. */
    sop_file *f = env->readers_file;
    if (!f)
        return SOP_OK;
    unsigned char b[8];
    size_t got = 0;
    int rc = f->io->pread(f, b, sizeof b, READERS_EPOCH_OFF, &got);
    if (rc != SOP_OK)
        return rc;
    uint64_t e = got == sizeof b ? sop_get64(b) + 1 : 0;
    if (got < sizeof b)
        regrow(env);
    if (e < env->seq_last)
        e = env->seq_last;
    sop_put64(b, e);
    if ((rc = f->io->pwrite(f, b, sizeof b, READERS_EPOCH_OFF)) != SOP_OK)
        return rc;
    readers_caught_up(env, e);
    return SOP_OK;
}
