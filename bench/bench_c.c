/*
 * bench_c.c - libsop against LMDB and SQLite, side by side, in one run.
 *
 *   bench_c -w WORKLOAD [-n N] [-o rand|seq] [-e sop,lmdb,sqlite] [-r RUNS]
 *           [-s SLOT] [-k ITEMS_PER_TXN] [-t THREADS] [-d SECONDS]
 *           [-c CACHE_MIB] [-y 0|1] [-T TMPDIR] [-b BATCH] [-p point,scan,mixed]
 *
 * Workloads (-w):
 *   bulk     the original's benchmark: insert N items in one transaction,
 *            read them all in one transaction (find + value), delete them all
 *            in one transaction, then insert the same N again (space reuse).
 *   durable  preload N items, then for -d seconds commit transactions of -k
 *            new items each from -t threads; every commit durable.
 *   reads    preload N items, then: random point reads (N lookups, capped at
 *            1,000,000) in one read transaction; 10,000 range scans of 100
 *            items; then 90% read / 10% write with 2 threads for -d seconds
 *            (each operation its own transaction).
 *   big      a data set larger than the cache: -c MiB of cache (sop and
 *            SQLite), N items inserted in transactions of -b items, then
 *            random point reads and range scans.
 *
 * Every (engine, run) executes in a fresh child process (fork) in a fresh
 * temporary folder, so peak RSS (wait4 ru_maxrss) is that run's alone.  The
 * child sends one JSON line per phase through a pipe; the parent adds the
 * run's peak RSS and prints the lines (JSON Lines) on stdout.
 *
 * Keys: 16 bytes.  seq: big-endian i.  rand: 16 pseudo-random bytes derived
 * from i (splitmix64), identical for every engine.  Values: 100 bytes derived
 * from i.  sop gets the raw 16 bytes as its key (memcmp order, no encoder);
 * LMDB and SQLite (BLOB PRIMARY KEY, WITHOUT ROWID) get the same bytes.
 *
 * Durability (-y; default per workload: bulk 1, durable 1, reads 0, big 0):
 *   1: sop default (fdatasync per commit), LMDB default (sync per commit),
 *      SQLite journal_mode=WAL, synchronous=FULL.
 *   0: sop SOP_ENV_NOSYNC, LMDB MDB_NOSYNC, SQLite WAL, synchronous=NORMAL.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"

#define KEYLEN 16
#define VALLEN 100
#define SCAN_LEN 100
#define NSCANS 10000

/* ---------------------------------------------------------------- config */
typedef struct cfg {
    const char *workload;
    uint64_t n;
    int rand_order;
    int runs;
    unsigned slot;
    int per_txn;
    int threads;
    double secs;
    size_t cache_mib; /* 0 = engine default (sop 256 MiB); SQLite gets the same */
    int sync;
    const char *tmp;
    uint64_t batch;
    char engines[64];
    const char *phases; /* reads/big: subset of point,scan,mixed (default all) */
} cfg;

static cfg C;
static int out_fd = 1; /* child: the pipe */

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_c: %s: %s\n", what, detail ? detail : "");
    _exit(2);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------- key / value */
static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}
static void make_key(uint64_t i, unsigned char *k)
{
    if (C.rand_order) {
        put_be64(k, splitmix(i * 2 + 1));
        put_be64(k + 8, splitmix(i * 2 + 2));
    } else {
        put_be64(k, 0);
        put_be64(k + 8, i);
    }
}
static void make_val(uint64_t i, unsigned gen, unsigned char *v)
{
    uint64_t x = splitmix(i ^ ((uint64_t)gen << 48));
    for (int j = 0; j < VALLEN; j += 8) {
        uint64_t w = x + (uint64_t)j;
        memcpy(v + j, &w, (VALLEN - j) < 8 ? (size_t)(VALLEN - j) : 8);
    }
}
typedef struct rng {
    uint64_t s;
} rng;
static uint64_t rnd(rng *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    return splitmix(r->s);
}

/* -------------------------------------------------------------- disk, RSS */
static uint64_t du_total;
static int du_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)p;
    (void)f;
    if (flag == FTW_F)
        du_total += (uint64_t)st->st_blocks * 512u;
    return 0;
}
static uint64_t du(const char *dir)
{
    du_total = 0;
    nftw(dir, du_cb, 16, FTW_PHYS);
    return du_total;
}
static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(p);
    return 0;
}
static void rm_rf(const char *dir) { nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static long vm_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') {
            v = atol(line + n + 1);
            break;
        }
    fclose(f);
    return v;
}

/* -------------------------------------------------------------- engines */
enum { E_SOP, E_LMDB, E_SQLITE };
static const char *ENAMES[] = {"sop", "lmdb", "sqlite"};

typedef struct db {
    int kind;
    char dir[512];
    sop_env *senv;
    MDB_env *menv;
    MDB_dbi dbi;
    char sqpath[600];
} db;

typedef struct th {
    db *d;
    /* sop */
    sop_txn *t;
    sop_store *s;
    sop_cursor *c;
    /* lmdb */
    MDB_txn *mt;
    MDB_cursor *mc;
    /* sqlite */
    sqlite3 *sq;
    sqlite3_stmt *ins, *get, *del, *upd, *scan, *beg, *begr, *com, *rb;
    uint64_t sink;
    uint64_t conflicts;
} th;

static void sq_exec(sqlite3 *sq, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(sq, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err);
}
static sqlite3_stmt *sq_prep(sqlite3 *sq, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(sq, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(sq));
    return st;
}

static size_t cache_bytes(void) { return C.cache_mib ? C.cache_mib << 20 : (size_t)256 << 20; }

static void db_open(db *d)
{
    int rc;
    switch (d->kind) {
    case E_SOP: {
        sop_env_options o = {0};
        o.cache_bytes = cache_bytes();
        o.flags = C.sync ? 0 : SOP_ENV_NOSYNC;
        if ((rc = sop_env_open(d->dir, &o, &d->senv)) != SOP_OK)
            die("sop_env_open", sop_errmsg());
        break;
    }
    case E_LMDB: {
        MDB_txn *t;
        if (mdb_env_create(&d->menv) || mdb_env_set_mapsize(d->menv, (size_t)64 << 30) ||
            mdb_env_set_maxreaders(d->menv, 16))
            die("mdb_env_create", "");
        if ((rc = mdb_env_open(d->menv, d->dir, C.sync ? 0 : MDB_NOSYNC, 0644)))
            die("mdb_env_open", mdb_strerror(rc));
        if (mdb_txn_begin(d->menv, NULL, 0, &t) || mdb_dbi_open(t, NULL, 0, &d->dbi) ||
            mdb_txn_commit(t))
            die("mdb_dbi_open", "");
        break;
    }
    case E_SQLITE: {
        sqlite3 *sq;
        snprintf(d->sqpath, sizeof d->sqpath, "%s/bench.db", d->dir);
        if (sqlite3_open(d->sqpath, &sq) != SQLITE_OK)
            die("sqlite3_open", d->sqpath);
        sq_exec(sq, "PRAGMA journal_mode=WAL");
        sq_exec(sq, "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
        sqlite3_close(sq);
        break;
    }
    }
}
static void db_close(db *d)
{
    switch (d->kind) {
    case E_SOP:
        if (sop_env_close(d->senv) != SOP_OK)
            die("sop_env_close", sop_errmsg());
        d->senv = NULL;
        break;
    case E_LMDB:
        mdb_env_close(d->menv);
        d->menv = NULL;
        break;
    case E_SQLITE:
        break;
    }
}

static void th_init(th *t, db *d)
{
    memset(t, 0, sizeof *t);
    t->d = d;
    if (d->kind != E_SQLITE)
        return;
    if (sqlite3_open_v2(d->sqpath, &t->sq, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        die("sqlite3_open", d->sqpath);
    char pragma[128];
    sqlite3_busy_timeout(t->sq, 60000);
    sq_exec(t->sq, C.sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%zu", cache_bytes() >> 10);
    sq_exec(t->sq, pragma);
    t->ins = sq_prep(t->sq, "INSERT INTO kv(k,v) VALUES(?,?)");
    t->get = sq_prep(t->sq, "SELECT v FROM kv WHERE k=?");
    t->del = sq_prep(t->sq, "DELETE FROM kv WHERE k=?");
    t->upd = sq_prep(t->sq, "UPDATE kv SET v=? WHERE k=?");
    t->scan = sq_prep(t->sq, "SELECT k,v FROM kv WHERE k>=? ORDER BY k LIMIT 100");
    t->beg = sq_prep(t->sq, "BEGIN IMMEDIATE");
    t->begr = sq_prep(t->sq, "BEGIN");
    t->com = sq_prep(t->sq, "COMMIT");
    t->rb = sq_prep(t->sq, "ROLLBACK");
}
static void th_fini(th *t)
{
    if (t->sq) {
        sqlite3_stmt *sts[] = {t->ins, t->get, t->del, t->upd, t->scan, t->beg, t->begr, t->com, t->rb};
        for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
            sqlite3_finalize(sts[i]);
        if (sqlite3_close(t->sq) != SQLITE_OK)
            die("sqlite3_close", "busy");
    }
}
static void sq_step_done(th *t, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        die("sqlite3_step", sqlite3_errmsg(t->sq));
    sqlite3_reset(st);
}

static const char *STORE = "bench";

/* Begin a transaction: write=1 read-write, 0 read-only. */
static void tx_begin(th *t, int write)
{
    int rc;
    switch (t->d->kind) {
    case E_SOP: {
        if ((rc = sop_txn_begin(t->d->senv, write ? SOP_TXN_WRITE : SOP_TXN_READ, 0, &t->t)))
            die("sop_txn_begin", sop_errmsg());
        sop_store_options o = {0};
        o.slot_length = C.slot;
        o.is_unique = 1;
        o.value_placement = SOP_VALUE_SMALL;
        if ((rc = sop_store_open(t->t, STORE, write ? &o : NULL, &t->s)))
            die("sop_store_open", sop_errmsg());
        t->c = NULL;
        break;
    }
    case E_LMDB:
        if ((rc = mdb_txn_begin(t->d->menv, NULL, write ? 0 : MDB_RDONLY, &t->mt)))
            die("mdb_txn_begin", mdb_strerror(rc));
        t->mc = NULL;
        break;
    case E_SQLITE:
        sq_step_done(t, write ? t->beg : t->begr);
        break;
    }
}
/* Commit; returns 1 on a sop conflict (caller retries), 0 otherwise. */
static int tx_commit(th *t)
{
    int rc;
    switch (t->d->kind) {
    case E_SOP:
        rc = sop_txn_commit(t->t);
        t->t = NULL;
        t->c = NULL;
        if (rc == SOP_CONFLICT) {
            t->conflicts++;
            return 1;
        }
        if (rc)
            die("sop_txn_commit", sop_errmsg());
        break;
    case E_LMDB:
        if (t->mc)
            mdb_cursor_close(t->mc);
        t->mc = NULL;
        if ((rc = mdb_txn_commit(t->mt)))
            die("mdb_txn_commit", mdb_strerror(rc));
        t->mt = NULL;
        break;
    case E_SQLITE:
        sq_step_done(t, t->com);
        break;
    }
    return 0;
}
static void tx_end_read(th *t)
{
    switch (t->d->kind) {
    case E_SOP:
        if (sop_txn_commit(t->t))
            die("sop_txn_commit(read)", sop_errmsg());
        t->t = NULL;
        t->c = NULL;
        break;
    case E_LMDB:
        if (t->mc)
            mdb_cursor_close(t->mc);
        t->mc = NULL;
        mdb_txn_abort(t->mt);
        t->mt = NULL;
        break;
    case E_SQLITE:
        sq_step_done(t, t->com);
        break;
    }
}

static void op_put(th *t, const unsigned char *k, const unsigned char *v)
{
    int rc;
    switch (t->d->kind) {
    case E_SOP: {
        sop_val key = {KEYLEN, k}, val = {VALLEN, v};
        if ((rc = sop_add(t->s, &key, NULL, &val, NULL)))
            die("sop_add", sop_errmsg());
        break;
    }
    case E_LMDB: {
        MDB_val key = {KEYLEN, (void *)k}, val = {VALLEN, (void *)v};
        if ((rc = mdb_put(t->mt, t->d->dbi, &key, &val, MDB_NOOVERWRITE)))
            die("mdb_put", mdb_strerror(rc));
        break;
    }
    case E_SQLITE:
        sqlite3_bind_blob(t->ins, 1, k, KEYLEN, SQLITE_STATIC);
        sqlite3_bind_blob(t->ins, 2, v, VALLEN, SQLITE_STATIC);
        if (sqlite3_step(t->ins) != SQLITE_DONE)
            die("insert", sqlite3_errmsg(t->sq));
        sqlite3_reset(t->ins);
        break;
    }
}
static void op_upd(th *t, const unsigned char *k, const unsigned char *v)
{
    int rc;
    switch (t->d->kind) {
    case E_SOP: {
        sop_val key = {KEYLEN, k}, val = {VALLEN, v};
        if ((rc = sop_update(t->s, &key, NULL, &val)))
            die("sop_update", sop_errmsg());
        break;
    }
    case E_LMDB: {
        MDB_val key = {KEYLEN, (void *)k}, val = {VALLEN, (void *)v};
        if ((rc = mdb_put(t->mt, t->d->dbi, &key, &val, 0)))
            die("mdb_put", mdb_strerror(rc));
        break;
    }
    case E_SQLITE:
        sqlite3_bind_blob(t->upd, 1, v, VALLEN, SQLITE_STATIC);
        sqlite3_bind_blob(t->upd, 2, k, KEYLEN, SQLITE_STATIC);
        if (sqlite3_step(t->upd) != SQLITE_DONE)
            die("update", sqlite3_errmsg(t->sq));
        sqlite3_reset(t->upd);
        break;
    }
}
static void touch(th *t, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (n != VALLEN)
        die("value", "wrong size");
    t->sink += b[0] + b[n - 1];
}
/* find + value.  cursor=1 (sop): sop_cursor_find + sop_cursor_get, as the
 * original's Find + GetCurrentValue; cursor=0: sop_get. */
static void op_get(th *t, const unsigned char *k, int cursor)
{
    int rc;
    switch (t->d->kind) {
    case E_SOP: {
        sop_val key = {KEYLEN, k}, val;
        if (cursor) {
            if (!t->c && sop_cursor_open(t->s, &t->c))
                die("sop_cursor_open", sop_errmsg());
            if ((rc = sop_cursor_find(t->c, &key)))
                die("sop_cursor_find", sop_errmsg());
            if ((rc = sop_cursor_get(t->c, NULL, NULL, &val, NULL)))
                die("sop_cursor_get", sop_errmsg());
        } else if ((rc = sop_get(t->s, &key, NULL, &val, NULL)))
            die("sop_get", rc == SOP_NOTFOUND ? "not found" : sop_errmsg());
        touch(t, val.data, val.size);
        break;
    }
    case E_LMDB: {
        MDB_val key = {KEYLEN, (void *)k}, val;
        if ((rc = mdb_get(t->mt, t->d->dbi, &key, &val)))
            die("mdb_get", mdb_strerror(rc));
        touch(t, val.mv_data, val.mv_size);
        break;
    }
    case E_SQLITE:
        sqlite3_bind_blob(t->get, 1, k, KEYLEN, SQLITE_STATIC);
        if (sqlite3_step(t->get) != SQLITE_ROW)
            die("select", "not found");
        touch(t, sqlite3_column_blob(t->get, 0), (size_t)sqlite3_column_bytes(t->get, 0));
        sqlite3_reset(t->get);
        break;
    }
}
static void op_del(th *t, const unsigned char *k)
{
    int rc;
    switch (t->d->kind) {
    case E_SOP: {
        sop_val key = {KEYLEN, k};
        if ((rc = sop_remove(t->s, &key)))
            die("sop_remove", sop_errmsg());
        break;
    }
    case E_LMDB: {
        MDB_val key = {KEYLEN, (void *)k};
        if ((rc = mdb_del(t->mt, t->d->dbi, &key, NULL)))
            die("mdb_del", mdb_strerror(rc));
        break;
    }
    case E_SQLITE:
        sqlite3_bind_blob(t->del, 1, k, KEYLEN, SQLITE_STATIC);
        if (sqlite3_step(t->del) != SQLITE_DONE || sqlite3_changes(t->sq) != 1)
            die("delete", sqlite3_errmsg(t->sq));
        sqlite3_reset(t->del);
        break;
    }
}
/* Range scan: position at the first key >= k, read up to n items (key+value). */
static int op_scan(th *t, const unsigned char *k, int n)
{
    int rc, got = 0;
    switch (t->d->kind) {
    case E_SOP: {
        sop_val key = {KEYLEN, k}, kk, val;
        if (!t->c && sop_cursor_open(t->s, &t->c))
            die("sop_cursor_open", sop_errmsg());
        rc = sop_cursor_find(t->c, &key);
        if (rc != SOP_OK && rc != SOP_NOTFOUND)
            die("sop_cursor_find", sop_errmsg());
        while (got < n && sop_cursor_is_positioned(t->c)) {
            if (sop_cursor_get(t->c, &kk, NULL, &val, NULL))
                die("sop_cursor_get", sop_errmsg());
            touch(t, val.data, val.size);
            t->sink += ((const unsigned char *)kk.data)[0];
            got++;
            rc = sop_cursor_next(t->c);
            if (rc != SOP_OK && rc != SOP_NOTFOUND)
                die("sop_cursor_next", sop_errmsg());
        }
        break;
    }
    case E_LMDB: {
        MDB_val key = {KEYLEN, (void *)k}, val;
        if (!t->mc && (rc = mdb_cursor_open(t->mt, t->d->dbi, &t->mc)))
            die("mdb_cursor_open", mdb_strerror(rc));
        rc = mdb_cursor_get(t->mc, &key, &val, MDB_SET_RANGE);
        while (rc == 0 && got < n) {
            touch(t, val.mv_data, val.mv_size);
            t->sink += ((const unsigned char *)key.mv_data)[0];
            got++;
            rc = mdb_cursor_get(t->mc, &key, &val, MDB_NEXT);
        }
        if (rc && rc != MDB_NOTFOUND)
            die("mdb_cursor_get", mdb_strerror(rc));
        break;
    }
    case E_SQLITE:
        sqlite3_bind_blob(t->scan, 1, k, KEYLEN, SQLITE_STATIC);
        while (got < n && (rc = sqlite3_step(t->scan)) == SQLITE_ROW) {
            touch(t, sqlite3_column_blob(t->scan, 1), (size_t)sqlite3_column_bytes(t->scan, 1));
            t->sink += ((const unsigned char *)sqlite3_column_blob(t->scan, 0))[0];
            got++;
        }
        sqlite3_reset(t->scan);
        break;
    }
    return got;
}

/* -------------------------------------------------------------- reporting */
static void emit(db *d, const char *phase, uint64_t ops, double secs, const char *extra)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "\"engine\":\"%s\",\"workload\":\"%s\",\"n\":%llu,\"order\":\"%s\","
                     "\"slot\":%u,\"threads\":%d,\"per_txn\":%d,\"sync\":%d,\"cache_mib\":%zu,"
                     "\"phase\":\"%s\",\"ops\":%llu,\"secs\":%.6f,\"ops_s\":%.1f,"
                     "\"disk_bytes\":%llu,\"hwm_kb\":%ld%s%s\n",
                     ENAMES[d->kind], C.workload, (unsigned long long)C.n,
                     C.rand_order ? "rand" : "seq", d->kind == E_SOP ? C.slot : 0, C.threads,
                     C.per_txn, C.sync, cache_bytes() >> 20, phase, (unsigned long long)ops, secs,
                     secs > 0 ? ops / secs : 0.0, (unsigned long long)du(d->dir), vm_kb("VmHWM"),
                     extra ? "," : "", extra ? extra : "");
    if (write(out_fd, buf, (size_t)n) != n)
        die("write", strerror(errno));
}
static void sq_checkpoint(db *d)
{
    /* Not timed: fold the WAL into the main file so disk_bytes is the data. */
    if (d->kind == E_SQLITE) {
        sqlite3 *sq;
        sqlite3_open(d->sqpath, &sq);
        sq_exec(sq, "PRAGMA wal_checkpoint(TRUNCATE)");
        sqlite3_close(sq);
    }
}

/* One transaction of items [from, to): put (gen 0). Retries sop conflicts. */
static void load_range(th *t, uint64_t from, uint64_t to, unsigned gen)
{
    unsigned char k[KEYLEN], v[VALLEN];
    do {
        tx_begin(t, 1);
        for (uint64_t i = from; i < to; i++) {
            make_key(i, k);
            make_val(i, gen, v);
            op_put(t, k, v);
        }
    } while (tx_commit(t));
}

/* ------------------------------------------------------------ workloads */
static void w_bulk(db *d)
{
    th t;
    unsigned char k[KEYLEN];
    double t0;
    th_init(&t, d);

    t0 = now();
    load_range(&t, 0, C.n, 0);
    double ti = now() - t0;
    sq_checkpoint(d);
    emit(d, "insert", C.n, ti, NULL);

    t0 = now();
    tx_begin(&t, 0);
    for (uint64_t i = 0; i < C.n; i++) {
        make_key(i, k);
        op_get(&t, k, 1);
    }
    tx_end_read(&t);
    emit(d, "read", C.n, now() - t0, NULL);

    t0 = now();
    do {
        tx_begin(&t, 1);
        for (uint64_t i = 0; i < C.n; i++) {
            make_key(i, k);
            op_del(&t, k);
        }
    } while (tx_commit(&t));
    double td = now() - t0;
    sq_checkpoint(d);
    emit(d, "delete", C.n, td, NULL);

    t0 = now();
    load_range(&t, 0, C.n, 1);
    ti = now() - t0;
    sq_checkpoint(d);
    emit(d, "reinsert", C.n, ti, NULL);
    th_fini(&t);
}

typedef struct warg {
    db *d;
    int id;
    double until;
    uint64_t ops, commits, conflicts;
    int mode; /* 0 durable inserts, 1 mixed */
} warg;
static _Atomic uint64_t seq_next;
static pthread_barrier_t bar;

static void *w_thread(void *p)
{
    warg *a = p;
    th t;
    unsigned char k[KEYLEN], v[VALLEN];
    rng r = {splitmix(0x1234 + (uint64_t)a->id * 7919)};
    th_init(&t, a->d);
    pthread_barrier_wait(&bar);
    double end = now() + C.secs;
    while (now() < end) {
        if (a->mode == 0) {
            uint64_t base = atomic_fetch_add(&seq_next, (uint64_t)C.per_txn);
            do {
                tx_begin(&t, 1);
                for (int j = 0; j < C.per_txn; j++) {
                    make_key(base + (uint64_t)j, k);
                    make_val(base + (uint64_t)j, 0, v);
                    op_put(&t, k, v);
                }
            } while (tx_commit(&t));
            a->ops += (uint64_t)C.per_txn;
            a->commits++;
        } else {
            uint64_t x = rnd(&r);
            make_key(x % C.n, k);
            if ((x >> 32) % 10 == 0) {
                make_val(x, 2, v);
                do {
                    tx_begin(&t, 1);
                    op_upd(&t, k, v);
                } while (tx_commit(&t));
                a->commits++;
            } else {
                tx_begin(&t, 0);
                op_get(&t, k, 0);
                tx_end_read(&t);
            }
            a->ops++;
        }
    }
    a->conflicts = t.conflicts;
    th_fini(&t);
    return NULL;
}
static void run_threads(db *d, int nthreads, int mode, const char *phase)
{
    pthread_t tids[64];
    warg args[64];
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        args[i] = (warg){.d = d, .id = i, .mode = mode};
        pthread_create(&tids[i], NULL, w_thread, &args[i]);
    }
    pthread_barrier_wait(&bar);
    double t0 = now();
    uint64_t ops = 0, commits = 0, conflicts = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tids[i], NULL);
        ops += args[i].ops;
        commits += args[i].commits;
        conflicts += args[i].conflicts;
    }
    double el = now() - t0;
    pthread_barrier_destroy(&bar);
    char extra[160];
    snprintf(extra, sizeof extra, "\"commits\":%llu,\"commits_s\":%.1f,\"conflicts\":%llu",
             (unsigned long long)commits, commits / el, (unsigned long long)conflicts);
    emit(d, phase, ops, el, extra);
}

static void preload(db *d, uint64_t batch)
{
    th t;
    th_init(&t, d);
    double t0 = now();
    for (uint64_t i = 0; i < C.n; i += batch)
        load_range(&t, i, i + batch < C.n ? i + batch : C.n, 0);
    double el = now() - t0;
    th_fini(&t);
    sq_checkpoint(d);
    emit(d, "load", C.n, el, NULL);
}

static void w_durable(db *d)
{
    int saved = C.sync;
    /* preload without sync (one transaction), then reopen durable */
    db_close(d);
    C.sync = 0;
    db_open(d);
    preload(d, C.n);
    db_close(d);
    C.sync = saved;
    db_open(d);
    atomic_store(&seq_next, C.n);
    char ph[32];
    snprintf(ph, sizeof ph, "commit_k%d_t%d", C.per_txn, C.threads);
    run_threads(d, C.threads, 0, ph);
}

static int want(const char *phase) { return !C.phases || strstr(C.phases, phase) != NULL; }

static void reads_and_scans(db *d, const char *pfx)
{
    th t;
    unsigned char k[KEYLEN];
    rng r = {42};
    char ph[32];
    uint64_t nreads = C.n < 1000000 ? C.n : 1000000;
    th_init(&t, d);
    double t0 = now();
    if (!want("point"))
        goto scans;
    tx_begin(&t, 0);
    for (uint64_t i = 0; i < nreads; i++) {
        make_key(rnd(&r) % C.n, k);
        op_get(&t, k, 0);
    }
    tx_end_read(&t);
    snprintf(ph, sizeof ph, "%spoint_read", pfx);
    emit(d, ph, nreads, now() - t0, NULL);

scans:;
    uint64_t items = 0;
    if (!want("scan")) {
        th_fini(&t);
        return;
    }
    t0 = now();
    tx_begin(&t, 0);
    for (int i = 0; i < NSCANS; i++) {
        make_key(rnd(&r) % C.n, k);
        items += (uint64_t)op_scan(&t, k, SCAN_LEN);
    }
    tx_end_read(&t);
    double el = now() - t0;
    char extra[96];
    snprintf(extra, sizeof extra, "\"items\":%llu,\"items_s\":%.1f", (unsigned long long)items,
             items / el);
    snprintf(ph, sizeof ph, "%sscan100", pfx);
    emit(d, ph, NSCANS, el, extra);
    th_fini(&t);
}

static void w_reads(db *d)
{
    preload(d, C.n);
    reads_and_scans(d, "");
    if (want("mixed"))
        run_threads(d, 2, 1, "mixed90_10_t2");
}

static void w_big(db *d)
{
    preload(d, C.batch);
    reads_and_scans(d, "");
    if (d->kind == E_SOP) {
        sop_env_stats st;
        if (sop_env_stat(d->senv, &st) == SOP_OK)
            fprintf(stderr,
                    "  sop stats: cache_bytes=%llu node_reads=%llu log_bytes=%llu live_bytes=%llu\n",
                    (unsigned long long)st.cache_bytes, (unsigned long long)st.node_reads,
                    (unsigned long long)st.log_bytes, (unsigned long long)st.live_bytes);
    }
}

/* ---------------------------------------------------------------- driver */
static void child(int kind, int run)
{
    db d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    snprintf(d.dir, sizeof d.dir, "%s/bench-%s-%d-%d", C.tmp, ENAMES[kind], (int)getpid(), run);
    rm_rf(d.dir);
    if (mkdir(d.dir, 0755))
        die("mkdir", d.dir);
    db_open(&d);
    if (!strcmp(C.workload, "bulk"))
        w_bulk(&d);
    else if (!strcmp(C.workload, "durable"))
        w_durable(&d);
    else if (!strcmp(C.workload, "reads"))
        w_reads(&d);
    else if (!strcmp(C.workload, "big"))
        w_big(&d);
    else
        die("unknown workload", C.workload);
    db_close(&d);
    char extra[64];
    snprintf(extra, sizeof extra, "\"closed\":1");
    /* bytes on disk once closed (SQLite drops its WAL) */
    emit(&d, "closed", 0, 0, extra);
    rm_rf(d.dir);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_c -w bulk|durable|reads|big [-n N] [-o rand|seq] "
                    "[-e sop,lmdb,sqlite] [-r RUNS] [-s SLOT] [-k PER_TXN] [-t THREADS] "
                    "[-d SECS] [-c CACHE_MIB] [-y 0|1] [-T TMPDIR] [-b BATCH] [-p point,scan,mixed]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt, ysync = -1;
    C = (cfg){.workload = "bulk", .n = 10000, .rand_order = 1, .runs = 3, .slot = 1000,
              .per_txn = 1, .threads = 1, .secs = 3, .tmp = "/tmp", .batch = 10000};
    strcpy(C.engines, "sop,lmdb,sqlite");
    while ((opt = getopt(argc, argv, "w:n:o:e:r:s:k:t:d:c:y:T:b:p:h")) != -1) {
        switch (opt) {
        case 'w': C.workload = optarg; break;
        case 'n': C.n = strtoull(optarg, NULL, 10); break;
        case 'o': C.rand_order = strcmp(optarg, "seq") != 0; break;
        case 'e': snprintf(C.engines, sizeof C.engines, "%s", optarg); break;
        case 'r': C.runs = atoi(optarg); break;
        case 's': C.slot = (unsigned)atoi(optarg); break;
        case 'k': C.per_txn = atoi(optarg); break;
        case 't': C.threads = atoi(optarg); break;
        case 'd': C.secs = atof(optarg); break;
        case 'c': C.cache_mib = (size_t)atol(optarg); break;
        case 'y': ysync = atoi(optarg); break;
        case 'T': C.tmp = optarg; break;
        case 'b': C.batch = strtoull(optarg, NULL, 10); break;
        case 'p': C.phases = optarg; break;
        default: usage();
        }
    }
    if (C.n == 0 || C.runs < 1 || C.threads < 1 || C.threads > 64 || C.per_txn < 1 || !C.batch)
        usage();
    if (ysync < 0)
        ysync = (!strcmp(C.workload, "bulk") || !strcmp(C.workload, "durable")) ? 1 : 0;
    C.sync = ysync;

    int kinds[3], nk = 0;
    for (int e = 0; e < 3; e++)
        if (strstr(C.engines, ENAMES[e]))
            kinds[nk++] = e;
    /* runs interleave engines: run 1 of each engine, then run 2, ... */
    for (int run = 1; run <= C.runs; run++) {
        for (int j = 0; j < nk; j++) {
            int fds[2];
            if (pipe(fds))
                die("pipe", strerror(errno));
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                close(fds[0]);
                out_fd = fds[1];
                child(kinds[j], run);
                _exit(0);
            }
            close(fds[1]);
            /* collect the child's lines, then its rusage */
            size_t cap = 1 << 16, len = 0;
            char *buf = malloc(cap);
            ssize_t r;
            while ((r = read(fds[0], buf + len, cap - len - 1)) > 0) {
                len += (size_t)r;
                if (cap - len < 1024)
                    buf = realloc(buf, cap *= 2);
            }
            buf[len] = 0;
            close(fds[0]);
            int status;
            struct rusage ru;
            if (wait4(pid, &status, 0, &ru) < 0)
                die("wait4", strerror(errno));
            if (!WIFEXITED(status) || WEXITSTATUS(status)) {
                fprintf(stderr, "bench_c: %s run %d failed (status %d)\n", ENAMES[kinds[j]], run,
                        status);
                free(buf);
                return 1;
            }
            for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
                printf("{\"run\":%d,\"rss_kb\":%ld,%s}\n", run, ru.ru_maxrss, line);
            fflush(stdout);
            free(buf);
        }
    }
    return 0;
}
