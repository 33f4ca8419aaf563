/*
 * bench_mp.c - several writer processes on one database: committed
 * transactions per second with 1, 2 and 4 processes, each committing durable
 * one-item transactions (random 16-byte keys, 100-byte values) into the same
 * store for a fixed time; against SQLite in WAL mode with synchronous=FULL
 * (the usual multi-process baseline), in the same run.
 *
 *   bench_mp [seconds per run (default 3)] [runs (default 3)]
 * Prints one JSON line per run and a markdown table of medians.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void fill_key(unsigned char k[16], unsigned *seed)
{
    for (int i = 0; i < 16; i++)
        k[i] = (unsigned char)rand_r(seed);
}

/* one writer process: commits until the deadline, returns the count */
static long sop_writer(const char *dir, double deadline, unsigned seed)
{
    sop_env *env;
    if (sop_env_open(dir, NULL, &env) != SOP_OK)
        return -1;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 1000;
    o.is_unique = 1;
    char val[100];
    memset(val, 'v', sizeof val);
    long n = 0;
    while (now() < deadline) {
        unsigned char k[16];
        fill_key(k, &seed);
        int rc;
        do {
            sop_txn *t;
            sop_store *s;
            if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "b", &o, &s))
                return -1;
            sop_val kk = {16, k}, v = {100, val};
            sop_add(s, &kk, NULL, &v, NULL);
            rc = sop_txn_commit(t);
        } while (rc == SOP_CONFLICT);
        if (rc != SOP_OK)
            return -1;
        n++;
    }
    sop_env_close(env);
    return n;
}

static long sqlite_writer(const char *dir, double deadline, unsigned seed)
{
    char path[512];
    snprintf(path, sizeof path, "%s/db.sqlite", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t(k BLOB PRIMARY KEY, v BLOB)", NULL, NULL, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t VALUES(?,?)", -1, &st, NULL);
    char val[100];
    memset(val, 'v', sizeof val);
    long n = 0;
    while (now() < deadline) {
        unsigned char k[16];
        fill_key(k, &seed);
        sqlite3_bind_blob(st, 1, k, 16, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, val, 100, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_BUSY)
            sqlite3_reset(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return -1;
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static double run(int engine, int procs, double secs)
{
    char dir[] = "/tmp/sop_bench_mp_XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    if (engine == 1) { /* create the table before the race */
        double d = now();
        sqlite_writer(dir, d, 1);
    }
    long *counts = mmap(NULL, sizeof(long) * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double start = now() + 0.2, deadline = start + secs;
    pid_t pids[8];
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            while (now() < start)
                ;
            counts[p] = engine == 0 ? sop_writer(dir, deadline, 17u + (unsigned)p * 7919u)
                                    : sqlite_writer(dir, deadline, 17u + (unsigned)p * 7919u);
            _exit(0);
        }
    }
    long total = 0;
    for (int p = 0; p < procs; p++) {
        waitpid(pids[p], NULL, 0);
        total += counts[p] < 0 ? 0 : counts[p];
    }
    munmap(counts, sizeof(long) * 8);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return (double)total / secs;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    const int procs[3] = {1, 2, 4};
    double med[2][3];
    for (int pi = 0; pi < 3; pi++) {
        double r[2][16];
        for (int k = 0; k < runs && k < 16; k++)
            for (int e = 0; e < 2; e++) { /* interleave the engines */
                r[e][k] = run(e, procs[pi], secs);
                printf("{\"engine\":\"%s\",\"processes\":%d,\"run\":%d,\"commits_per_s\":%.1f}\n",
                       e ? "sqlite" : "sop", procs[pi], k + 1, r[e][k]);
                fflush(stdout);
            }
        for (int e = 0; e < 2; e++) {
            qsort(r[e], (size_t)runs, sizeof(double), cmp);
            med[e][pi] = r[e][runs / 2];
        }
    }
    printf("\n| writer processes | sop commits/s | SQLite WAL FULL commits/s | sop / SQLite |\n|---|---|---|---|\n");
    for (int pi = 0; pi < 3; pi++)
        printf("| %d | %.0f | %.0f | %.2fx |\n", procs[pi], med[0][pi], med[1][pi], med[0][pi] / med[1][pi]);
    return 0;
}
