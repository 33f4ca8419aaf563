/*
 * test_attack_fork.c - attacks on fork() safety (helper h5).
 *
 * child_outlives_parent_crash_mid_commit: a process forks while one of its
 * threads is mid-commit (holding the commit lock, a flock on sop.lock), then
 * crashes.  The child never uses or closes the inherited handle (a worker
 * that does other things, a Python multiprocessing worker: the Python layer
 * never closes the parent's Env in the child).  The child's copy of the
 * lock file's descriptor keeps the flock of the shared open file
 * description held, so no other process can open or commit until the child
 * exits.  Expected: an inherited handle holds no lock for a dead parent
 * (the child's copies of the lock descriptors are not kept), so a fresh
 * open and commit proceed at once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "io.h"
#include "sop.h"
#include "test.h"

static char dir[64];

static void new_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_atkf_XXXXXX");
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int put(sop_env *env, const char *key)
{
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_store_options o = {.slot_length = 16, .is_unique = 1};
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc == SOP_OK)
        rc = sop_store_open(t, "items", &o, &s);
    if (rc == SOP_OK) {
        sop_val k = {strlen(key), key}, v = {5, "value"};
        rc = sop_upsert(s, &k, NULL, &v);
    }
    if (rc == SOP_OK) {
        rc = sop_txn_commit(t);
        t = NULL;
    }
    sop_txn_abort(t);
    return rc;
}

/* an I/O table that stops forever in the first log write of a commit, after
 * telling the main thread (the commit lock is held then) */
static sop_io stuck_io;
static int ready[2];
static volatile int armed;

static int stuck_pwrite(sop_file *f, const void *buf, size_t n, uint64_t off)
{
    if (armed && strstr(f->path, "log-")) {
        char c = 1;
        if (write(ready[1], &c, 1) != 1)
            _exit(5);
        for (;;)
            pause();
    }
    return sop_io_posix()->pwrite(f, buf, n, off);
}

static void *committer(void *arg)
{
    put(arg, "never");
    return NULL;
}

TEST(child_outlives_parent_crash_mid_commit)
{
    new_dir();
    sop_env *env = NULL;
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    CHECK_RC(put(env, "before"), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);

    int gone[2]; /* the grandchild learns here when the test is done with it */
    REQUIRE(pipe(ready) == 0 && pipe(gone) == 0);
    fflush(NULL);
    pid_t parent = fork();
    if (parent == 0) {
        close(gone[1]);
        stuck_io = *sop_io_posix();
        stuck_io.pwrite = stuck_pwrite;
        sop_env *e = NULL;
        if (env_open_with_io(dir, NULL, &stuck_io, &e) != SOP_OK)
            _exit(3);
        armed = 1;
        pthread_t th;
        pthread_create(&th, NULL, committer, e);
        char c;
        if (read(ready[0], &c, 1) != 1) /* the committer holds the lock now */
            _exit(4);
        if (fork() == 0) {
            /* a worker that never touches the database: waits up to 3 s */
            struct timespec ts = {0, 10 * 1000 * 1000};
            fcntl(gone[0], F_SETFL, O_NONBLOCK);
            for (int i = 0; i < 300; i++) {
                if (read(gone[0], &c, 1) == 0)
                    break; /* the test is over (write end closed) */
                nanosleep(&ts, NULL);
            }
            _exit(0);
        }
        _exit(0); /* the parent crashes mid-commit */
    }
    close(gone[0]);
    int st;
    waitpid(parent, &st, 0);
    REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    double t0 = now_s();
    env = NULL;
    int rc = sop_env_open(dir, NULL, &env);
    CHECK_RC(rc, SOP_OK);
    if (rc == SOP_OK) {
        CHECK_RC(put(env, "after"), SOP_OK);
        sop_env_close(env);
    }
    double took = now_s() - t0;
    fprintf(stderr, "open and commit after the crash took %.2f s\n", took);
    CHECK(took < 1.5); /* the worker lives 3 s: the lock was held for it */
    close(gone[1]);
    remove_dir();
}

int main(void)
{
    RUN(child_outlives_parent_crash_mid_commit);
    TEST_EXIT();
}
