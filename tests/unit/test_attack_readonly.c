/*
 * test_attack_readonly.c - odd files in a database folder (helper h5).
 *
 * fifo_named_like_database_file: a FIFO named like a log file, the
 * checkpoint or the lock file.  Opening the database (writable, read-only,
 * and through the `sop check` path, which opens read-only) must fail with a
 * clear error, never hang: open(2) of a FIFO waits for a writer forever.
 * Each open runs in a child process that is killed after 3 s.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[64];

static void new_db(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_atkr_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    sop_env *env = NULL;
    if (sop_env_open(dir, NULL, &env) != SOP_OK || sop_env_close(env) != SOP_OK)
        abort();
}

static void remove_dir(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* Open in a child: 0 = returned an error, 1 = opened, 2 = hung (killed). */
static int open_in_child(unsigned flags)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sop_env_options o = {.flags = flags};
        sop_env *env = NULL;
        int rc = sop_env_open(dir, &o, &env);
        if (rc != SOP_OK)
            fprintf(stderr, "  open refused: %s: %s\n", sop_errname(rc), sop_errmsg());
        _exit(rc == SOP_OK ? 1 : 0);
    }
    for (int i = 0; i < 300; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 2;
}

static void fifo_case(const char *name, int replace)
{
    new_db();
    char p[200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (replace)
        unlink(p);
    REQUIRE(mkfifo(p, 0644) == 0);
    for (int ro = 0; ro <= 1; ro++) {
        int r = open_in_child(ro ? SOP_ENV_RDONLY : 0);
        if (r == 2)
            fprintf(stderr, "  %s open hangs on the FIFO %s\n", ro ? "read-only" : "writable", name);
        CHECK(r != 2);
    }
    remove_dir();
}

TEST(fifo_named_like_database_file)
{
    fifo_case("log-00000002.sop", 0);
    fifo_case("log-00000001.sop", 1);
    fifo_case("sop.ckpt", 0);
    fifo_case("sop.lock", 1);
}

static int put_one(sop_env *env, const char *key)
{
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_store_options o = {.slot_length = 8, .is_unique = 1};
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc == SOP_OK)
        rc = sop_store_open(t, "kv", &o, &s);
    if (rc == SOP_OK) {
        sop_val k = {strlen(key), key}, v = {1, "v"};
        rc = sop_add(s, &k, NULL, &v, NULL);
    }
    if (rc == SOP_OK) {
        rc = sop_txn_commit(t);
        t = NULL;
    }
    sop_txn_abort(t);
    return rc;
}

/* sop.lock deleted and made anew while a process has the database open:
 * processes that open later lock the new file, this one the old, so both
 * could append at once.  Its next commit refuses (SOP_POISONED), nothing
 * written; a fresh open works and has exactly what was acknowledged. */
TEST(lock_file_replaced_while_open)
{
    snprintf(dir, sizeof dir, "/tmp/sop_lockrep_XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    sop_env *env = NULL;
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    CHECK_RC(put_one(env, "a"), SOP_OK);
    char p[128], q[140];
    snprintf(p, sizeof p, "%s/sop.lock", dir);
    snprintf(q, sizeof q, "%s.old", p);
    REQUIRE(rename(p, q) == 0);
    FILE *f = fopen(p, "w");
    REQUIRE(f != NULL);
    fclose(f);
    CHECK_RC(put_one(env, "b"), SOP_POISONED);
    CHECK(strstr(sop_errmsg(), "sop.lock") != NULL);
    sop_env_close(env);
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    CHECK_RC(put_one(env, "a"), SOP_KEYEXIST);
    CHECK_RC(put_one(env, "b"), SOP_OK); /* "b" was not written before */
    sop_env_close(env);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

int main(void)
{
    RUN(fifo_named_like_database_file);
    RUN(lock_file_replaced_while_open);
    TEST_EXIT();
}
