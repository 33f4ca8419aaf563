/*
 * test_multiprocess.c - several processes on one database folder.
 *  - a long reader in one process keeps its snapshot while another process
 *    commits thousands of transactions, compacts and checkpoints: old log
 *    files are kept while the reader lives and reclaimed after it exits;
 *  - processes writing the same store at once merge, and see each other's
 *    commits.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];
static const sop_env_options opts = {0, SOP_ENV_NOSYNC, 64u << 10};

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

static void fill(sop_env *env, int round)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    char val[500];
    if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "s", &o, &s))
        abort();
    for (int i = 0; i < 50; i++) {
        memset(val, 'a' + round % 26, sizeof val);
        snprintf(val, 20, "%d", round);
        sop_val k = ikey(&kb, i), v = {sizeof val, val};
        sop_upsert(s, &k, NULL, &v);
    }
    int rc;
    while ((rc = sop_txn_commit(t)) == SOP_CONFLICT) {
        if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "s", &o, &s))
            abort();
        for (int i = 0; i < 50; i++) {
            sop_val k = ikey(&kb, i), v = {sizeof val, val};
            sop_upsert(s, &k, NULL, &v);
        }
    }
    if (rc != SOP_OK)
        abort();
    sop_key_free(&kb);
}

static int reads_round(sop_txn *t, int round)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_store *s;
    int ok = sop_store_open(t, "s", NULL, &s) == SOP_OK;
    for (int i = 0; i < 50 && ok; i++) {
        sop_val k = ikey(&kb, i), v;
        char want[20];
        snprintf(want, sizeof want, "%d", round);
        ok = sop_get(s, &k, NULL, &v, NULL) == SOP_OK && v.size == 500 && !strcmp(v.data, want);
    }
    sop_key_free(&kb);
    return ok;
}

static uint64_t log_bytes(sop_env *env)
{
    sop_env_stats st;
    sop_env_stat(env, &st);
    return st.log_bytes;
}

TEST(long_reader_in_another_process)
{
    snprintf(dir, sizeof dir, "/tmp/sop_mp_XXXXXX");
    REQUIRE(mkdtemp(dir));
    sop_env *env;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    fill(env, 0);
    int to_child[2], to_parent[2];
    REQUIRE(pipe(to_child) == 0 && pipe(to_parent) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        /* the reader: its own handle on the folder, one long snapshot */
        sop_env *renv;
        char c = 0;
        if (sop_env_open(dir, &opts, &renv) != SOP_OK)
            _exit(2);
        sop_txn *t;
        if (sop_txn_begin(renv, SOP_TXN_READ, 0, &t) != SOP_OK || !reads_round(t, 0))
            _exit(3);
        if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1)
            _exit(4);
        int ok = reads_round(t, 0); /* after thousands of commits elsewhere */
        sop_txn_abort(t);
        /* and a new snapshot sees the other process's latest commit */
        if (sop_txn_begin(renv, SOP_TXN_READ, 0, &t) != SOP_OK)
            _exit(5);
        ok = ok && reads_round(t, 1500);
        sop_txn_abort(t);
        sop_env_close(renv);
        _exit(ok ? 0 : 6);
    }
    char c;
    REQUIRE(read(to_parent[0], &c, 1) == 1);
    for (int round = 1; round <= 1500; round++)
        fill(env, round);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    uint64_t held = log_bytes(env);
    CHECK(write(to_child[1], "go", 1) == 1);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* its snapshot stayed whole */
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    uint64_t after = log_bytes(env);
    fprintf(stderr, "log bytes %llu while the other process read, %llu after it exited\n",
            (unsigned long long)held, (unsigned long long)after);
    CHECK(held > 4 * after);  /* old files were kept for the reader ... */
    CHECK(after < 1u << 20);  /* ... and reclaimed once it was gone */
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
}

TEST(writers_in_two_processes_merge)
{
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        REQUIRE(pids[p] >= 0);
        if (pids[p] == 0) {
            sop_env *env;
            if (sop_env_open(dir, &opts, &env) != SOP_OK)
                _exit(2);
            sop_keybuf kb;
            sop_key_init(&kb);
            sop_store_options o;
            memset(&o, 0, sizeof o);
            o.slot_length = 8;
            o.is_unique = 1;
            for (int n = 0; n < 300; n++) {
                int rc;
                do {
                    sop_txn *t;
                    sop_store *s;
                    if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "m", &o, &s))
                        _exit(3);
                    sop_val k = ikey(&kb, p * 100000 + n), v = {1, "x"};
                    if (sop_add(s, &k, NULL, &v, NULL))
                        _exit(4);
                    rc = sop_txn_commit(t);
                } while (rc == SOP_CONFLICT);
                if (rc != SOP_OK)
                    _exit(5);
            }
            sop_env_close(env);
            _exit(0);
        }
    }
    for (int p = 0; p < 2; p++) {
        int status;
        waitpid(pids[p], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    sop_env *env;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    sop_txn *t;
    sop_store *s;
    uint64_t n = 0;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "m", NULL, &s), SOP_OK);
    sop_store_count(s, &n);
    CHECK(n == 600);
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

int main(void)
{
    RUN(long_reader_in_another_process);
    RUN(writers_in_two_processes_merge);
    TEST_EXIT();
}
