/*
 * test_lockwait.c - a process stopped (SIGSTOP) while it holds the
 * cross-process commit lock, in the middle of a commit, stops nobody for
 * longer than their own deadlines:
 *  - a write transaction with max_time 1 s gets SOP_BUSY after about 1 s,
 *    with nothing written, and its transaction ended;
 *  - a second thread of the same process, queued behind a thread that waits
 *    for the lock with a longer deadline, gets SOP_BUSY at its own deadline;
 *  - read transactions (also ones that must catch up with the log, also
 *    while a thread of the same process waits for the lock) go on at once;
 *  - a new open with lock_timeout_ms = 500 gets SOP_BUSY;
 *  - after SIGCONT the stopped commit completes and everyone proceeds; after
 *    SIGKILL of a stopped holder the kernel releases its lock and everyone
 *    proceeds;
 *  - a process stopped while it holds the checkpoint lock: commits that make
 *    a checkpoint due do not wait for it, compaction and opens get SOP_BUSY
 *    at the lock timeout.
 * The child stops itself deterministically: its I/O layer (io_fault) calls
 * raise(SIGSTOP) right after its commit took the lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "io_fault.h"
#include "sop.h"
#include "test.h"

static char dir[256];
static const sop_env_options opts = {.flags = SOP_ENV_NOSYNC};

static void new_dir(void)
{
    snprintf(dir, sizeof dir, "%s/sop_lw_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        abort();
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

/* Upsert key k in a transaction with max_time ms: the commit's code. */
static int put(sop_env *env, int k, uint64_t max_time)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, max_time, &t);
    if (rc)
        return rc;
    if ((rc = sop_store_open(t, "s", &o, &s)) == SOP_OK) {
        sop_val key = ikey(&kb, k), val = {2, "ok"};
        rc = sop_upsert(s, &key, NULL, &val);
    }
    if (rc) {
        sop_txn_abort(t);
        return rc;
    }
    return sop_txn_commit(t);
}

/* 1 if key k is there, 0 if not, -code on error (a read transaction). */
static int has(sop_env *env, int k)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    if (rc)
        return -rc;
    int found = 0;
    if ((rc = sop_store_open(t, "s", NULL, &s)) == SOP_OK) {
        sop_val key = ikey(&kb, k);
        rc = sop_get(s, &key, NULL, NULL, NULL);
        found = rc == SOP_OK;
        if (rc == SOP_NOTFOUND)
            rc = SOP_OK;
    }
    sop_txn_commit(t);
    return rc ? -rc : found;
}

static volatile int stop_armed;
static volatile pid_t live_kid; /* a stopped child to kill if the test gives up */

static void kill_kid(void)
{
    if (live_kid > 0) {
        kill(live_kid, SIGKILL);
        waitpid(live_kid, NULL, 0);
    }
    live_kid = 0;
}

/* arg: the name of the lock file to stop in ("/sop.lock", "/sop.ckpt.lock") */
static void stop_in_lock(void *arg, const char *path)
{
    const char *name = arg;
    size_t n = strlen(path), m = strlen(name);
    if (stop_armed && n >= m && !strcmp(path + n - m, name)) {
        stop_armed = 0;
        raise(SIGSTOP); /* holding the lock, nothing written yet */
    }
}

/* Wait until child pid stops: its pid, or -1. */
static pid_t until_stopped(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, WUNTRACED) < 0 && errno == EINTR) {
    }
    if (!WIFSTOPPED(status)) {
        fprintf(stderr, "child did not stop (status %#x)\n", status);
        return -1;
    }
    return pid;
}

/* A child that opens the database, commits key 10 (so the log epoch moves
 * for the parent's readers), then commits key 11 and stops itself holding
 * the commit lock.  Returns its pid once it is stopped. */
static pid_t stopped_committer(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        io_fault *f = io_fault_new(sop_io_posix());
        sop_env *env;
        if (!f || env_open_with_io(dir, &opts, io_fault_io(f), &env) != SOP_OK)
            _exit(2);
        if (put(env, 10, 0) != SOP_OK)
            _exit(3);
        io_fault_on_lock(f, stop_in_lock, "/sop.lock");
        stop_armed = 1;
        int rc = put(env, 11, 0); /* stops inside; completes after SIGCONT */
        sop_env_close(env);
        io_fault_free(f);
        _exit(rc == SOP_OK ? 0 : 4);
    }
    live_kid = pid;
    return pid < 0 ? pid : until_stopped(pid);
}

typedef struct committer {
    sop_env *env;
    int key;
    uint64_t max_time;
    int rc;
    double secs;
} committer;

static void *commit_thread(void *arg)
{
    committer *c = arg;
    double t0 = now_s();
    c->rc = put(c->env, c->key, c->max_time);
    c->secs = now_s() - t0;
    return NULL;
}

/* Give up on a hang (the old code waited forever): fail, do not block ctest. */
static void on_alarm(int sig)
{
    (void)sig;
    if (live_kid > 0)
        kill(live_kid, SIGKILL);
    static const char m[] = "test_lockwait: a wait did not end (hang)\n";
    if (write(2, m, sizeof m - 1) < 0) {
    }
    _exit(1);
}

TEST(stopped_holder_then_resumed)
{
    new_dir();
    sop_env *env;
    REQUIRE(sop_env_open(dir, &opts, &env) == SOP_OK);
    REQUIRE(put(env, 1, 0) == SOP_OK);
    pid_t kid = stopped_committer();
    REQUIRE(kid > 0);

    /* two threads: A waits for the file lock (3 s); B queues behind A inside
     * this process and gives up at its own deadline (1 s).  Meanwhile a
     * reader catches up with the child's first commit (the log epoch moved)
     * and reads, not held up by either */
    committer a = {env, 3, 3000, -1, 0}, b = {env, 4, 1000, -1, 0};
    pthread_t ta, tb;
    REQUIRE(pthread_create(&ta, NULL, commit_thread, &a) == 0);
    usleep(200000); /* A is waiting for the file lock now */
    REQUIRE(pthread_create(&tb, NULL, commit_thread, &b) == 0);
    usleep(100000);
    double t0 = now_s();
    CHECK(has(env, 10) == 1);
    CHECK(has(env, 1) == 1);
    CHECK(has(env, 11) == 0);
    CHECK(now_s() - t0 < 0.5);
    pthread_join(tb, NULL);
    pthread_join(ta, NULL);
    CHECK_RC(b.rc, SOP_BUSY);
    CHECK(b.secs >= 0.9 && b.secs < 2.5);
    CHECK_RC(a.rc, SOP_BUSY);
    CHECK(a.secs >= 2.9 && a.secs < 7.0);

    /* one write transaction waits at most its max_time, then SOP_BUSY with
     * nothing written */
    t0 = now_s();
    CHECK_RC(put(env, 2, 1000), SOP_BUSY);
    double waited = now_s() - t0;
    CHECK(waited >= 0.9 && waited < 5.0);
    CHECK(strstr(sop_errmsg(), "nothing was written") != NULL);
    t0 = now_s();
    CHECK(has(env, 2) == 0 && has(env, 3) == 0 && has(env, 4) == 0);
    CHECK(now_s() - t0 < 0.5);

    /* a new open waits at most lock_timeout_ms */
    sop_env_options o2 = opts;
    o2.lock_timeout_ms = 500;
    sop_env *env2 = NULL;
    t0 = now_s();
    CHECK_RC(sop_env_open(dir, &o2, &env2), SOP_BUSY);
    waited = now_s() - t0;
    CHECK(waited >= 0.4 && waited < 3.0);
    CHECK(env2 == NULL);

    /* the holder resumes: its commit completes, everyone proceeds */
    CHECK(kill(kid, SIGCONT) == 0);
    int status;
    waitpid(kid, &status, 0);
    live_kid = 0;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(put(env, 2, 1000), SOP_OK);
    CHECK(has(env, 11) == 1);
    CHECK(has(env, 2) == 1);
    CHECK(has(env, 3) == 0 && has(env, 4) == 0);
    CHECK_RC(sop_env_open(dir, &o2, &env2), SOP_OK);
    if (env2) {
        CHECK(has(env2, 2) == 1 && has(env2, 11) == 1);
        sop_env_close(env2);
    }
    sop_env_close(env);
    remove_dir();
}

TEST(stopped_holder_killed)
{
    new_dir();
    sop_env *env;
    sop_env_options o1 = opts;
    o1.lock_timeout_ms = 400; /* for the compaction below */
    REQUIRE(sop_env_open(dir, &o1, &env) == SOP_OK);
    REQUIRE(put(env, 1, 0) == SOP_OK);
    pid_t kid = stopped_committer();
    REQUIRE(kid > 0);
    CHECK_RC(put(env, 2, 500), SOP_BUSY);
    sop_env_options o2 = opts;
    o2.lock_timeout_ms = 300;
    sop_env *env2 = NULL;
    CHECK_RC(sop_env_open(dir, &o2, &env2), SOP_BUSY);
    CHECK_RC(sop_env_compact(env), SOP_BUSY); /* no transaction of its own: the lock timeout */
    /* the operator's remedy: end the stopped holder; the kernel frees its lock */
    CHECK(kill(kid, SIGKILL) == 0);
    int status;
    waitpid(kid, &status, 0);
    live_kid = 0;
    CHECK(WIFSIGNALED(status));
    CHECK_RC(put(env, 2, 1000), SOP_OK);
    CHECK(has(env, 2) == 1 && has(env, 10) == 1 && has(env, 11) == 0);
    CHECK_RC(sop_env_open(dir, &o2, &env2), SOP_OK);
    if (env2) {
        CHECK(has(env2, 2) == 1);
        sop_env_close(env2);
    }
    sop_env_close(env);
    remove_dir();
}

TEST(stopped_checkpointer)
{
    new_dir();
    /* small log files: a checkpoint is due every few commits */
    sop_env_options o1 = opts;
    o1.log_file_bytes = 64u << 10;
    o1.lock_timeout_ms = 2000;
    sop_env *env;
    REQUIRE(sop_env_open(dir, &o1, &env) == SOP_OK);
    REQUIRE(put(env, 1, 0) == SOP_OK);
    pid_t kid = fork();
    if (kid == 0) {
        io_fault *f = io_fault_new(sop_io_posix());
        sop_env *cenv;
        if (!f || env_open_with_io(dir, &o1, io_fault_io(f), &cenv) != SOP_OK)
            _exit(2);
        io_fault_on_lock(f, stop_in_lock, "/sop.ckpt.lock");
        stop_armed = 1;
        int rc = sop_env_compact(cenv); /* stops holding the checkpoint lock */
        sop_env_close(cenv);
        _exit(rc == SOP_OK ? 0 : 3);
    }
    live_kid = kid;
    REQUIRE(kid > 0 && until_stopped(kid) == kid);
    /* 200 commits of 1 KiB values: 200 KiB of log, a checkpoint due many
     * times over; none waits the 2 s lock timeout for the stopped holder */
    sop_keybuf kb;
    sop_key_init(&kb);
    char big[1024];
    memset(big, 'b', sizeof big);
    int bad = 0, slow = 0;
    for (int i = 0; i < 200; i++) {
        double c0 = now_s();
        sop_txn *t;
        sop_store *s;
        if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "s", NULL, &s)) {
            bad++;
            break;
        }
        sop_val k = ikey(&kb, 100 + i), v = {sizeof big, big};
        if (sop_upsert(s, &k, NULL, &v) != SOP_OK) {
            sop_txn_abort(t);
            bad++;
            continue;
        }
        bad += sop_txn_commit(t) != SOP_OK;
        slow += now_s() - c0 >= 1.9; /* waited out the lock timeout */
    }
    CHECK(bad == 0);
    CHECK(slow == 0);
    CHECK(has(env, 299) == 1);
    /* compaction and a new open wait the lock timeout, then SOP_BUSY */
    double t0 = now_s();
    CHECK_RC(sop_env_compact(env), SOP_BUSY);
    CHECK(now_s() - t0 >= 1.9);
    sop_env_options o2 = o1;
    o2.lock_timeout_ms = 300;
    sop_env *env2 = NULL;
    CHECK_RC(sop_env_open(dir, &o2, &env2), SOP_BUSY);
    CHECK(kill(kid, SIGCONT) == 0);
    int status;
    waitpid(kid, &status, 0);
    live_kid = 0;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_open(dir, &o2, &env2), SOP_OK);
    if (env2) {
        CHECK(has(env2, 299) == 1 && has(env2, 1) == 1);
        sop_env_close(env2);
    }
    sop_env_close(env);
    remove_dir();
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(120);
    RUN(stopped_holder_then_resumed);
    kill_kid();
    RUN(stopped_holder_killed);
    kill_kid();
    RUN(stopped_checkpointer);
    kill_kid();
    TEST_EXIT();
}
