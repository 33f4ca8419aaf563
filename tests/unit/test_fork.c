/*
 * test_fork.c - a database handle used before fork() never writes through
 * the child: the parent and the child would share the flock on sop.lock and
 * the readers slot, both append at their own idea of the log end, and the
 * log is corrupt for good.  Here:
 *  - a child's calls on an inherited handle (begin, commit of an inherited
 *    transaction, reads and writes on an inherited store, compact, check,
 *    list) fail with SOP_MISUSE naming fork; closing it is safe and leaves
 *    the parent's locks alone;
 *  - a child opens its own handle on the same folder and commits while the
 *    parent keeps committing through its own;
 *  - the pre-fork server shape: open, fork 4 workers, each commits;
 *  - afterwards every acknowledged commit of every process is there and the
 *    integrity check is clean.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];

static void new_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_fork_XXXXXX");
    if (!mkdtemp(dir))
        abort();
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

static int child_ok(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static const sop_store_options store_opts = {.slot_length = 16, .is_unique = 1};

/* Commit n one-item transactions with keys "<who>-<i>" (durable: the
 * default options).  Returns the number acknowledged. */
static int commit_items(sop_env *env, const char *who, int n)
{
    int acked = 0;
    for (int i = 0; i < n; i++) {
        char key[64], val[96];
        snprintf(key, sizeof key, "%s-%05d", who, i);
        snprintf(val, sizeof val, "value of %s", key);
        for (int attempt = 0; attempt < 100; attempt++) {
            sop_txn *t = NULL;
            sop_store *s = NULL;
            int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
            if (rc == SOP_OK)
                rc = sop_store_open(t, "items", &store_opts, &s);
            if (rc == SOP_OK) {
                sop_val k = {strlen(key), key}, v = {strlen(val), val};
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
            if (rc != SOP_CONFLICT) {
                fprintf(stderr, "%s: commit %d: %s: %s\n", who, i, sop_errname(rc), sop_errmsg());
                return acked;
            }
        }
    }
    return acked;
}

/* Every key "<who>-<i>" for i < n is there with its value. */
static int all_present(sop_env *env, const char *who, int n)
{
    sop_txn *t = NULL;
    sop_store *s = NULL;
    int found = 0;
    if (sop_txn_begin(env, SOP_TXN_READ, 0, &t) != SOP_OK || sop_store_open(t, "items", NULL, &s) != SOP_OK) {
        sop_txn_abort(t);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        char key[64], val[96];
        snprintf(key, sizeof key, "%s-%05d", who, i);
        snprintf(val, sizeof val, "value of %s", key);
        sop_val k = {strlen(key), key}, v;
        if (sop_get(s, &k, NULL, &v, NULL) == SOP_OK && v.size == strlen(val) && !memcmp(v.data, val, v.size))
            found++;
    }
    sop_txn_abort(t);
    return found == n;
}

static int check_clean(void)
{
    sop_env *env = NULL;
    char *report = NULL;
    int rc = sop_env_open(dir, NULL, &env);
    if (rc == SOP_OK)
        rc = sop_env_check(env, &report);
    if (rc != SOP_OK)
        fprintf(stderr, "check of %s: %s: %s %s\n", dir, sop_errname(rc), sop_errmsg(), report ? report : "");
    sop_free(report);
    sop_env_close(env);
    return rc == SOP_OK;
}

static int mentions_fork(void)
{
    return strstr(sop_errmsg(), "fork") != NULL;
}

/* The child: every call through the inherited handle is refused, close is
 * safe; then a handle of its own commits. */
static int child_body(sop_env *inherited, sop_txn *inherited_txn, sop_store *inherited_store, const char *who)
{
    int bad = 0;
    sop_txn *t = NULL;
    if (sop_txn_begin(inherited, SOP_TXN_WRITE, 0, &t) != SOP_MISUSE || t || !mentions_fork())
        bad |= 1;
    if (sop_txn_begin(inherited, SOP_TXN_READ, 0, &t) != SOP_MISUSE)
        bad |= 2;
    if (sop_env_compact(inherited) != SOP_MISUSE)
        bad |= 4;
    char *report = NULL;
    if (sop_env_check(inherited, &report) != SOP_MISUSE)
        bad |= 8;
    sop_free(report);
    char **names = NULL;
    size_t n = 0;
    if (sop_env_list_stores(inherited, &names, &n) != SOP_MISUSE)
        bad |= 16;
    sop_free(names);
    if (inherited_store) {
        sop_val k = {5, "child"}, v = {1, "x"};
        if (sop_add(inherited_store, &k, NULL, &v, NULL) != SOP_MISUSE)
            bad |= 32;
        if (sop_get(inherited_store, &k, NULL, &v, NULL) != SOP_MISUSE)
            bad |= 64;
    }
    if (inherited_txn && sop_txn_commit(inherited_txn) != SOP_MISUSE)
        bad |= 128;
    if (sop_env_close(inherited) != SOP_OK)
        bad |= 256;
    sop_env *mine = NULL;
    if (sop_env_open(dir, NULL, &mine) != SOP_OK) {
        fprintf(stderr, "child open: %s\n", sop_errmsg());
        return 1;
    }
    if (commit_items(mine, who, 40) != 40)
        bad |= 512;
    if (sop_env_close(mine) != SOP_OK)
        bad |= 1024;
    if (bad)
        fprintf(stderr, "child %s: failures 0x%x\n", who, bad);
    return bad ? 1 : 0;
}

TEST(fork_with_live_handle)
{
    new_dir();
    sop_env *env = NULL;
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    REQUIRE(commit_items(env, "before", 10) == 10);
    /* a write transaction in flight at the fork, with an item added */
    sop_txn *t = NULL;
    sop_store *s = NULL;
    REQUIRE(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) == SOP_OK);
    REQUIRE(sop_store_open(t, "items", &store_opts, &s) == SOP_OK);
    sop_val k = {6, "parent"}, v = {3, "yes"};
    REQUIRE(sop_add(s, &k, NULL, &v, NULL) == SOP_OK);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(child_body(env, t, s, "child"));
    /* the parent goes on while the child works */
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK(commit_items(env, "parent", 40) == 40);
    CHECK(child_ok(pid));
    CHECK(commit_items(env, "after", 10) == 10);
    CHECK(all_present(env, "before", 10));
    CHECK(all_present(env, "parent", 40));
    CHECK(all_present(env, "child", 40));
    CHECK_RC(sop_env_close(env), SOP_OK);
    /* a fresh open sees all of it, and the files are sound */
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    CHECK(all_present(env, "parent", 40));
    CHECK(all_present(env, "child", 40));
    CHECK(all_present(env, "after", 10));
    sop_env_close(env);
    CHECK(check_clean());
    remove_dir();
}

/* Slots of sop.readers that announce a snapshot (a non-zero oldest
 * sequence number in the first 8 bytes of a 16-byte slot). */
static int announced_snapshots(void)
{
    char p[300];
    unsigned char b[256 * 16];
    snprintf(p, sizeof p, "%s/sop.readers", dir);
    FILE *f = fopen(p, "rb");
    if (!f)
        return -1;
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    int n = 0;
    for (size_t i = 0; i + 16 <= got; i += 16) {
        uint64_t v = 0;
        memcpy(&v, b + i, 8);
        n += v != 0;
    }
    return n;
}

/* A child that only closes the inherited handle (what a garbage collector
 * does) must leave the parent's locks and readers slot as they were: the
 * parent's open snapshot stays announced to other processes (else their
 * reclamation could delete what it reads), and the parent still commits. */
TEST(child_close_leaves_parent_state)
{
    new_dir();
    sop_env *env = NULL;
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    REQUIRE(commit_items(env, "a", 5) == 5);
    sop_txn *reader = NULL;
    REQUIRE(sop_txn_begin(env, SOP_TXN_READ, 0, &reader) == SOP_OK);
    CHECK(announced_snapshots() == 1);
    for (int i = 0; i < 3; i++) {
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            sop_txn_abort(reader); /* inherited: frees nothing shared */
            _exit(sop_env_close(env) == SOP_OK ? 0 : 1);
        }
        CHECK(child_ok(pid));
        CHECK(announced_snapshots() == 1);
    }
    sop_txn_abort(reader);
    CHECK(commit_items(env, "b", 20) == 20);
    CHECK(all_present(env, "a", 5));
    CHECK_RC(sop_env_close(env), SOP_OK);
    CHECK(check_clean());
    remove_dir();
}

/* Open, then fork four workers (a pre-fork web server): each worker
 * opens its own handle and commits while the others do. */
TEST(prefork_workers)
{
    new_dir();
    sop_env *env = NULL;
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    REQUIRE(commit_items(env, "master", 5) == 5);
    pid_t pids[4];
    for (int w = 0; w < 4; w++) {
        fflush(NULL);
        pids[w] = fork();
        REQUIRE(pids[w] >= 0);
        if (pids[w] == 0) {
            char who[32];
            snprintf(who, sizeof who, "worker%d", w);
            _exit(child_body(env, NULL, NULL, who));
        }
    }
    CHECK(commit_items(env, "master2", 20) == 20);
    for (int w = 0; w < 4; w++)
        CHECK(child_ok(pids[w]));
    for (int w = 0; w < 4; w++) {
        char who[32];
        snprintf(who, sizeof who, "worker%d", w);
        CHECK(all_present(env, who, 40));
    }
    CHECK(all_present(env, "master2", 20));
    CHECK_RC(sop_env_close(env), SOP_OK);
    CHECK(check_clean());
    remove_dir();
}

/* Item ids of the adds of one transaction in a handle of this process. */
static int add_ids(sop_env *env, const char *who, sop_id *ids, int n)
{
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_store_options o = {.slot_length = 16};
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc == SOP_OK)
        rc = sop_store_open(t, "ids", &o, &s);
    for (int i = 0; i < n && rc == SOP_OK; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s-%d", who, i);
        sop_val k = {strlen(key), key}, v = {1, "v"};
        rc = sop_add(s, &k, NULL, &v, &ids[i]);
    }
    if (rc == SOP_OK) {
        rc = sop_txn_commit(t);
        t = NULL;
    }
    sop_txn_abort(t);
    return rc;
}

/* Ids are how a merge tells items apart across processes: children forked
 * from one parent must not hand out the same ones (the generator's state is
 * copied by fork). */
TEST(ids_differ_across_forks)
{
    new_dir();
    sop_env *env = NULL;
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    sop_id mine[4];
    REQUIRE(add_ids(env, "parent", mine, 4) == SOP_OK); /* the generator is seeded */
    enum { KIDS = 3, N = 8 };
    int fds[KIDS][2];
    pid_t pids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        REQUIRE(pipe(fds[k]) == 0);
        fflush(NULL);
        pids[k] = fork();
        REQUIRE(pids[k] >= 0);
        if (pids[k] == 0) {
            sop_env *own = NULL;
            sop_id ids[N];
            char who[32];
            snprintf(who, sizeof who, "kid%d", k);
            int ok = sop_env_open(dir, NULL, &own) == SOP_OK && add_ids(own, who, ids, N) == SOP_OK;
            ok = ok && write(fds[k][1], ids, sizeof ids) == (ssize_t)sizeof ids;
            sop_env_close(own);
            _exit(ok ? 0 : 1);
        }
        close(fds[k][1]);
    }
    sop_id all[KIDS * N + 4];
    int n = 0;
    for (int k = 0; k < KIDS; k++) {
        CHECK(read(fds[k][0], &all[n], N * sizeof(sop_id)) == (ssize_t)(N * sizeof(sop_id)));
        n += N;
        close(fds[k][0]);
        CHECK(child_ok(pids[k]));
    }
    memcpy(&all[n], mine, sizeof mine);
    n += 4;
    int dup = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            dup += !memcmp(&all[i], &all[j], sizeof(sop_id));
    CHECK(dup == 0);
    sop_env_close(env);
    remove_dir();
}

int main(void)
{
    RUN(ids_differ_across_forks);
    RUN(fork_with_live_handle);
    RUN(child_close_leaves_parent_state);
    RUN(prefork_workers);
    TEST_EXIT();
}
