/*
 * reclaim.c - keeping the log bounded: checkpoints, compaction of log files
 * whose blobs are mostly dead, and deletion of files nothing refers to.
 *
 * Checkpoint file sop.ckpt (written as sop.ckpt.tmp, fsynced, renamed):
 *   0  8  magic "SOPCKPT1"        40  8  next lid
 *   8  4  format version           48  4  next store id
 *  12  4  reserved                 52  4  catalog ops length C
 *  16 16  database id              56  8  registry entries R
 *  32  4  replay file              64  8  checkpoint commit sequence
 *  36  4  (reserved)               72  8  replay offset
 *  80  C  catalog ops (CREATE + TOUCH per store, catalog.h)
 *  ..  R x {lid u64, location u64, length u32}
 *  ..  4  CRC-32C of everything before it
 * Recovery loads the checkpoint, then replays log batches from the replay
 * position.  A log file can be deleted once it is older than the replay
 * position, the checkpoint does not reference it, and no open snapshot
 * (no version in the registry) does.
 *
 * Compaction copies the live blobs of a mostly-dead file to the end of the
 * log in a batch of its own (same lids, no catalog change); the old copies
 * die when no snapshot needs them.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>

#include "core.h"

#define CKPT_VERSION 1
#define CKPT_HEADER 80
static const unsigned char ckpt_magic[8] = {'S', 'O', 'P', 'C', 'K', 'P', 'T', '1'};

/* ------------------------------------------------------------- loading */
int ckpt_load(sop_env *env, int *found)
{
    *found = 0;
    char *p = sop_path_join(env->path, "sop.ckpt");
    if (!p)
        return sop_report(SOP_NOMEM, "checkpoint path");
    int ex = env->io->exists(env->io, p);
    if (ex <= 0) {
        sop_free(p);
        return ex < 0 ? -ex : SOP_OK;
    }
    sop_file *f = NULL;
    unsigned char *buf = NULL;
    uint64_t size = 0;
    size_t got = 0;
    int rc = env->io->open(env->io, p, SOP_IO_READONLY, &f);
    if (rc == SOP_OK)
        rc = f->io->size(f, &size);
    if (rc == SOP_OK && (size < CKPT_HEADER + 4 || size > ((uint64_t)1 << 40)))
        rc = SOP_CORRUPT_AT("%s: checkpoint has an impossible size %llu", p, (unsigned long long)size);
    if (rc == SOP_OK && !(buf = sop_malloc((size_t)size)))
        rc = sop_report(SOP_NOMEM, "checkpoint");
    if (rc == SOP_OK)
        rc = f->io->pread(f, buf, (size_t)size, 0, &got);
    if (f)
        f->io->close(f);
    if (rc == SOP_OK && got != size)
        rc = SOP_CORRUPT_AT("%s: checkpoint truncated", p);
    if (rc == SOP_OK && (memcmp(buf, ckpt_magic, 8) ||
                         sop_get32(buf + size - 4) != sop_crc32c(0, buf, (size_t)size - 4)))
        rc = SOP_CORRUPT_AT("%s: checkpoint checksum mismatch", p);
    if (rc == SOP_OK && sop_get32(buf + 8) != CKPT_VERSION)
        rc = sop_report(SOP_VERSION, "%s: checkpoint format version %u", p, sop_get32(buf + 8));
    if (rc != SOP_OK)
        goto out;
    memcpy(env->dbid, buf + 16, 16);
    env->ckpt_file = sop_get32(buf + 32);
    env->next_lid = sop_get64(buf + 40);
    env->next_store_id = sop_get32(buf + 48);
    uint32_t clen = sop_get32(buf + 52);
    uint64_t nreg = sop_get64(buf + 56);
    env->ckpt_seq = sop_get64(buf + 64);
    env->ckpt_off = sop_get64(buf + 72);
    if (clen > size - CKPT_HEADER - 4 || nreg != (size - CKPT_HEADER - 4 - clen) / 20 ||
        (size - CKPT_HEADER - 4 - clen) % 20 || !env->ckpt_file || env->ckpt_off < LOG_FILE_HEADER) {
        rc = SOP_CORRUPT_AT("%s: checkpoint layout is inconsistent", p);
        goto out;
    }
    catalog *nc;
    if ((rc = cat_apply(env->seq_cat, env->ckpt_seq, buf + CKPT_HEADER, clen, &nc)) != SOP_OK)
        goto out;
    cat_unref(env->seq_cat);
    env->seq_cat = nc;
    __atomic_store_n(&env->seq_last, env->ckpt_seq, __ATOMIC_RELAXED);
    const unsigned char *r = buf + CKPT_HEADER + clen;
    for (uint64_t i = 0; i < nreg && rc == SOP_OK; i++, r += 20) {
        uint64_t loc = sop_get64(r + 8);
        uint32_t fno = LOC_FILE(loc);
        if (!loc || !fno || (rc = files_reserve_public(env, fno)) != SOP_OK) {
            if (rc == SOP_OK)
                rc = SOP_CORRUPT_AT("%s: checkpoint entry %llu has no location", p, (unsigned long long)i);
            break;
        }
        env->file_ckref[fno] = 1;
        rc = env_put_version(env, sop_get64(r), env->ckpt_seq, loc, sop_get32(r + 16), NULL);
    }
    if (rc == SOP_OK)
        *found = 1;
out:
    sop_free(buf);
    sop_free(p);
    return rc;
}

/* ------------------------------------------------------------- writing */
typedef struct capture {
    sbuf regs;
    unsigned char *refs; /* files referenced */
    uint32_t nrefs;
} capture;

static int capture_entry(void *arg, uint64_t lid, uint64_t loc, uint32_t len)
{
    capture *c = arg;
    sbuf_u64(&c->regs, lid);
    sbuf_u64(&c->regs, loc);
    sbuf_u32(&c->regs, len);
    if (LOC_FILE(loc) < c->nrefs)
        c->refs[LOC_FILE(loc)] = 1;
    return c->regs.err;
}

/* Delete log files nothing needs any more (ckpt_gate held): unreferenced by
 * this process's versions and by the checkpoint, and every snapshot of every
 * process is at or past the first checkpoint that stopped referring to the
 * file (such a snapshot reads only newer versions, which live elsewhere). */
static void delete_dead_files(sop_env *env)
{
    pthread_mutex_lock(&env->mu);
    uint64_t min_seq = env->active_head ? env->active_head->snap : UINT64_MAX;
    pthread_mutex_unlock(&env->mu);
    if (readers_min(env, &min_seq) != SOP_OK)
        return;
    for (;;) {
        pthread_rwlock_wrlock(&env->files_lock);
        uint32_t f = env->first_file;
        int dead = f && f < env->ckpt_file && f < env->cur_file && env->files[f] &&
                   !env->file_live[f] && !env->file_ckref[f] && env->file_dead_seq[f] &&
                   env->file_dead_seq[f] <= min_seq;
        sop_file *file = NULL;
        uint64_t size = 0;
        if (dead) {
            file = env->files[f];
            size = env->file_end[f];
            env->files[f] = NULL;
            __atomic_store_n(&env->first_file, f + 1, __ATOMIC_RELAXED); /* read under mu too */
        }
        pthread_rwlock_unlock(&env->files_lock);
        if (!dead)
            return;
        char *p = sop_strdup(file->path);
        file->io->close(file);
        if (p) {
            env->io->unlink(env->io, p);
            sop_free(p);
        }
        pthread_mutex_lock(&env->mu);
        env->log_bytes -= SOP_MIN(size, env->log_bytes);
        pthread_mutex_unlock(&env->mu);
    }
}

int ckpt_write(sop_env *env, uint64_t deadline_ns, int skip_if_busy)
{
    capture cap;
    memset(&cap, 0, sizeof cap);
    sbuf ops = {0}, out = {0};
    char *tmp = NULL, *dst = NULL;
    sop_file *f = NULL;
    int rc, flocked = 0;
    /* skip_if_busy: someone else is writing a checkpoint (or opening the
     * database) right now: theirs will do, do not wait */
    uint64_t ckpt_deadline = skip_if_busy ? 0 : deadline_ns;
    if (gate_enter(&env->ckpt_gate, ckpt_deadline) != SOP_OK)
        return sop_report(SOP_BUSY, "checkpoint of %s: another thread of this process is still writing one",
                          env->path);
    SOP_CHECK(env->ckpt_lock_file->io->lock(env->ckpt_lock_file, 1, ckpt_deadline));
    flocked = 1;

    /* capture a consistent state: caught up under the commit lock, copied
     * under commit_mu alone */
    SOP_CHECK(env_lock_commit(env, deadline_ns, "checkpoint"));
    rc = env_catch_up_locked(env);
    env->lock_file->io->unlock(env->lock_file);
    uint64_t seq = env->seq_last, off = env->log_end, next_lid = env->next_lid;
    uint32_t file = env->cur_file, next_store = env->next_store_id;
    cap.nrefs = env->nfiles_cap;
    cap.refs = sop_calloc(cap.nrefs, 1);
    if (rc == SOP_OK && !cap.refs)
        rc = sop_report(SOP_NOMEM, "checkpoint");
    if (rc == SOP_OK) {
        for (size_t i = 0; i < env->seq_cat->n; i++) {
            cat_op_create(&ops, env->seq_cat->e[i].def);
            cat_op_touch(&ops, env->seq_cat->e[i].def->id, (int64_t)env->seq_cat->e[i].count);
        }
        rc = reg_each(env->reg, seq, capture_entry, &cap);
        if (rc == SOP_OK && (ops.err || cap.regs.err))
            rc = sop_report(SOP_NOMEM, "checkpoint");
    }
    pthread_mutex_unlock(&env->commit_mu);
    gate_leave(&env->commit_gate);
    if (rc != SOP_OK)
        goto fail;
    /* everything the checkpoint refers to must be durable first */
    SOP_CHECK(env_sync_upto(env, seq));

    unsigned char h[CKPT_HEADER];
    memset(h, 0, sizeof h);
    memcpy(h, ckpt_magic, 8);
    sop_put32(h + 8, CKPT_VERSION);
    memcpy(h + 16, env->dbid, 16);
    sop_put32(h + 32, file);
    sop_put64(h + 40, next_lid);
    sop_put32(h + 48, next_store);
    sop_put32(h + 52, (uint32_t)ops.len);
    sop_put64(h + 56, cap.regs.len / 20);
    sop_put64(h + 64, seq);
    sop_put64(h + 72, off);
    sbuf_put(&out, h, sizeof h);
    sbuf_put(&out, ops.p, ops.len);
    sbuf_put(&out, cap.regs.p, cap.regs.len);
    if (!out.err)
        sbuf_u32(&out, sop_crc32c(0, out.p, out.len));
    if (out.err) {
        rc = sop_report(SOP_NOMEM, "checkpoint");
        goto fail;
    }
    tmp = sop_path_join(env->path, "sop.ckpt.tmp");
    dst = sop_path_join(env->path, "sop.ckpt");
    if (!tmp || !dst) {
        rc = sop_report(SOP_NOMEM, "checkpoint path");
        goto fail;
    }
    SOP_CHECK(env->io->open(env->io, tmp, SOP_IO_CREATE, &f));
    SOP_CHECK(f->io->truncate(f, 0));
    SOP_CHECK(f->io->pwrite(f, out.p, out.len, 0));
    if (!(env->flags & SOP_ENV_NOSYNC))
        SOP_CHECK(f->io->sync(f));
    rc = f->io->close(f);
    f = NULL;
    SOP_CHECK(rc);
    SOP_CHECK(env->io->rename(env->io, tmp, dst));
    if (!(env->flags & SOP_ENV_NOSYNC))
        SOP_CHECK(env->io->sync_dir(env->io, env->path));

    pthread_rwlock_wrlock(&env->files_lock);
    env->ckpt_seq = seq;
    env->ckpt_file = file;
    env->ckpt_off = off;
    for (uint32_t i = 0; i < env->nfiles_cap; i++) {
        env->file_ckref[i] = i < cap.nrefs ? cap.refs[i] : 0;
        /* the first checkpoint that no longer refers to a dead file */
        if (!env->file_ckref[i] && !env->file_dead_seq[i] && env->files[i] && i < file &&
            !__atomic_load_n(&env->file_live[i], __ATOMIC_RELAXED))
            env->file_dead_seq[i] = seq;
        if (env->file_ckref[i] || __atomic_load_n(&env->file_live[i], __ATOMIC_RELAXED))
            env->file_dead_seq[i] = 0;
    }
    pthread_rwlock_unlock(&env->files_lock);
    pthread_mutex_lock(&env->mu);
    env->ckpt_log_bytes = env->log_bytes;
    pthread_mutex_unlock(&env->mu);
    delete_dead_files(env);
fail:
    if (f)
        f->io->close(f);
    if (flocked)
        env->ckpt_lock_file->io->unlock(env->ckpt_lock_file);
    gate_leave(&env->ckpt_gate);
    sop_free(tmp);
    sop_free(dst);
    sop_free(cap.refs);
    sbuf_free(&cap.regs);
    sbuf_free(&ops);
    sbuf_free(&out);
    return rc;
}

/* ---------------------------------------------------------- compaction */
typedef struct victim_blobs {
    uint32_t file;
    uint64_t *lid, *loc;
    uint32_t *len;
    size_t n, cap;
} victim_blobs;

static int collect_victim(void *arg, uint64_t lid, uint64_t loc, uint32_t len)
{
    victim_blobs *v = arg;
    if (LOC_FILE(loc) != v->file)
        return SOP_OK;
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 256;
        uint64_t *a = sop_realloc(v->lid, ncap * sizeof *a);
        if (a)
            v->lid = a;
        uint64_t *b = a ? sop_realloc(v->loc, ncap * sizeof *b) : NULL;
        if (b)
            v->loc = b;
        uint32_t *c = b ? sop_realloc(v->len, ncap * sizeof *c) : NULL;
        if (!c)
            return sop_report(SOP_NOMEM, "compaction");
        v->len = c;
        v->cap = ncap;
    }
    v->lid[v->n] = lid;
    v->loc[v->n] = loc;
    v->len[v->n++] = len;
    return SOP_OK;
}

/* Copy the live blobs of `file` to the end of the log. */
static int relocate(sop_env *env, uint32_t file, size_t *moved, uint64_t deadline_ns)
{
    *moved = 0;
    victim_blobs v;
    memset(&v, 0, sizeof v);
    v.file = file;
    sbuf b = {0};
    log_commit c;
    memset(&c, 0, sizeof c);
    int rc, locked = 0;
    if ((rc = env_lock_commit(env, deadline_ns, "compaction")) != SOP_OK)
        return rc;
    locked = 1;
    if (env->poisoned) {
        rc = sop_report(SOP_POISONED, "database %s must be reopened", env->path);
        goto out;
    }
    SOP_CHECK(env_catch_up_locked(env));
    if (file >= env->cur_file)
        goto out;
    SOP_CHECK(reg_each(env->reg, env->seq_last, collect_victim, &v));
    if (!v.n)
        goto out;
    c.blobs = sop_calloc(v.n, sizeof *c.blobs);
    if (!c.blobs) {
        rc = sop_report(SOP_NOMEM, "compaction");
        goto fail;
    }
    log_batch_begin(&b);
    for (size_t i = 0; i < v.n; i++) {
        unsigned char *payload;
        int kind = LOG_KIND_NODE;
        pthread_rwlock_rdlock(&env->files_lock);
        sop_file *f = env->files[file];
        rc = f ? log_read_blob_kind(f, LOC_OFF(v.loc[i]), v.lid[i], v.len[i], &payload, &kind)
               : SOP_CORRUPT_AT("log file %u vanished during compaction", file);
        pthread_rwlock_unlock(&env->files_lock);
        if (rc != SOP_OK)
            goto fail;
        size_t at = log_put_blob(&b, kind, v.lid[i], 0, payload, v.len[i]);
        sop_free(payload);
        c.blobs[c.n_blobs++] = (log_blob_ref){v.lid[i], at, v.len[i]};
    }
    uint64_t seq = env->seq_last + 1;
    c.seq = seq;
    c.next_lid = env->next_lid;
    c.durable_seq = __atomic_load_n(&env->durable_seq, __ATOMIC_RELAXED);
    c.next_store_id = env->next_store_id;
    uint64_t base;
    SOP_CHECK(env_write_batch(env, &b, &c, &base));
    catalog *nc;
    rc = cat_apply(env->seq_cat, seq, NULL, 0, &nc);
    for (uint32_t i = 0; i < c.n_blobs && rc == SOP_OK; i++)
        rc = env_put_version(env, c.blobs[i].lid, seq, LOC_MAKE(env->cur_file, base + c.blobs[i].off),
                             c.blobs[i].len, NULL);
    if (rc != SOP_OK) {
        pthread_mutex_lock(&env->mu);
        env->poisoned = 1;
        pthread_mutex_unlock(&env->mu);
        goto fail;
    }
    cat_unref(env->seq_cat);
    env->seq_cat = nc;
    __atomic_store_n(&env->seq_last, seq, __ATOMIC_RELAXED);
    rc = env_push_pending(env, seq, nc);
    *moved = c.n_blobs;
    if (readers_log_appended(env) != SOP_OK)
        sop_clear_errmsg(); /* others then see this batch at the next epoch move */
    env_unlock_commit(env);
    locked = 0;
    if (rc == SOP_OK)
        rc = env_sync_upto(env, seq);
    goto done;
fail:
out:
    if (locked)
        env_unlock_commit(env);
done:
    sbuf_free(&b);
    log_commit_free(&c);
    sop_free(v.lid);
    sop_free(v.loc);
    sop_free(v.len);
    return rc;
}

int env_maintain(sop_env *env, int force, uint64_t deadline_ns)
{
    deadline_ns = SOP_MIN(deadline_ns, env_lock_deadline(env));
    /* also due when most of the log became dead (a large delete, say) */
    env_prune(env);
    reg_stats rs;
    reg_stat(env->reg, &rs);
    pthread_mutex_lock(&env->mu);
    int due = force || env->log_bytes - env->maint_log_bytes > (env->rotate_bytes / 4) ||
              env->log_bytes < env->maint_log_bytes ||
              (env->log_bytes > rs.live_bytes * 2 + env->rotate_bytes &&
               __atomic_load_n(&env->cur_file, __ATOMIC_RELAXED) >
                   __atomic_load_n(&env->first_file, __ATOMIC_RELAXED) &&
               (++env->maint_tries % 16) == 1);
    if (due)
        env->maint_log_bytes = env->log_bytes;
    uint64_t since_ckpt = env->log_bytes - SOP_MIN(env->ckpt_log_bytes, env->log_bytes);
    pthread_mutex_unlock(&env->mu);
    if (!due)
        return SOP_OK;
    env_prune(env);
    int rc = SOP_OK;
    /* compact files that are more than half dead: one pass over the files
     * (live bytes held only by old versions that open snapshots still read
     * cannot move; such a file waits for a later pass) */
    pthread_rwlock_rdlock(&env->files_lock);
    uint32_t lo = env->first_file, hi = env->cur_file;
    pthread_rwlock_unlock(&env->files_lock);
    for (uint32_t f = lo; f && f < hi && rc == SOP_OK; f++) {
        pthread_rwlock_rdlock(&env->files_lock);
        uint64_t used = 0, live = 0;
        int present = f < env->nfiles_cap && env->files[f];
        if (present) {
            used = env->file_end[f] > LOG_FILE_HEADER ? env->file_end[f] - LOG_FILE_HEADER : 0;
            live = __atomic_load_n(&env->file_live[f], __ATOMIC_RELAXED);
        }
        pthread_rwlock_unlock(&env->files_lock);
        if (!present || !live || live * 2 >= used)
            continue;
        size_t moved = 0;
        rc = relocate(env, f, &moved, deadline_ns);
        if (moved) {
            env_prune(env);
            since_ckpt = env->rotate_bytes; /* a checkpoint lets the old file go */
        }
    }
    /* checkpoint when the log grew, or when files wait for one to be deleted */
    int waiting = 0;
    pthread_rwlock_rdlock(&env->files_lock);
    for (uint32_t f = env->first_file; f && f < env->cur_file; f++)
        if (env->files[f] && !env->file_live[f])
            waiting = 1;
    pthread_rwlock_unlock(&env->files_lock);
    if (rc == SOP_OK && (force || waiting || since_ckpt >= env->rotate_bytes))
        rc = ckpt_write(env, deadline_ns, !force);
    return rc;
}

int sop_env_compact(sop_env *env)
{
    if (!env)
        return sop_report(SOP_MISUSE, "NULL environment");
    if (env_forked(env))
        return env_forked_report(env);
    if (env->flags & SOP_ENV_RDONLY)
        return sop_report(SOP_READONLY, "database %s is open read-only: nothing to compact", env->path);
    return env_maintain(env, 1, UINT64_MAX);
}
