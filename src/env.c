/*
 * env.c - the database handle: opening a folder and recovering it from the
 * commit log, following commits made by other processes (catch-up), reading
 * nodes for snapshots, and the commit pipeline:
 *
 *   ACTIVE --validate--> SEQUENCED --write--> WRITTEN --fsync--> DURABLE --> PUBLISHED
 *      \--conflict / error--> ABORTED        \--write error: truncate back--> ABORTED
 *                                              WRITTEN --fsync error--> env POISONED
 *
 * SEQUENCED..WRITTEN run under commit_mu and the cross-process file lock:
 * catch up with the log, check that no store the transaction used changed
 * since its snapshot, give real lids to new nodes, append the batch.  The
 * batch's versions enter the registry and the sequenced catalog then, so
 * the next committer validates against them, but new snapshots see them
 * only once an fsync covering them returned (PUBLISHED).  fsync runs
 * outside commit_mu: a syncing thread covers every batch written before it
 * started (group commit), and a second one may start while the first runs
 * (a full log file is synced before the next one starts, so they may finish
 * in any order).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"

#define DEFAULT_CACHE (256u << 20)

/* ---------------------------------------------------------------- fork
 * A handle used in a fork() child would share the parent's open file
 * descriptions: the flock on sop.lock (so both would append at their own
 * idea of the log end) and the OFD lock on its readers slot.  The child
 * handler of pthread_atfork moves a counter on; a handle opened at another
 * value belongs to the parent, and every call on it fails with SOP_MISUSE,
 * while closing it only closes this process's file descriptors (no unlock,
 * no slot write, no mutex: another thread may have held one at the fork;
 * the memory stays, see env_close_in_child).  Nothing a child does through
 * an inherited handle reaches the files, so the parent keeps working; the
 * child opens its own handle. */
static unsigned fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
/* Every open handle of the process, so that a fork() child can let go of
 * the lock descriptors it inherited: a flock (sop.lock, sop.ckpt.lock) or
 * OFD lock (the readers slot) belongs to the open file description, so the
 * child's copy would keep the parent's commit lock held for as long as the
 * child lives, even after the parent died mid-commit.  Closing the child's
 * copies (close, not unlock) leaves the parent's locks exactly as they
 * were.  The prepare handler holds the list's mutex across the fork, so the
 * child sees it whole. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static sop_env *open_head;

static void fork_prepare(void)
{
    pthread_mutex_lock(&open_mu);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&open_mu);
}

static void on_fork_child(void)
{
    __atomic_add_fetch(&fork_gen, 1, __ATOMIC_RELAXED);
    for (sop_env *e = open_head; e; e = e->open_next) {
        sop_file **fs[3] = {&e->lock_file, &e->ckpt_lock_file, &e->readers_file};
        for (int i = 0; i < 3; i++)
            if (*fs[i]) {
                (*fs[i])->io->close(*fs[i]);
                *fs[i] = NULL;
            }
    }
    open_head = NULL; /* the child's own opens start a new list */
    pthread_mutex_unlock(&open_mu);
}

static void fork_handler_install(void)
{
    pthread_atfork(fork_prepare, fork_parent, on_fork_child);
}

static void open_list_add(sop_env *env)
{
    pthread_mutex_lock(&open_mu);
    env->open_prev = NULL;
    env->open_next = open_head;
    if (open_head)
        open_head->open_prev = env;
    open_head = env;
    pthread_mutex_unlock(&open_mu);
}

static void open_list_remove(sop_env *env)
{
    pthread_mutex_lock(&open_mu);
    if (env->open_prev)
        env->open_prev->open_next = env->open_next;
    else if (open_head == env)
        open_head = env->open_next;
    if (env->open_next)
        env->open_next->open_prev = env->open_prev;
    env->open_prev = env->open_next = NULL;
    pthread_mutex_unlock(&open_mu);
}

static unsigned fork_generation(void)
{
    return __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
}

int env_forked(const sop_env *env)
{
    return env->fork_gen != fork_generation();
}

int env_forked_report(const sop_env *env)
{
    return sop_report(SOP_MISUSE,
                      "database %s was opened before fork(): a handle cannot be used in a child "
                      "process; open the database again in this process",
                      env->path);
}

/* -------------------------------------------------------------- files */
static char *log_name(sop_env *env, uint32_t no)
{
    char name[32];
    snprintf(name, sizeof name, "log-%08u.sop", no);
    return sop_path_join(env->path, name);
}

static int files_reserve(sop_env *env, uint32_t no);
int files_reserve_public(sop_env *env, uint32_t no)
{
    return files_reserve(env, no);
}

static int files_reserve(sop_env *env, uint32_t no)
{
    if (no < env->nfiles_cap)
        return SOP_OK;
    uint32_t ncap = env->nfiles_cap ? env->nfiles_cap : 16;
    while (ncap <= no)
        ncap *= 2;
    sop_file **nf = sop_calloc(ncap, sizeof *nf);
    uint64_t *ne = sop_calloc(ncap, sizeof *ne), *nl = sop_calloc(ncap, sizeof *nl);
    uint64_t *nd = sop_calloc(ncap, sizeof *nd);
    unsigned char *nr = sop_calloc(ncap, 1);
    if (!nf || !ne || !nl || !nr || !nd) {
        sop_free(nf);
        sop_free(ne);
        sop_free(nl);
        sop_free(nr);
        sop_free(nd);
        return sop_report(SOP_NOMEM, "log file table");
    }
    pthread_rwlock_wrlock(&env->files_lock);
    if (env->nfiles_cap) {
        memcpy(nf, env->files, env->nfiles_cap * sizeof *nf);
        memcpy(ne, env->file_end, env->nfiles_cap * sizeof *ne);
        memcpy(nl, env->file_live, env->nfiles_cap * sizeof *nl);
        memcpy(nr, env->file_ckref, env->nfiles_cap);
        memcpy(nd, env->file_dead_seq, env->nfiles_cap * sizeof *nd);
    }
    sop_free(env->file_dead_seq);
    env->file_dead_seq = nd;
    sop_free(env->files);
    sop_free(env->file_end);
    sop_free(env->file_live);
    sop_free(env->file_ckref);
    env->files = nf;
    env->file_end = ne;
    env->file_live = nl;
    env->file_ckref = nr;
    env->nfiles_cap = ncap;
    pthread_rwlock_unlock(&env->files_lock);
    return SOP_OK;
}

int env_open_log(sop_env *env, uint32_t no, int create)
{
    int rc = files_reserve(env, no);
    if (rc)
        return rc;
    if (env->files[no])
        return SOP_OK;
    char *p = log_name(env, no);
    if (!p)
        return sop_report(SOP_NOMEM, "log path");
    sop_file *f = NULL;
    if (create) {
        /* a new file appears under its name only with a complete header:
         * written as <name>.tmp, synced, renamed, directory synced */
        char *tmp = sop_malloc(strlen(p) + 5);
        if (!tmp) {
            sop_free(p);
            return sop_report(SOP_NOMEM, "log path");
        }
        strcpy(tmp, p);
        strcat(tmp, ".tmp");
        rc = env->io->open(env->io, tmp, SOP_IO_CREATE, &f);
        if (rc == SOP_OK)
            rc = f->io->truncate(f, 0);
        if (rc == SOP_OK) {
            unsigned char h[LOG_FILE_HEADER];
            log_file_header(h, no, env->dbid);
            rc = f->io->pwrite(f, h, sizeof h, 0);
        }
        if (rc == SOP_OK && !(env->flags & SOP_ENV_NOSYNC))
            rc = f->io->sync(f);
        if (rc == SOP_OK)
            rc = env->io->rename(env->io, tmp, p);
        if (rc == SOP_OK) {
            /* name the file by its final path in messages and deletions */
            char *final = sop_strdup(p);
            if (final) {
                sop_free(f->path);
                f->path = final;
            }
        }
        if (rc == SOP_OK && !(env->flags & SOP_ENV_NOSYNC))
            rc = env->io->sync_dir(env->io, env->path);
        sop_free(tmp);
    } else {
        rc = env->io->open(env->io, p, (env->flags & SOP_ENV_RDONLY) ? SOP_IO_READONLY : 0, &f);
    }
    if (rc == SOP_OK && !create) {
        unsigned char h[LOG_FILE_HEADER], id[16];
        size_t got;
        rc = f->io->pread(f, h, sizeof h, 0, &got);
        if (rc == SOP_OK)
            rc = log_file_header_check(h, got, no, id, p);
        if (rc == SOP_OK && memcmp(id, env->dbid, 16) != 0)
            rc = SOP_CORRUPT_AT("%s belongs to another database", p);
    }
    sop_free(p);
    if (rc != SOP_OK) {
        if (f)
            f->io->close(f);
        return rc;
    }
    pthread_rwlock_wrlock(&env->files_lock);
    env->files[no] = f;
    env->file_end[no] = LOG_FILE_HEADER;
    if (!env->first_file || no < env->first_file)
        __atomic_store_n(&env->first_file, no, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&env->files_lock);
    return SOP_OK;
}

void env_file_live_add(sop_env *env, uint64_t loc, int64_t len)
{
    uint32_t fno = LOC_FILE(loc);
    pthread_rwlock_rdlock(&env->files_lock);
    if (fno < env->nfiles_cap)
        __atomic_add_fetch(&env->file_live[fno], (uint64_t)len, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&env->files_lock);
}

static void dead_blob(void *arg, uint64_t loc, uint32_t len)
{
    env_file_live_add(arg, loc, -(int64_t)len);
}

int env_put_version(sop_env *env, uint64_t lid, uint64_t seq, uint64_t loc, uint32_t len, node *n)
{
    int rc = reg_put(env->reg, lid, seq, loc, len, n);
    if (rc == SOP_OK && loc)
        env_file_live_add(env, loc, len);
    return rc;
}

/* ----------------------------------------------------- applying commits */
typedef struct apply_ctx {
    sop_env *env;
    uint32_t file;
} apply_ctx;

static int apply_commit(void *arg, const log_commit *c, uint64_t off, uint64_t len)
{
    apply_ctx *a = arg;
    sop_env *env = a->env;
    (void)len;
    if (c->seq != env->seq_last + 1)
        return SOP_CORRUPT_AT("log file %u offset %llu: commit %llu follows commit %llu", a->file,
                              (unsigned long long)off, (unsigned long long)c->seq,
                              (unsigned long long)env->seq_last);
    catalog *nc;
    int rc = cat_apply(env->seq_cat, c->seq, c->cat_ops, c->cat_ops_len, &nc);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < c->n_blobs && rc == SOP_OK; i++)
        rc = env_put_version(env, c->blobs[i].lid, c->seq, LOC_MAKE(a->file, c->blobs[i].off),
                             c->blobs[i].len, NULL);
    for (uint32_t i = 0; i < c->n_freed && rc == SOP_OK; i++)
        rc = reg_put(env->reg, c->freed[i], c->seq, 0, 0, NULL);
    if (rc) {
        cat_unref(nc);
        return rc;
    }
    cat_unref(env->seq_cat);
    env->seq_cat = nc;
    __atomic_store_n(&env->seq_last, c->seq, __ATOMIC_RELAXED); /* also read without commit_mu (readers.c) */
    if (c->next_lid > env->next_lid)
        env->next_lid = c->next_lid;
    if (c->next_store_id > env->next_store_id)
        env->next_store_id = c->next_store_id;
    return SOP_OK;
}

/* Publish everything sequenced up to seq (mu held). */
static void publish_upto(sop_env *env, uint64_t seq)
{
    size_t k = 0;
    while (k < env->npending && env->pending[k].seq <= seq) {
        cat_unref(env->pub_cat);
        env->pub_cat = env->pending[k].cat;
        env->pub_seq = env->pending[k].seq;
        k++;
    }
    memmove(env->pending, env->pending + k, (env->npending - k) * sizeof *env->pending);
    env->npending -= k;
}

static int push_pending(sop_env *env, uint64_t seq, catalog *cat)
{
    if (env->npending == env->cap_pending) {
        size_t ncap = env->cap_pending ? env->cap_pending * 2 : 16;
        pending_pub *np = sop_realloc(env->pending, ncap * sizeof *np);
        if (!np)
            return sop_report(SOP_NOMEM, "publication queue");
        env->pending = np;
        env->cap_pending = ncap;
    }
    cat_ref(cat);
    env->pending[env->npending++] = (pending_pub){seq, cat};
    return SOP_OK;
}

static int list_logs(void *arg, const char *name);

/* Follow the log from the applied end (commit_mu held).  locked: this process
 * holds the cross-process lock, so an incomplete batch at the end is a torn
 * write of a dead writer and is truncated. */
static int catch_up(sop_env *env, int locked)
{
    for (;;) {
        sop_file *f = env->files[env->cur_file];
        int rc;
        uint64_t before = env->seq_last, end;
        int torn;
        apply_ctx a = {env, env->cur_file};
        rc = log_scan(f, env->log_end, locked ? env->seq_last : UINT64_MAX, LOG_SCAN_ZERO_END, apply_commit,
                      &a, &end, &torn);
        pthread_mutex_lock(&env->mu);
        env->log_bytes += end - env->log_end;
        pthread_mutex_unlock(&env->mu);
        env->log_end = end;
        env->file_end[env->cur_file] = end;
        if (env->seq_last != before) {
            pthread_mutex_lock(&env->mu);
            /* other processes' batches are written; our next fsync covers them */
            if (env->written_seq < env->seq_last)
                env->written_seq = env->seq_last;
            if (!env->unsynced_lo)
                env->unsynced_lo = env->cur_file;
            int prc = push_pending(env, env->seq_last, env->seq_cat);
            publish_upto(env, env->seq_last);
            pthread_mutex_unlock(&env->mu);
            if (prc)
                return prc;
        }
        if (rc)
            return rc;
        int at_eof = torn < 0; /* a clean end that is the end of the file */
        if (at_eof)
            torn = 0;
        if (torn && locked) {
            /* a writer died mid-batch: drop the torn tail */
            if ((rc = f->io->truncate(f, end)) != SOP_OK)
                return rc;
            env->alloc_end = end;
            if (!(env->flags & SOP_ENV_NOSYNC) && (rc = f->io->sync(f)) != SOP_OK)
                return rc;
        }
        if (torn)
            return SOP_OK;
        /* a newer file may have been started when this one is full by this
         * process's size, and also when it simply ends here: a process with
         * smaller log files cuts a full file to its last batch (no zeros
         * ahead) before it starts the next */
        if (env->log_end < env->rotate_bytes && !at_eof)
            return SOP_OK;
        char *p = log_name(env, env->cur_file + 1);
        if (!p)
            return sop_report(SOP_NOMEM, "log path");
        int ex = env->io->exists(env->io, p);
        sop_free(p);
        if (ex < 0)
            return -ex;
        if (!ex) {
            /* not started yet, or started, filled and deleted by another
             * process before this one read it (a handle without a readers
             * slot, or a tampered table): then newer files exist, and this
             * handle can no longer follow the log */
            uint32_t range[3] = {0, 0, 0};
            /* (the usual end of a file that is not full by this process's
             * size; a handle without a readers slot, whose files another
             * process may delete, looks whatever the size, since a writer
             * with smaller files may have filled and deleted it) */
            int unprotected = !env->readers_file || __atomic_load_n(&env->readers_stale, __ATOMIC_RELAXED);
            if (env->log_end < env->rotate_bytes && !unprotected)
                return SOP_OK;
            if ((rc = env->io->list(env->io, env->path, list_logs, range)) != SOP_OK)
                return rc;
            if (range[1] > env->cur_file + 1) {
                __atomic_store_n(&env->poisoned, 1, __ATOMIC_RELAXED);
                return sop_report(SOP_POISONED,
                                  "%s: log file %u was deleted before this handle read it (files up to "
                                  "%u exist); reopen the database",
                                  env->path, env->cur_file + 1, range[1]);
            }
            return SOP_OK;
        }
        if ((rc = env_open_log(env, env->cur_file + 1, 0)) != SOP_OK)
            return rc;
        __atomic_store_n(&env->cur_file, env->cur_file + 1, __ATOMIC_RELAXED); /* read without commit_mu (reclaim.c) */
        env->log_end = LOG_FILE_HEADER;
        env->alloc_end = 0; /* unknown: another process may have preallocated it */
        pthread_mutex_lock(&env->mu);
        env->log_bytes += LOG_FILE_HEADER;
        pthread_mutex_unlock(&env->mu);
    }
}

int env_catch_up_locked(sop_env *env)
{
    return catch_up(env, 1);
}

int env_push_pending(sop_env *env, uint64_t seq, catalog *cat)
{
    pthread_mutex_lock(&env->mu);
    int rc = push_pending(env, seq, cat);
    env->written_seq = seq;
    pthread_mutex_unlock(&env->mu);
    return rc;
}

void env_prune(sop_env *env)
{
    pthread_mutex_lock(&env->mu);
    uint64_t min_snap = env->active_head ? env->active_head->snap : env->pub_seq;
    pthread_mutex_unlock(&env->mu);
    reg_prune(env->reg, min_snap, dead_blob, env);
}

int env_catch_up(sop_env *env)
{
    if (env->poisoned)
        return sop_report(SOP_POISONED, "database %s failed after a commit point; reopen it", env->path);
    return catch_up(env, 0);
}

int env_catch_up_if_moved(sop_env *env)
{
    uint64_t epoch;
    if (!readers_log_moved(env, &epoch)) {
        if (__atomic_load_n(&env->poisoned, __ATOMIC_RELAXED))
            return sop_report(SOP_POISONED, "database %s failed after a commit point; reopen it",
                              env->path);
        return SOP_OK; /* nobody appended since this process last read the log */
    }
    pthread_mutex_lock(&env->commit_mu);
    int rc = env_catch_up(env);
    if (rc == SOP_OK)
        readers_caught_up(env, epoch);
    pthread_mutex_unlock(&env->commit_mu);
    return rc;
}

/* ------------------------------------------------------------ reading */
int env_read_node(sop_env *env, uint64_t lid, uint64_t snap, node **out)
{
    uint64_t loc;
    uint32_t len;
    node *n;
    int rc = reg_get(env->reg, lid, snap, &loc, &len, &n);
    if (rc == SOP_NOTFOUND)
        return SOP_CORRUPT_AT("%s: node %llu is referenced but has no version at commit %llu",
                              env->path, (unsigned long long)lid, (unsigned long long)snap);
    if (n) {
        *out = n;
        return SOP_OK;
    }
    uint32_t fno = LOC_FILE(loc);
    unsigned char *payload;
    pthread_rwlock_rdlock(&env->files_lock);
    sop_file *f = fno < env->nfiles_cap ? env->files[fno] : NULL;
    if (!f)
        rc = SOP_CORRUPT_AT("%s: node %llu lives in log file %u, which is missing", env->path,
                            (unsigned long long)lid, fno);
    else
        rc = log_read_blob(f, LOC_OFF(loc), lid, len, &payload);
    pthread_rwlock_unlock(&env->files_lock);
    if (rc != SOP_OK)
        return rc;
    __atomic_add_fetch(&env->node_reads, 1, __ATOMIC_RELAXED);
    rc = node_decode(payload, len, lid, &n);
    sop_free(payload);
    if (rc != SOP_OK)
        return sop_report(rc, "%s (log file %u offset %llu): %s", env->path, fno,
                          (unsigned long long)LOC_OFF(loc), sop_errmsg());
    reg_cache(env->reg, lid, loc, n);
    *out = n;
    return SOP_OK;
}

int env_read_value(sop_env *env, uint64_t lid, uint64_t snap, unsigned char **data, uint32_t *len)
{
    uint64_t loc;
    node *n;
    *data = NULL;
    int rc = reg_get(env->reg, lid, snap, &loc, len, &n);
    if (n)
        node_unref(n);
    if (rc == SOP_NOTFOUND)
        return SOP_CORRUPT_AT("%s: value %llu is referenced but has no version at commit %llu",
                              env->path, (unsigned long long)lid, (unsigned long long)snap);
    uint32_t fno = LOC_FILE(loc);
    int kind = 0;
    pthread_rwlock_rdlock(&env->files_lock);
    sop_file *f = fno < env->nfiles_cap ? env->files[fno] : NULL;
    if (!f)
        rc = SOP_CORRUPT_AT("%s: value %llu lives in log file %u, which is missing", env->path,
                            (unsigned long long)lid, fno);
    else
        rc = log_read_blob_kind(f, LOC_OFF(loc), lid, *len, data, &kind);
    pthread_rwlock_unlock(&env->files_lock);
    if (rc == SOP_OK && kind != LOG_KIND_VALUE) {
        sop_free(*data);
        *data = NULL;
        rc = SOP_CORRUPT_AT("%s (log file %u offset %llu): object %llu is not a value blob", env->path,
                            fno, (unsigned long long)LOC_OFF(loc), (unsigned long long)lid);
    }
    if (rc == SOP_OK)
        __atomic_add_fetch(&env->value_reads, 1, __ATOMIC_RELAXED);
    return rc;
}

typedef struct verify_ctx {
    sop_env *env;
    sbuf *report;
    uint64_t bad, checked;
} verify_ctx;

static int verify_one(void *arg, uint64_t lid, uint64_t loc, uint32_t len)
{
    verify_ctx *v = arg;
    sop_env *env = v->env;
    unsigned char *payload = NULL;
    int kind = 0, rc;
    pthread_rwlock_rdlock(&env->files_lock);
    uint32_t fno = LOC_FILE(loc);
    sop_file *f = fno < env->nfiles_cap ? env->files[fno] : NULL;
    rc = f ? log_read_blob_kind(f, LOC_OFF(loc), lid, len, &payload, &kind)
           : SOP_CORRUPT_AT("object %llu lives in log file %u, which is missing", (unsigned long long)lid, fno);
    pthread_rwlock_unlock(&env->files_lock);
    if (rc == SOP_OK && kind == LOG_KIND_NODE) {
        node *n;
        rc = node_decode(payload, len, lid, &n);
        if (rc == SOP_OK)
            node_unref(n);
    }
    sop_free(payload);
    v->checked++;
    if (rc == SOP_NOMEM)
        return rc;
    if (rc != SOP_OK) {
        char line[1200];
        snprintf(line, sizeof line, "object %llu (log file %u offset %llu): %s\n", (unsigned long long)lid,
                 fno, (unsigned long long)LOC_OFF(loc), sop_errmsg());
        sbuf_put(v->report, line, strlen(line));
        v->bad++;
    }
    return SOP_OK;
}

int env_verify_blobs(sop_env *env, uint64_t snap, sbuf *report, uint64_t *bad)
{
    verify_ctx v = {env, report, 0, 0};
    int rc = reg_each(env->reg, snap, verify_one, &v);
    *bad = v.bad;
    return rc;
}

/* ----------------------------------------------------- snapshot tracking */
void env_txn_register(sop_env *env, sop_txn *t)
{
    pthread_mutex_lock(&env->mu);
    t->snap = env->pub_seq;
    t->cat = env->pub_cat;
    cat_ref(t->cat);
    t->prev = env->active_tail;
    t->next = NULL;
    if (env->active_tail)
        env->active_tail->next = t;
    else
        env->active_head = t;
    env->active_tail = t;
    env->nactive++;
    pthread_mutex_unlock(&env->mu);
}

void env_txn_unregister(sop_env *env, sop_txn *t)
{
    pthread_mutex_lock(&env->mu);
    int was_oldest = env->active_head == t;
    if (t->prev)
        t->prev->next = t->next;
    else
        env->active_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        env->active_tail = t->prev;
    env->nactive--;
    uint64_t min_snap = env->active_head ? env->active_head->snap : env->pub_seq;
    if (was_oldest)
        readers_publish(env, env->active_head ? env->active_head->snap : readers_idle_value(env));
    pthread_mutex_unlock(&env->mu);
    cat_unref(t->cat);
    if (was_oldest)
        reg_prune(env->reg, min_snap, dead_blob, env);
}

/* --------------------------------------------------------------- open */
static int list_logs(void *arg, const char *name)
{
    uint32_t *range = arg;
    unsigned no;
    char tail[8];
    if (sscanf(name, "log-%8u.%3s", &no, tail) == 2 && !strcmp(tail, "sop") && strlen(name) == 16 && no) {
        if (!range[0] || no < range[0])
            range[0] = no;
        if (no > range[1])
            range[1] = no;
        range[2]++;
    }
    return SOP_OK;
}

static void random_bytes(const sop_io *io, unsigned char *p, size_t n)
{
    sop_file *f = NULL;
    size_t got = 0;
    if (io->open(io, "/dev/urandom", SOP_IO_READONLY | SOP_IO_DEVICE, &f) == SOP_OK) {
        if (f->io->pread(f, p, n, 0, &got) != SOP_OK)
            got = 0;
        f->io->close(f);
    }
    sop_clear_errmsg();
    for (size_t i = got; i < n; i++) {
        sop_id id;
        sop_id_generate(&id);
        p[i] = id.bytes[15 - (i % 4)];
    }
}

static int recover(sop_env *env)
{
    uint32_t range[3] = {0, 0, 0};
    int rc = env->io->list(env->io, env->path, list_logs, range);
    if (rc)
        return rc;
    int have_ckpt = 0;
    if ((env->flags & SOP_ENV_CREATE_NEW) && range[2])
        return sop_report(SOP_KEYEXIST, "%s already holds a database", env->path);
    if ((rc = ckpt_load(env, &have_ckpt)) != SOP_OK)
        return rc;
    if ((env->flags & SOP_ENV_CREATE_NEW) && have_ckpt)
        return sop_report(SOP_KEYEXIST, "%s already holds a database", env->path);
    if (!range[2]) {
        if (have_ckpt)
            return SOP_CORRUPT_AT("%s: the checkpoint refers to log files that are missing", env->path);
        if (env->flags & (SOP_ENV_RDONLY | SOP_ENV_NOCREATE))
            return sop_report(SOP_NOTFOUND, "%s holds no SOP database (no log file, no checkpoint)",
                              env->path);
        random_bytes(env->io, env->dbid, 16);
        if ((rc = env_open_log(env, 1, 1)) != SOP_OK)
            return rc;
        env->cur_file = 1;
        env->log_end = LOG_FILE_HEADER;
        env->alloc_end = LOG_FILE_HEADER;
        env->log_bytes = LOG_FILE_HEADER;
        env->ckpt_file = 1;
        env->ckpt_off = LOG_FILE_HEADER;
        return SOP_OK;
    }
    if (range[1] - range[0] + 1 != range[2])
        return SOP_CORRUPT_AT("%s: log files %u..%u are not contiguous (%u found)", env->path,
                              range[0], range[1], range[2]);
    if (!have_ckpt) {
        /* no checkpoint: the log must start at file 1, and it names the database */
        if (range[0] != 1)
            return SOP_CORRUPT_AT("%s: log file 1 is missing and there is no checkpoint", env->path);
        char *p = log_name(env, 1);
        sop_file *f = NULL;
        unsigned char h[LOG_FILE_HEADER];
        size_t got = 0;
        if (!p)
            return sop_report(SOP_NOMEM, "log path");
        rc = env->io->open(env->io, p, SOP_IO_READONLY, &f);
        if (rc == SOP_OK)
            rc = f->io->pread(f, h, sizeof h, 0, &got);
        if (rc == SOP_OK)
            rc = log_file_header_check(h, got, 1, env->dbid, p);
        if (f)
            f->io->close(f);
        sop_free(p);
        if (rc)
            return rc;
        env->ckpt_file = 1;
        env->ckpt_off = LOG_FILE_HEADER;
    } else if (env->ckpt_file < range[0] || env->ckpt_file > range[1]) {
        return SOP_CORRUPT_AT("%s: the checkpoint starts in log file %u but files %u..%u exist",
                              env->path, env->ckpt_file, range[0], range[1]);
    }
    for (uint32_t no = range[0]; no <= range[1]; no++) {
        if ((rc = env_open_log(env, no, 0)) != SOP_OK)
            return rc;
        sop_file *f = env->files[no];
        uint64_t end, size;
        int torn = 0;
        if ((rc = f->io->size(f, &size)) != SOP_OK)
            return rc;
        env->log_bytes += size;
        if (no < env->ckpt_file) {
            env->file_end[no] = size; /* covered by the checkpoint */
            continue;
        }
        apply_ctx a = {env, no};
        uint64_t start = no == env->ckpt_file ? env->ckpt_off : LOG_FILE_HEADER;
        if ((rc = log_scan(f, start, env->seq_last, 0, apply_commit, &a, &end, &torn)) != SOP_OK)
            return rc;
        if (torn && no != range[1])
            return SOP_CORRUPT_AT("%s: log file %u is damaged at offset %llu and newer files exist",
                                  env->path, no, (unsigned long long)end);
        if (end < size && (env->flags & SOP_ENV_RDONLY)) {
            /* read-only: the torn tail stays on disk (a writer cuts it);
             * this handle reads up to it */
        } else if (end < size) {
            /* torn tail of the last file: the batch never completed */
            if ((rc = f->io->truncate(f, end)) != SOP_OK)
                return rc;
            if (!(env->flags & SOP_ENV_NOSYNC) && (rc = f->io->sync(f)) != SOP_OK)
                return rc;
            env->log_bytes -= size - end;
        }
        env->file_end[no] = end;
        env->cur_file = no;
        env->log_end = end;
        env->alloc_end = end;
    }
    /* no snapshot is open yet: drop every superseded version */
    reg_prune(env->reg, env->seq_last, dead_blob, env);
    return SOP_OK;
}

/* Open (creating) a lock file of the folder.  When it exists but cannot be
 * opened for writing (permissions, a read-only mount), the database is
 * opened read-only, as if SOP_ENV_RDONLY had been given; read-only handles
 * open existing lock files for reading (flock works on those) and do
 * without a missing one. */
static int open_lock_file(sop_env *env, const char *name, sop_file **out)
{
    char *p = sop_path_join(env->path, name);
    if (!p)
        return sop_report(SOP_NOMEM, "lock path");
    int rc;
    if (!(env->flags & SOP_ENV_RDONLY)) {
        rc = env->io->open(env->io, p, SOP_IO_CREATE, out);
        if (rc == SOP_OK || env->io->exists(env->io, p) != 1) {
            sop_free(p);
            return rc;
        }
        snprintf(env->ro_reason, sizeof env->ro_reason, "%s", sop_errmsg());
        sop_clear_errmsg();
        env->flags |= SOP_ENV_RDONLY;
    }
    rc = env->io->open(env->io, p, SOP_IO_READONLY, out);
    if (rc != SOP_OK && env->io->exists(env->io, p) == 0) {
        rc = SOP_OK; /* no lock file: nothing to coordinate with */
        *out = NULL;
        sop_clear_errmsg();
    }
    sop_free(p);
    return rc;
}

int sop_env_open(const char *path, const sop_env_options *opts, sop_env **out)
{
    return env_open_with_io(path, opts, sop_io_posix(), out);
}

int env_open_with_io(const char *path, const sop_env_options *opts, const sop_io *io, sop_env **out)
{
    if (!out)
        return sop_report(SOP_MISUSE, "NULL output");
    *out = NULL;
    if (!path || !*path)
        return sop_report(SOP_INVALID, "database path is empty");
    if (!io)
        return sop_report(SOP_MISUSE, "NULL I/O methods");
    sop_env *env = sop_calloc(1, sizeof *env);
    if (!env)
        return sop_report(SOP_NOMEM, "environment");
    env->io = io;
    env->flags = opts ? opts->flags : 0;
    pthread_once(&fork_once, fork_handler_install);
    env->fork_gen = fork_generation();
    env->rotate_bytes = opts && opts->log_file_bytes ? opts->log_file_bytes : LOG_ROTATE_DEFAULT;
    if (env->rotate_bytes < 4096)
        env->rotate_bytes = 4096;
    size_t cache = opts && opts->cache_bytes ? opts->cache_bytes : DEFAULT_CACHE;
    pthread_mutex_init(&env->commit_mu, NULL);
    pthread_rwlock_init(&env->files_lock, NULL);
    gate_init(&env->ckpt_gate);
    gate_init(&env->commit_gate);
    env->lock_timeout_ms = opts && opts->lock_timeout_ms ? opts->lock_timeout_ms : 30000;
    pthread_mutex_init(&env->mu, NULL);
    pthread_cond_init(&env->cond, NULL);
    env->next_lid = 1;
    env->next_store_id = 1;
    env->reader_slot = -1;
    int rc;
    env->path = sop_strdup(path);
    env->seq_cat = cat_empty();
    if (!env->path || !env->seq_cat) {
        rc = sop_report(SOP_NOMEM, "environment");
        goto fail;
    }
    size_t pl = strlen(env->path);
    while (pl > 1 && env->path[pl - 1] == '/')
        env->path[--pl] = 0;
    SOP_CHECK(reg_open(cache, &env->reg));
    if (env->flags & (SOP_ENV_RDONLY | SOP_ENV_NOCREATE)) {
        /* an existing database only: create nothing, not even the folder */
        uint32_t range[3] = {0, 0, 0};
        int ex = io->exists(io, env->path);
        if (ex < 0) {
            rc = -ex;
            goto fail;
        }
        if (!ex) {
            rc = sop_report(SOP_NOTFOUND, "%s does not exist", env->path);
            goto fail;
        }
        if (io->list(io, env->path, list_logs, range) != SOP_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", sop_errmsg());
            rc = sop_report(SOP_NOTFOUND, "%s is not a database folder (%s)", env->path, why);
            goto fail;
        }
        if (!range[2]) {
            char *ck = sop_path_join(env->path, "sop.ckpt");
            int has_ckpt = ck ? io->exists(io, ck) : -SOP_NOMEM;
            sop_free(ck);
            if (has_ckpt < 0) {
                rc = -has_ckpt;
                goto fail;
            }
            if (!has_ckpt) {
                rc = sop_report(SOP_NOTFOUND, "%s holds no SOP database (no log file, no checkpoint)",
                                env->path);
                goto fail;
            }
        }
    } else {
        SOP_CHECK(io->mkdir(io, env->path));
    }
    {
        char fs[32];
        SOP_CHECK(io->fs_type(io, env->path, fs, sizeof fs));
        if (strcmp(fs, "local") != 0) {
            rc = sop_report(SOP_INVALID,
                            "%s is on a network file system (%s); SOP databases need local disk: "
                            "their commit lock and fsync ordering are not reliable over %s",
                            env->path, fs, fs);
            goto fail;
        }
    }
    SOP_CHECK(open_lock_file(env, "sop.lock", &env->lock_file));
    SOP_CHECK(open_lock_file(env, "sop.ckpt.lock", &env->ckpt_lock_file));
    /* Recovery lists the log files, then opens them: another process's
     * checkpoint must not delete one in between, so take its lock first
     * (the order ckpt_write takes them in: checkpoint lock, then commit
     * lock).  Files this process holds open stay readable after that.
     * Both waits end at the lock timeout (a holder may be stopped). */
    uint64_t deadline = env_lock_deadline(env);
    if (env->ckpt_lock_file)
        SOP_CHECK(env->ckpt_lock_file->io->lock(env->ckpt_lock_file, 1, deadline));
    rc = env->lock_file ? env->lock_file->io->lock(env->lock_file, 1, deadline) : SOP_OK;
    if (rc == SOP_OK) {
        rc = recover(env);
        if (env->lock_file)
            SOP_KEEP_FIRST(rc, env->lock_file->io->unlock(env->lock_file));
    }
    if (env->ckpt_lock_file)
        SOP_KEEP_FIRST(rc, env->ckpt_lock_file->io->unlock(env->ckpt_lock_file));
    if (rc)
        goto fail;
    /* read-only: no slot in sop.readers (it cannot be written), so begin
     * reads the log every time (readers_log_moved says "moved" without a map) */
    if (!(env->flags & SOP_ENV_RDONLY))
        SOP_CHECK(readers_open(env));
    env->pub_seq = env->durable_seq = env->written_seq = env->seq_last;
    env->maint_log_bytes = env->ckpt_log_bytes = env->log_bytes;
    env->pub_cat = env->seq_cat;
    cat_ref(env->pub_cat);
    open_list_add(env);
    *out = env;
    return SOP_OK;
fail:
    {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", sop_errmsg());
        sop_env_close(env);
        sop_report(rc, "%s", keep + (strncmp(keep, sop_strerror(rc), strlen(sop_strerror(rc))) ? 0 : strlen(sop_strerror(rc)) + 2));
    }
    return rc;
}

/* Close a handle inherited through fork(): close this process's file
 * descriptors only.  No unlock (a flock or OFD lock belongs to the open
 * file description the parent shares, and would be released for it too),
 * no slot write, no mutex (another thread may have held one at the fork).
 * The memory stays allocated: transactions inherited from the parent may
 * still point at the handle, and they fail (SOP_MISUSE) without touching
 * anything else; the copy of the parent's memory goes with the process. */
static void env_close_in_child(sop_env *env)
{
    for (uint32_t i = 0; i < env->nfiles_cap; i++)
        if (env->files && env->files[i]) {
            env->files[i]->io->close(env->files[i]);
            env->files[i] = NULL;
        }
    sop_file **fs[3] = {&env->lock_file, &env->ckpt_lock_file, &env->readers_file};
    for (int i = 0; i < 3; i++)
        if (*fs[i]) {
            (*fs[i])->io->close(*fs[i]);
            *fs[i] = NULL;
        }
}

int sop_env_close(sop_env *env)
{
    if (!env)
        return SOP_OK;
    if (env_forked(env)) {
        env_close_in_child(env);
        return SOP_OK;
    }
    pthread_mutex_lock(&env->mu);
    size_t n = env->nactive;
    pthread_mutex_unlock(&env->mu);
    if (n)
        return sop_report(SOP_MISUSE, "%zu transactions are still open on %s", n, env->path);
    open_list_remove(env);
    for (uint32_t i = 0; i < env->nfiles_cap; i++)
        if (env->files && env->files[i])
            env->files[i]->io->close(env->files[i]);
    sop_free(env->files);
    sop_free(env->file_end);
    sop_free(env->file_live);
    sop_free(env->file_ckref);
    sop_free(env->file_dead_seq);
    pthread_rwlock_destroy(&env->files_lock);
    if (env->lock_file)
        env->lock_file->io->close(env->lock_file);
    if (env->ckpt_lock_file)
        env->ckpt_lock_file->io->close(env->ckpt_lock_file);
    readers_close(env);
    gate_destroy(&env->ckpt_gate);
    gate_destroy(&env->commit_gate);
    for (size_t i = 0; i < env->npending; i++)
        cat_unref(env->pending[i].cat);
    sop_free(env->pending);
    cat_unref(env->pub_cat);
    cat_unref(env->seq_cat);
    reg_close(env->reg);
    pthread_mutex_destroy(&env->commit_mu);
    pthread_mutex_destroy(&env->mu);
    pthread_cond_destroy(&env->cond);
    sop_free(env->path);
    sop_free(env);
    return SOP_OK;
}

const char *sop_env_path(const sop_env *env)
{
    return env ? env->path : NULL;
}

int sop_env_readonly(const sop_env *env)
{
    return env && (env->flags & SOP_ENV_RDONLY) ? 1 : 0;
}

/* ------------------------------------------------------- lock waits */
void gate_init(env_gate *g)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC); /* the clock of sop_mono_ns */
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &a);
    pthread_condattr_destroy(&a);
    g->held = 0;
}

void gate_destroy(env_gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

int gate_enter(env_gate *g, uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    while (g->held && rc == 0)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &ts); /* ETIMEDOUT at the deadline */
    int got = !g->held;
    if (got)
        g->held = 1;
    pthread_mutex_unlock(&g->mu);
    return got ? SOP_OK : SOP_BUSY;
}

void gate_leave(env_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->held = 0;
    pthread_cond_broadcast(&g->cv); /* a waiter that timed out meanwhile may not take the wake-up */
    pthread_mutex_unlock(&g->mu);
}

uint64_t env_lock_deadline(const sop_env *env)
{
    return sop_mono_ns() + (uint64_t)env->lock_timeout_ms * 1000000u;
}

int env_lock_commit(sop_env *env, uint64_t deadline_ns, const char *what)
{
    int rc = gate_enter(&env->commit_gate, deadline_ns);
    if (rc != SOP_OK)
        return sop_report(SOP_BUSY,
                          "%s on %s: gave up at its deadline waiting behind another thread of this "
                          "process that waits for the commit lock; nothing was written",
                          what, env->path);
    rc = env->lock_file->io->lock(env->lock_file, 1, deadline_ns);
    if (rc != SOP_OK) {
        gate_leave(&env->commit_gate);
        if (rc == SOP_BUSY) {
            char detail[900];
            const char *m = sop_errmsg(), *pre = sop_strerror(SOP_BUSY);
            size_t pl = strlen(pre);
            snprintf(detail, sizeof detail, "%s",
                     strncmp(m, pre, pl) == 0 && m[pl] == ':' ? m + pl + 2 : m);
            rc = sop_report(SOP_BUSY, "%s gave up waiting for the commit lock; nothing was written: %s",
                            what, detail);
        }
        return rc;
    }
    /* The lock is only a lock if everyone locks the same file: a sop.lock
     * deleted or replaced while processes run would let two of them append
     * at once.  Checked under the lock, before anything is written. */
    char *lp = sop_path_join(env->path, "sop.lock");
    int same = lp ? env->lock_file->io->same_file(env->lock_file, lp) : -SOP_NOMEM;
    sop_free(lp);
    if (same != 1) {
        if (env->lock_file->io->unlock(env->lock_file) != SOP_OK)
            sop_clear_errmsg();
        gate_leave(&env->commit_gate);
        if (same < 0)
            return -same;
        __atomic_store_n(&env->poisoned, 1, __ATOMIC_RELAXED);
        return sop_report(SOP_POISONED,
                          "%s: sop.lock was deleted or replaced while the database was open (other "
                          "processes may lock another file); nothing was written; reopen the database",
                          env->path);
    }
    pthread_mutex_lock(&env->commit_mu);
    return SOP_OK;
}

void env_unlock_commit(sop_env *env)
{
    if (env->lock_file->io->unlock(env->lock_file) != SOP_OK)
        sop_clear_errmsg(); /* closing the file at exit releases it anyway */
    pthread_mutex_unlock(&env->commit_mu);
    gate_leave(&env->commit_gate);
}

/* ------------------------------------------------------------- commit */
typedef struct lid_map {
    uint64_t *real; /* indexed by temp counter */
    size_t n;
} lid_map;

static uint64_t map_lid(void *arg, uint64_t lid)
{
    lid_map *m = arg;
    if (!(lid & TEMP_LID_BIT))
        return lid;
    uint64_t k = lid & ~TEMP_LID_BIT;
    return k < m->n ? m->real[k] : 0;
}

/* Wait until seq is durable (group commit: one thread syncs for all). */
static int sync_upto(sop_env *env, uint64_t seq, uint64_t *durable, uint64_t *written_seq,
                     uint32_t *unsynced_lo)
{
    int rc = SOP_OK;
    pthread_mutex_lock(&env->mu);
    while (!env->poisoned && *durable < seq) {
        /* up to two fsyncs in flight: the second starts while the first runs,
         * so two committers overlap instead of taking turns */
        if (env->syncing >= 2 || (env->syncing && *written_seq <= env->sync_target)) {
            pthread_cond_wait(&env->cond, &env->mu);
            continue;
        }
        env->syncing++;
        uint64_t target = *written_seq;
        if (target > env->sync_target)
            env->sync_target = target;
        uint32_t lo = *unsynced_lo ? *unsynced_lo : env->cur_file, hi = env->cur_file;
        *unsynced_lo = 0;
        pthread_mutex_unlock(&env->mu);
        if (!(env->flags & SOP_ENV_NOSYNC) && lo) {
            pthread_rwlock_rdlock(&env->files_lock);
            for (uint32_t f = lo; f <= hi && rc == SOP_OK; f++)
                if (f < env->nfiles_cap && env->files[f])
                    rc = env->files[f]->io->sync(env->files[f]);
            pthread_rwlock_unlock(&env->files_lock);
        }
        pthread_mutex_lock(&env->mu);
        env->syncing--;
        if (rc != SOP_OK) {
            env->poisoned = 1;
            pthread_cond_broadcast(&env->cond);
            break;
        }
        if (target > *durable)
            __atomic_store_n(durable, target, __ATOMIC_RELAXED); /* also read without mu */
        publish_upto(env, *durable);
        pthread_cond_broadcast(&env->cond);
    }
    if (rc == SOP_OK && env->poisoned && *durable < seq)
        rc = sop_report(SOP_POISONED, "an fsync of %s failed; the database must be reopened", env->path);
    pthread_mutex_unlock(&env->mu);
    return rc;
}

int env_sync_upto(sop_env *env, uint64_t seq)
{
    return sync_upto(env, seq, &env->durable_seq, &env->written_seq, &env->unsynced_lo);
}

/* Preallocation: after writing a batch that ends at `end`, make sure zeros
 * follow it for a while (written zeros, not a sparse hole or fallocate's
 * unwritten extents), so the next commits overwrite blocks the file already
 * has and their fdatasync need not journal a new file size: measured here,
 * 1-item durable commits ~2x faster.  The zeros are a clean end of the log
 * (log_scan's LOG_SCAN_ZERO_END).  Best effort: a failure (disk full) only
 * costs speed, so it is not reported. */
static void prealloc_after(sop_env *env, sop_file *f, uint64_t end)
{
    static const unsigned char zeros[64 << 10];
    if ((env->flags & SOP_ENV_NOSYNC) || end >= env->rotate_bytes || end + (64 << 10) <= env->alloc_end)
        return;
    uint64_t grow = SOP_MIN(SOP_MAX(end / 8, (uint64_t)256 << 10), (uint64_t)8 << 20);
    uint64_t target = (end + grow + sizeof zeros - 1) / sizeof zeros * sizeof zeros;
    target = SOP_MIN(target, env->rotate_bytes);
    uint64_t at = SOP_MAX(end, env->alloc_end);
    while (at < target) {
        size_t n = (size_t)SOP_MIN(target - at, (uint64_t)sizeof zeros);
        if (f->io->pwrite(f, zeros, n, at) != SOP_OK) {
            sop_clear_errmsg();
            break;
        }
        at += n;
    }
    env->alloc_end = at;
}

/* Writing a batch (commit_mu and the file lock held), in one piece
 * (env_write_batch) or, for a large transaction, in pieces so it is never
 * whole in memory: env_batch_start (a new file when the current one is full;
 * the batch goes at *base), env_batch_flush (writes what b holds so far and
 * empties it), env_batch_finish (the commit record, then the header last).
 * On a write error the file is cut back to base so nothing of it survives. */
int env_batch_start(sop_env *env, uint64_t *base)
{
    int rc;
    if (env->log_end >= env->rotate_bytes) {
        /* the full file loses its preallocated tail and is synced before the
         * next one starts, so at any moment only the current file can hold
         * unsynced batches, and fsyncs that overlap (sync_upto) may finish in
         * any order */
        sop_file *full = env->files[env->cur_file];
        /* always: another process (with other options) may have put zeros
         * there that this one's alloc_end does not know of */
        rc = full->io->truncate(full, env->log_end);
        if (rc == SOP_OK && !(env->flags & SOP_ENV_NOSYNC))
            rc = full->io->sync(full);
        if (rc != SOP_OK) {
            pthread_mutex_lock(&env->mu);
            env->poisoned = 1;
            pthread_mutex_unlock(&env->mu);
            return rc;
        }
        env->alloc_end = env->log_end;
        if ((rc = env_open_log(env, env->cur_file + 1, 1)) != SOP_OK)
            return rc;
        pthread_mutex_lock(&env->mu);
        if (!env->unsynced_lo)
            env->unsynced_lo = env->cur_file; /* the old file may hold unsynced batches */
        __atomic_store_n(&env->cur_file, env->cur_file + 1, __ATOMIC_RELAXED);
        env->log_end = LOG_FILE_HEADER;
        env->alloc_end = LOG_FILE_HEADER;
        env->log_bytes += LOG_FILE_HEADER;
        pthread_mutex_unlock(&env->mu);
    }
    *base = env->log_end;
    return SOP_OK;
}

static int batch_write(sop_env *env, uint64_t base, const void *p, size_t n, uint64_t at)
{
    sop_file *f = env->files[env->cur_file];
    int rc = f->io->pwrite(f, p, n, at);
    if (rc != SOP_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sop_errmsg());
        if (f->io->truncate(f, base) != SOP_OK) {
            pthread_mutex_lock(&env->mu);
            env->poisoned = 1;
            pthread_mutex_unlock(&env->mu);
        }
        sop_report(rc, "%s", msg + strlen(sop_strerror(rc)) + 2);
        env->alloc_end = base;
    }
    return rc;
}

int env_batch_flush(sop_env *env, sbuf *b, uint64_t base, uint64_t *written)
{
    if (b->err)
        return sop_report(SOP_NOMEM, "commit batch");
    int rc = batch_write(env, base, b->p, b->len, base + *written);
    if (rc == SOP_OK) {
        *written += b->len;
        b->len = 0;
    }
    return rc;
}

int env_batch_finish(sop_env *env, sbuf *b, const log_commit *c, uint64_t base, uint64_t written)
{
    unsigned char hdr[LOG_BATCH_HEADER];
    log_batch_finish(b, base, written, c, hdr);
    if (b->err)
        return sop_report(SOP_NOMEM, "commit batch");
    int rc = batch_write(env, base, b->p, b->len, base + written);
    if (rc == SOP_OK && written)
        rc = batch_write(env, base, hdr, sizeof hdr, base);
    if (rc != SOP_OK)
        return rc;
    uint64_t len = written + b->len;
    prealloc_after(env, env->files[env->cur_file], base + len);
    env->log_end = base + len;
    env->file_end[env->cur_file] = env->log_end;
    pthread_mutex_lock(&env->mu);
    env->log_bytes += len;
    if (!env->unsynced_lo)
        env->unsynced_lo = env->cur_file;
    pthread_mutex_unlock(&env->mu);
    return SOP_OK;
}

int env_write_batch(sop_env *env, sbuf *b, const log_commit *c, uint64_t *base_out)
{
    int rc = env_batch_start(env, base_out);
    return rc == SOP_OK ? env_batch_finish(env, b, c, *base_out, 0) : rc;
}

static int validate(sop_txn *t)
{
    sop_env *env = t->env;
    for (txn_store *ts = t->stores; ts; ts = ts->next) {
        if (ts->created) {
            if (cat_find(env->seq_cat, ts->def->name))
                return sop_report(SOP_CONFLICT, "store '%s' was created by a concurrent transaction",
                                  ts->def->name);
            continue;
        }
        const cat_entry *e = cat_find_id(env->seq_cat, ts->def->id);
        if (!e)
            return sop_report(SOP_CONFLICT, "store '%s' was removed by a concurrent transaction",
                              ts->def->name);
        if (e->last_mod > t->snap)
            return sop_report(SOP_CONFLICT,
                              "store '%s' was changed by a concurrent commit (%llu) after this "
                              "transaction's snapshot (%llu)",
                              ts->def->name, (unsigned long long)e->last_mod, (unsigned long long)t->snap);
    }
    return SOP_OK;
}

static int has_writes(sop_txn *t)
{
    if (t->dirty.n || t->nfreed || t->vals.n)
        return 1;
    for (txn_store *ts = t->stores; ts; ts = ts->next)
        if (ts->written || ts->created || ts->dropped)
            return 1;
    return 0;
}

int env_commit(sop_txn *t)
{
    sop_env *env = t->env;
    if (t->mode != SOP_TXN_WRITE || !has_writes(t))
        return SOP_OK; /* a snapshot read is consistent by construction */
    int rc = SOP_OK, locked = 0;
    sbuf b = {0}, scratch = {0}, ops = {0};
    lid_map m = {0};
    log_commit c;
    memset(&c, 0, sizeof c);
    store_def **newdefs = NULL;
    sop_txn *ct = t, *mt = NULL; /* the transaction whose nodes are committed */
    node **bnodes = NULL;
    size_t nnew = 0;
    uint64_t base = 0, written = 0; /* where the batch goes; bytes of it written so far */

    if ((rc = env_lock_commit(env, t->deadline_ns, "commit")) != SOP_OK)
        return rc; /* nothing written */
    locked = 1;
    if (env->poisoned) {
        rc = sop_report(SOP_POISONED, "database %s failed after a commit point; reopen it", env->path);
        goto out;
    }
    SOP_CHECK(catch_up(env, 1));
    rc = validate(t);
    if (rc == SOP_CONFLICT) {
        /* stores changed since the snapshot: re-check the reads and replay
         * the changes on the current state (merge.c) */
        SOP_CHECK(merge_build(t, &mt));
        ct = mt;
    } else if (rc != SOP_OK) {
        goto fail;
    }

    uint64_t seq = env->seq_last + 1;
    /* real lids for new nodes, real ids for new stores */
    m.n = ct->next_temp + 1;
    m.real = sop_calloc(m.n, sizeof *m.real);
    c.blobs = sop_calloc(ct->dirty.n + ct->vals.n + 1, sizeof *c.blobs);
    bnodes = sop_calloc(ct->dirty.n + ct->vals.n + 1, sizeof *bnodes);
    for (txn_store *ts = ct->stores; ts; ts = ts->next)
        nnew += ts->created;
    newdefs = sop_calloc(nnew ? nnew : 1, sizeof *newdefs);
    if (!m.real || !c.blobs || !newdefs || !bnodes) {
        rc = sop_report(SOP_NOMEM, "commit");
        goto fail;
    }
    uint64_t next_lid = env->next_lid;
    for (size_t i = 0; i < lidtab_slots(&ct->dirty); i++) {
        const dirty_ent *e = lidtab_at(&ct->dirty, i);
        if (e && (e->lid & TEMP_LID_BIT))
            m.real[e->lid & ~TEMP_LID_BIT] = next_lid++;
    }
    for (size_t i = 0; i < lidtab_slots(&ct->vals); i++) {
        const value_ent *v = lidtab_at(&ct->vals, i);
        if (v)
            m.real[v->lid & ~TEMP_LID_BIT] = next_lid++;
    }
    uint32_t next_store_id = env->next_store_id;
    nnew = 0;
    for (txn_store *ts = ct->stores; ts; ts = ts->next) {
        if (!ts->created)
            continue;
        sop_store_options o;
        def_options(ts->def, &o);
        store_def *d = def_new(next_store_id++, ts->def->name, map_lid(&m, ts->def->root), &o);
        if (!d) {
            rc = sop_report(SOP_NOMEM, "commit");
            goto fail;
        }
        newdefs[nnew++] = d;
        cat_op_create(&ops, d);
        cat_op_touch(&ops, d->id, ts->delta);
    }
    for (txn_store *ts = ct->stores; ts; ts = ts->next) {
        if (ts->created)
            continue;
        if (ts->dropped)
            cat_op_drop(&ops, ts->def->id);
        else if (ts->written)
            cat_op_touch(&ops, ts->def->id, ts->delta);
    }

    /* the batch: every dirty node as a blob, then the commit record; a large
     * one goes to the file in pieces as it is built */
    SOP_CHECK(env_batch_start(env, &base));
    log_batch_begin(&b);
    for (size_t i = 0; i < lidtab_slots(&ct->dirty); i++) {
        const dirty_ent *e = lidtab_at(&ct->dirty, i);
        if (!e)
            continue;
        node *n = e->n;
        /* a spilled leaf's bytes are final (txn.c): copied as they are */
        size_t sz = n ? node_encoded_size(n) : e->spill_len;
        scratch.len = 0;
        unsigned char *p = sbuf_reserve(&scratch, sz);
        if (!p)
            break;
        if (n)
            node_encode(n, p, map_lid, &m);
        else if ((rc = txn_spill_read(ct, e, p)) != SOP_OK)
            goto fail;
        uint64_t real = map_lid(&m, e->lid);
        size_t at = written + log_put_blob(&b, LOG_KIND_NODE, real, 0, p, sz);
        bnodes[c.n_blobs] = n;
        c.blobs[c.n_blobs++] = (log_blob_ref){real, at, (uint32_t)sz};
        if (b.len >= BATCH_PIECE_BYTES && (rc = env_batch_flush(env, &b, base, &written)) != SOP_OK)
            goto fail;
    }
    for (size_t i = 0; i < lidtab_slots(&ct->vals); i++) {
        const value_ent *v = lidtab_at(&ct->vals, i);
        if (!v)
            continue;
        uint64_t real = map_lid(&m, v->lid);
        size_t at = written + log_put_blob(&b, LOG_KIND_VALUE, real, 0, v->data, v->len);
        bnodes[c.n_blobs] = NULL;
        c.blobs[c.n_blobs++] = (log_blob_ref){real, at, (uint32_t)v->len};
        if (b.len >= BATCH_PIECE_BYTES && (rc = env_batch_flush(env, &b, base, &written)) != SOP_OK)
            goto fail;
    }
    c.seq = seq;
    c.next_lid = next_lid;
    c.durable_seq = __atomic_load_n(&env->durable_seq, __ATOMIC_RELAXED);
    c.next_store_id = next_store_id;
    c.n_freed = (uint32_t)ct->nfreed;
    c.freed = ct->freed;
    c.cat_ops = ops.p;
    c.cat_ops_len = (uint32_t)ops.len;
    if (b.err || scratch.err || ops.err) {
        rc = sop_report(SOP_NOMEM, "commit batch");
        goto fail;
    }
    rc = env_batch_finish(env, &b, &c, base, written);
    c.freed = NULL;
    written = 0; /* the batch is whole: nothing to cut back */
    if (rc != SOP_OK)
        goto fail;

    /* WRITTEN: install the versions and the new catalog (the private nodes
     * become cached versions: their reservation ends) */
    txn_unreserve(t);
    catalog *nc;
    rc = cat_apply(env->seq_cat, seq, ops.p, ops.len, &nc);
    if (rc != SOP_OK) {
        pthread_mutex_lock(&env->mu);
        env->poisoned = 1;
        pthread_mutex_unlock(&env->mu);
        goto fail;
    }
    for (uint32_t i = 0; i < c.n_blobs; i++) {
        node *n = bnodes[i];
        if (n) {
            /* the committed node becomes an immutable cached version */
            n->lid = c.blobs[i].lid;
            if (n->kind == NODE_INTERNAL)
                for (uint32_t k = 0; k <= n->count; k++)
                    n->child[k] = map_lid(&m, n->child[k]);
            else
                node_map_value_refs(n, map_lid, &m);
            n->is_mutable = 0;
        }
        int prc = env_put_version(env, c.blobs[i].lid, seq, LOC_MAKE(env->cur_file, base + c.blobs[i].off),
                                  c.blobs[i].len, n);
        if (prc != SOP_OK && rc == SOP_OK)
            rc = prc;
    }
    for (size_t i = 0; i < ct->nfreed; i++) {
        int prc = reg_put(env->reg, ct->freed[i], seq, 0, 0, NULL);
        if (prc != SOP_OK && rc == SOP_OK)
            rc = prc;
    }
    cat_unref(env->seq_cat);
    env->seq_cat = nc;
    __atomic_store_n(&env->seq_last, seq, __ATOMIC_RELAXED);
    env->next_lid = next_lid;
    env->next_store_id = next_store_id;
    pthread_mutex_lock(&env->mu);
    if (rc == SOP_OK)
        rc = push_pending(env, seq, nc);
    if (rc != SOP_OK)
        env->poisoned = 1; /* in-memory state no longer matches the log */
    env->written_seq = seq;
    pthread_mutex_unlock(&env->mu);
    if (rc != SOP_OK)
        goto fail;
    if (readers_log_appended(env) != SOP_OK)
        sop_clear_errmsg(); /* others then see this commit at the next epoch move */
    env_unlock_commit(env);
    locked = 0;
    sbuf_free(&b);
    sbuf_free(&scratch);
    sbuf_free(&ops);
    sop_free(m.real);
    log_commit_free(&c);
    for (size_t i = 0; i < nnew; i++)
        def_unref(newdefs[i]);
    sop_free(newdefs);
    sop_free(bnodes);
    txn_free_merge(mt);
    /* DURABLE, then PUBLISHED */
    return env_sync_upto(env, seq);

fail:
    if (written) {
        /* pieces of a batch that will not be finished: cut them off (their
         * zero header already ends the log there) */
        sop_file *f = env->files[env->cur_file];
        if (f->io->truncate(f, base) == SOP_OK)
            env->alloc_end = base;
        else
            sop_clear_errmsg();
    }
out:
    if (locked)
        env_unlock_commit(env);
    sbuf_free(&b);
    sbuf_free(&scratch);
    sbuf_free(&ops);
    sop_free(m.real);
    c.freed = NULL;
    log_commit_free(&c);
    for (size_t i = 0; i < nnew; i++)
        def_unref(newdefs[i]);
    sop_free(newdefs);
    sop_free(bnodes);
    txn_free_merge(mt);
    return rc;
}
