/*
 * readers.c - the snapshot table shared by every process that has one
 * database open, so space is reclaimed only when no process's snapshot can
 * read it.
 *
 * sop.readers holds READER_SLOTS slots of 16 bytes: {u64 oldest snapshot
 * sequence number of the owning process (0 = none), u32 pid, u32 reserved}.
 * A process owns one slot, holding an open-file-description lock on its
 * bytes for as long as the database is open; the kernel drops the lock when
 * the process exits or is killed, so a slot whose lock nobody holds is
 * ignored, whatever it says.  Nothing ever needs cleaning by hand.
 *
 * A process writes its slot before it catches up with the log for a new
 * oldest snapshot (the value is never above the snapshot it then takes), and
 * clears or raises it when its oldest snapshot ends.  A log file is deleted
 * only when every live slot is at or past the checkpoint that stopped
 * referring to it (reclaim.c).
 */
#include <stdio.h>
#include <unistd.h>

#include "core.h"

#define SLOT_BYTES 16

int readers_open(sop_env *env)
{
    char *p = sop_path_join(env->path, "sop.readers");
    if (!p)
        return sop_report(SOP_NOMEM, "readers path");
    int rc = env->io->open(env->io, p, SOP_IO_CREATE, &env->readers_file);
    sop_free(p);
    if (rc != SOP_OK)
        return rc;
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
        env->readers_file->io->close(env->readers_file);
        env->readers_file = NULL;
    }
}

int readers_publish(sop_env *env, uint64_t seq)
{
    if (!env->readers_file || env->reader_slot < 0)
        return SOP_OK;
    unsigned char b[SLOT_BYTES];
    sop_put64(b, seq);
    sop_put32(b + 8, env->reader_pid);
    sop_put32(b + 12, 0);
    return env->readers_file->io->pwrite(env->readers_file, b, sizeof b,
                                         (uint64_t)env->reader_slot * SLOT_BYTES);
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
