/*
 * test_damage.c - damage in the newest log file is never silently cut off.
 * A database is written by several threads and by several processes at once
 * (group commit: the durable marks of the batches right after a commit lag
 * behind it), then one byte is flipped
 *  - in a commit in the middle of the newest log file, or
 *  - in its very last commit (written whole, so not a torn write);
 * every open, writable or read-only, must refuse with SOP_CORRUPT naming
 * the file, the offset and the commit, and leave every file byte for byte
 * as it was.  A torn tail (the last commit's blocks never written) is still
 * cut, and the commits before it are all there.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[64];
static const sop_env_options opts = {.log_file_bytes = 4u << 20};

static void new_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_dmg_XXXXXX");
    if (!mkdtemp(dir))
        abort();
}

static void remove_dir(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

static uint64_t file_hash(const char *p)
{
    uint64_t h = 1469598103934665603ull;
    FILE *f = fopen(p, "rb");
    if (!f)
        return 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        h = (h ^ (unsigned)c) * 1099511628211ull;
    fclose(f);
    return h;
}

/* Hash of every file of dir (log files, checkpoint, tables). */
static uint64_t folder_hash(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "cd %s && ls -1", dir);
    FILE *ls = popen(cmd, "r");
    uint64_t h = 0;
    char name[256];
    while (ls && fgets(name, sizeof name, ls)) {
        name[strcspn(name, "\n")] = 0;
        char p[400];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        h = h * 31 + file_hash(p);
    }
    if (ls)
        pclose(ls);
    return h;
}

static int commit_items(sop_env *env, int who, int n)
{
    int acked = 0;
    for (int i = 0; i < n; i++) {
        char key[32], val[200];
        snprintf(key, sizeof key, "w%02d-%05d", who, i);
        memset(val, 'a' + who % 26, sizeof val);
        for (int attempt = 0; attempt < 200; attempt++) {
            sop_txn *t = NULL;
            sop_store *s = NULL;
            sop_store_options o = {.slot_length = 32, .is_unique = 1};
            int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
            if (rc == SOP_OK)
                rc = sop_store_open(t, "items", &o, &s);
            if (rc == SOP_OK) {
                sop_val k = {strlen(key), key}, v = {sizeof val, val};
                rc = sop_add(s, &k, NULL, &v, NULL);
            }
            if (rc == SOP_OK) {
                rc = sop_txn_commit(t);
                t = NULL;
            }
            sop_txn_abort(t);
            if (rc == SOP_OK) {
                acked++;
                break;
            }
            if (attempt == 199)
                fprintf(stderr, "writer %d: gave up: %s\n", who, sop_errmsg());
            if (rc != SOP_CONFLICT) {
                fprintf(stderr, "writer %d: %s: %s\n", who, sop_errname(rc), sop_errmsg());
                return acked;
            }
        }
    }
    return acked;
}

typedef struct worker {
    sop_env *env;
    int who, acked;
} worker;

static void *thread_main(void *arg)
{
    worker *w = arg;
    w->acked = commit_items(w->env, w->who, 60);
    return NULL;
}

/* 4 threads of one process commit at once (group commit). */
static void write_with_threads(void)
{
    sop_env *env = NULL;
    if (sop_env_open(dir, &opts, &env) != SOP_OK)
        abort();
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){env, i, 0};
        pthread_create(&th[i], NULL, thread_main, &w[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        if (w[i].acked != 60)
            abort();
    sop_env_close(env);
}

/* 3 processes with 2 threads each commit at once. */
static void write_with_processes(void)
{
    pid_t pids[3];
    fflush(NULL);
    for (int p = 0; p < 3; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            sop_env *env = NULL;
            if (sop_env_open(dir, &opts, &env) != SOP_OK) {
                fprintf(stderr, "writer open: %s\n", sop_errmsg());
                _exit(1);
            }
            pthread_t th[2];
            worker w[2];
            for (int i = 0; i < 2; i++) {
                w[i] = (worker){env, 10 + p * 2 + i, 0};
                pthread_create(&th[i], NULL, thread_main, &w[i]);
            }
            for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
            sop_env_close(env);
            _exit(w[0].acked == 60 && w[1].acked == 60 ? 0 : 2);
        }
    }
    for (int p = 0; p < 3; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "writer process %d: status %d\n", p, st);
            abort();
        }
    }
}

/* Offsets of the batches of the newest log file (batch headers start with
 * the magic "SOPC" and carry their length at +16). */
static int batch_offsets(char *path, size_t pn, uint64_t *offs, int max)
{
    int newest = 0;
    for (int no = 1; no < 100; no++) {
        char p[300];
        struct stat st;
        snprintf(p, sizeof p, "%s/log-%08d.sop", dir, no);
        if (stat(p, &st) == 0)
            newest = no;
    }
    snprintf(path, pn, "%s/log-%08d.sop", dir, newest);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int n = 0;
    uint64_t off = 64;
    unsigned char h[32];
    while (n < max && fseek(f, (long)off, SEEK_SET) == 0 && fread(h, 1, 32, f) == 32 && !memcmp(h, "SOPC", 4)) {
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--)
            len = len << 8 | h[16 + i];
        offs[n++] = off;
        off += len;
    }
    fclose(f);
    return n;
}

static void flip(const char *path, uint64_t at)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, (long)at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)at, SEEK_SET);
    fputc(c ^ 0x04, f);
    fclose(f);
}

/* Every open refuses, naming file, offset and commit; nothing changes. */
static void expect_refused(const char *path, uint64_t off)
{
    uint64_t before = folder_hash();
    char want[64];
    snprintf(want, sizeof want, "offset %llu: commit", (unsigned long long)off);
    const char *base = strrchr(path, '/') + 1;
    for (int ro = 0; ro <= 1; ro++) {
        sop_env_options o = opts;
        o.flags = ro ? SOP_ENV_RDONLY : 0;
        sop_env *env = NULL;
        CHECK_RC(sop_env_open(dir, &o, &env), SOP_CORRUPT);
        CHECK(env == NULL);
        CHECK(strstr(sop_errmsg(), base) != NULL);
        CHECK(strstr(sop_errmsg(), want) != NULL);
        if (!strstr(sop_errmsg(), want))
            fprintf(stderr, "message: %s (want '%s')\n", sop_errmsg(), want);
        sop_env_close(env);
    }
    CHECK(folder_hash() == before);
}

static void damage_middle(void (*write)(void))
{
    new_dir();
    write();
    char path[300];
    uint64_t offs[4096];
    int n = batch_offsets(path, sizeof path, offs, 4096);
    REQUIRE(n > 20);
    /* several commits in the middle: each alone is refused */
    int picks[3] = {n / 3, n / 2, n - 3};
    for (int i = 0; i < 3; i++) {
        uint64_t at = offs[picks[i]];
        flip(path, at + 100);
        expect_refused(path, at);
        flip(path, at + 100); /* undo */
    }
    /* undamaged again: opens, and all is there */
    sop_env *env = NULL;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    char *report = NULL;
    CHECK_RC(sop_env_check(env, &report), SOP_OK);
    sop_free(report);
    sop_env_close(env);
    remove_dir();
}

TEST(mid_log_damage_threads)
{
    damage_middle(write_with_threads);
}

TEST(mid_log_damage_processes)
{
    damage_middle(write_with_processes);
}

/* The last commit, written whole, with a flipped byte: rot, not a torn
 * write; its blocks zeroed instead: torn, cut, and the rest is there. */
TEST(last_commit_rot_and_torn)
{
    new_dir();
    write_with_threads();
    char path[300];
    uint64_t offs[4096];
    int n = batch_offsets(path, sizeof path, offs, 4096);
    REQUIRE(n > 20);
    uint64_t last = offs[n - 1];
    flip(path, last + 100);
    expect_refused(path, last);
    flip(path, last + 100);
    /* torn: the sector holding byte last+100 reads as zeros, as if the
     * write never reached the disk */
    FILE *f = fopen(path, "r+b");
    uint64_t sec = (last + 100) / 512 * 512;
    if (sec < last)
        sec = last; /* keep the previous batch whole */
    char z[512] = {0};
    fseek(f, (long)sec, SEEK_SET);
    fwrite(z, 1, 512 - (size_t)(sec % 512), f);
    fclose(f);
    sop_env *env = NULL;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    REQUIRE(env != NULL);
    sop_txn *t = NULL;
    sop_store *s = NULL;
    uint64_t count = 0;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    REQUIRE(t != NULL);
    REQUIRE(sop_store_open(t, "items", NULL, &s) == SOP_OK);
    CHECK_RC(sop_store_count(s, &count), SOP_OK);
    CHECK(count == 239); /* 240 committed, the torn last one cut */
    sop_txn_abort(t);
    sop_env_close(env);
    remove_dir();
}

int main(void)
{
    RUN(mid_log_damage_threads);
    RUN(mid_log_damage_processes);
    RUN(last_commit_rot_and_torn);
    TEST_EXIT();
}
