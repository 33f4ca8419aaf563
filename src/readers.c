/*
 * readers.c - the table shared by every process that has one database open:
 * each process's oldest snapshot, so space is reclaimed only when no
 * process's snapshot can read it, and a counter of appends to the log, so a
 * process starting a transaction knows without reading the log whether
 * another process committed since it last looked.
 *
 * sop.readers: READER_SLOTS slots of 16 bytes, {u64 oldest snapshot sequence
 * number of the owning process (0 = none), u32 pid, u32 reserved}, then at
 * READERS_EPOCH_OFF the u64 log epoch (all little-endian).  A process owns
 * one slot, holding an open-file-description lock on its bytes for as long
 * as the database is open; the kernel drops the lock when the process exits
 * or is killed, so a slot whose lock nobody holds is ignored, whatever it
 * says.  Nothing ever needs cleaning by hand.
 *
 * The file is mapped shared into every process (io->map), so publishing a
 * snapshot or reading the epoch is a memory access, not a system call; where
 * mapping fails the same bytes are read and written with pread/pwrite.
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
#define READERS_MAP_BYTES ((size_t)READERS_EPOCH_OFF + 64)

/* little-endian u64 at p, read and written whole (p is 8-byte aligned) */
static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE);
    return sop_get64((const unsigned char *)&v);
}

static void store_le64(unsigned char *p, uint64_t x)
{
    uint64_t v;
    sop_put64((unsigned char *)&v, x);
    __atomic_store_n((uint64_t *)(void *)p, v, __ATOMIC_RELEASE);
}

int readers_open(sop_env *env)
{
    char *p = sop_path_join(env->path, "sop.readers");
    if (!p)
        return sop_report(SOP_NOMEM, "readers path");
    int rc = env->io->open(env->io, p, SOP_IO_CREATE, &env->readers_file);
    sop_free(p);
    if (rc != SOP_OK)
        return rc;
    void *map = NULL;
    if (env->readers_file->io->map(env->readers_file, READERS_MAP_BYTES, &map) == SOP_OK)
        env->readers_map = map;
    else
        sop_clear_errmsg(); /* the table still works through pread/pwrite */
    for (uint32_t i = 0; i < READER_SLOTS; i++) {
        rc = env->readers_file->io->lock_range(env->readers_file, (uint64_t)i * SLOT_BYTES, SLOT_BYTES);
        if (rc == SOP_BUSY)
            continue;
        if (rc != SOP_OK)
            return rc;
        env->reader_slot = (int)i;
        env->reader_pid = (uint32_t)getpid();
        return readers_publish(env, 0);
    }
    return sop_report(SOP_BUSY, "%s: more than %d processes have the database open", env->path,
                      READER_SLOTS);
}

void readers_close(sop_env *env)
{
    if (env->readers_file) {
        if (env->reader_slot >= 0)
            readers_publish(env, 0);
        if (env->readers_map)
            env->readers_file->io->unmap(env->readers_file, env->readers_map, READERS_MAP_BYTES);
        env->readers_map = NULL;
        env->readers_file->io->close(env->readers_file);
        env->readers_file = NULL;
    }
}

int readers_publish(sop_env *env, uint64_t seq)
{
    if (!env->readers_file || env->reader_slot < 0)
        return SOP_OK;
    uint64_t off = (uint64_t)env->reader_slot * SLOT_BYTES;
    if (env->readers_map) {
        unsigned char *slot = env->readers_map + off;
        unsigned char pid[8];
        sop_put32(pid, env->reader_pid);
        sop_put32(pid + 4, 0);
        store_le64(slot + 8, sop_get64(pid));
        store_le64(slot, seq);
        return SOP_OK;
    }
    unsigned char b[SLOT_BYTES];
    sop_put64(b, seq);
    sop_put32(b + 8, env->reader_pid);
    sop_put32(b + 12, 0);
    return env->readers_file->io->pwrite(env->readers_file, b, sizeof b, off);
}

int readers_min(sop_env *env, uint64_t *min_seq)
{
    unsigned char buf[READER_SLOTS * SLOT_BYTES];
    size_t got = 0;
    sop_file *f = env->readers_file;
    if (!f)
        return SOP_OK;
    if (env->readers_map) {
        for (size_t i = 0; i < sizeof buf; i += 8)
            store_le64(buf + i, load_le64(env->readers_map + i));
        got = sizeof buf;
    } else {
        int rc = f->io->pread(f, buf, sizeof buf, 0, &got);
        if (rc != SOP_OK)
            return rc;
    }
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

/* The log epoch now, or 0 when it cannot be read without I/O. */
static uint64_t epoch_now(const sop_env *env)
{
    return env->readers_map ? load_le64(env->readers_map + READERS_EPOCH_OFF) : 0;
}

int readers_log_moved(sop_env *env, uint64_t *epoch)
{
    *epoch = epoch_now(env);
    if (!env->readers_map)
        return 1; /* no cheap way to tell: catch up every time */
    return *epoch != __atomic_load_n(&env->seen_epoch, __ATOMIC_ACQUIRE);
}

void readers_caught_up(sop_env *env, uint64_t epoch)
{
    /* commit_mu held: a later epoch noted meanwhile stays */
    if (epoch > __atomic_load_n(&env->seen_epoch, __ATOMIC_RELAXED))
        __atomic_store_n(&env->seen_epoch, epoch, __ATOMIC_RELEASE);
}

int readers_log_appended(sop_env *env)
{
    /* commit_mu and the cross-process commit lock held: nobody else moves
     * the epoch now, and this process has read the whole log before its
     * append, so it is caught up at the new epoch */
    sop_file *f = env->readers_file;
    if (!f)
        return SOP_OK;
    uint64_t e;
    if (env->readers_map) {
        e = load_le64(env->readers_map + READERS_EPOCH_OFF) + 1;
        store_le64(env->readers_map + READERS_EPOCH_OFF, e);
    } else {
        unsigned char b[8] = {0};
        size_t got = 0;
        int rc = f->io->pread(f, b, sizeof b, READERS_EPOCH_OFF, &got);
        if (rc != SOP_OK)
            return rc;
        e = (got == sizeof b ? sop_get64(b) : 0) + 1;
        sop_put64(b, e);
        if ((rc = f->io->pwrite(f, b, sizeof b, READERS_EPOCH_OFF)) != SOP_OK)
            return rc;
    }
    readers_caught_up(env, e);
    return SOP_OK;
}
