/*
 * test_readers.c - the shared snapshot table sop.readers never costs a
 * process a signal:
 *  - another process cuts the table (to 0 bytes, to half) while processes
 *    have the database open: they begin, read, commit, see each other's
 *    commits and close without a signal;
 *  - opening a new database on a full file system (a 1 MiB tmpfs, filled
 *    to 0..8 free pages) ends in SOP_NOSPACE or success, never a signal,
 *    and every such folder opens and works once space is freed;
 *  - an injected allocation failure (io_fault FAULT_ALLOC) gives SOP_NOSPACE
 *    and leaves a folder the next open uses.
 * Every database access under test runs in a child process, so a SIGBUS
 * shows up as a child killed by a signal, not as a dead test runner.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
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
    snprintf(dir, sizeof dir, "%s/sop_rd_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        abort();
}

static void remove_dir(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", d);
}

/* How a child ended: its exit status, or 128 + the signal that killed it. */
static int child_end(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "child %d killed by signal %d\n", (int)pid, WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

/* Upsert key k (value "v<k>") in its own transaction: 0 or the error code. */
static int put(sop_env *env, int k)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    if ((rc = sop_store_open(t, "s", &o, &s)) == SOP_OK) {
        char v[16];
        snprintf(v, sizeof v, "v%d", k);
        sop_val key = ikey(&kb, k), val = {strlen(v), v};
        rc = sop_upsert(s, &key, NULL, &val);
    }
    if (rc) {
        sop_txn_abort(t);
        return rc;
    }
    return sop_txn_commit(t);
}

/* Read key k in a read transaction: 1 found with the right value, 0 not
 * found, negative -code on error. */
static int has(sop_env *env, int k)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    if (rc)
        return -rc;
    rc = sop_store_open(t, "s", NULL, &s);
    int found = 0;
    if (rc == SOP_OK) {
        sop_val key = ikey(&kb, k);
        sop_val got = {0, NULL};
        rc = sop_get(s, &key, NULL, &got, NULL);
        char v[16];
        snprintf(v, sizeof v, "v%d", k);
        if (rc == SOP_OK)
            found = got.size == strlen(v) && !memcmp(got.data, v, got.size);
        else if (rc == SOP_NOTFOUND)
            rc = SOP_OK;
    }
    sop_txn_commit(t);
    return rc ? -rc : found;
}

/* One byte from fd within 20 s (a child that died leaves the others
 * waiting): 1, or 0 on timeout / end of file. */
static int wait_byte(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    char b;
    return poll(&p, 1, 20000) == 1 && read(fd, &b, 1) == 1;
}

static void cut_table(off_t size)
{
    char p[300];
    snprintf(p, sizeof p, "%s/sop.readers", dir);
    if (truncate(p, size) != 0)
        abort();
}

/* Child A holds the database open; the parent cuts sop.readers to `size`
 * (A is idle, as is child B, also open); then A begins, reads and commits,
 * B sees A's commit, both write again, see everything, close. */
static void cut_while_open(off_t size)
{
    new_dir();
    {
        sop_env *env;
        REQUIRE(sop_env_open(dir, &opts, &env) == SOP_OK);
        CHECK(put(env, 1) == SOP_OK);
        sop_env_close(env);
    }
    int go_a[2], go_b[2], ready[2];
    REQUIRE(pipe(go_a) == 0 && pipe(go_b) == 0 && pipe(ready) == 0);
    pid_t kids[2];
    for (int c = 0; c < 2; c++) {
        kids[c] = fork();
        REQUIRE(kids[c] >= 0);
        if (kids[c] == 0) {
            int *go = c == 0 ? go_a : go_b;
            sop_env *env;
            if (sop_env_open(dir, &opts, &env) != SOP_OK || has(env, 1) != 1)
                _exit(2);
            char b = 'r';
            if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1)
                _exit(3);
            int fail = 0;
            if (c == 0) {
                /* A: first access after the cut */
                fail |= has(env, 1) != 1;
                fail |= put(env, 2) != SOP_OK;
                fail |= has(env, 2) != 1;
            } else {
                /* B: after A's commit: it must see it */
                fail |= has(env, 2) != 1;
                fail |= put(env, 3) != SOP_OK;
            }
            if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1)
                _exit(3);
            fail |= has(env, 2) != 1 || has(env, 3) != 1;
            if (c == 0) {
                fail |= put(env, 4) != SOP_OK;
                sop_env_compact(env); /* reads every slot of the cut table */
            }
            fail |= sop_env_close(env) != SOP_OK;
            _exit(fail ? 1 : 0);
        }
    }
    close(ready[1]);
    char b = 'g';
    int ok = wait_byte(ready[0]) && wait_byte(ready[0]);
    CHECK(ok);
    if (ok) {
        cut_table(size);
        /* A begins, reads, commits; then B; then both again */
        ok = write(go_a[1], &b, 1) == 1 && wait_byte(ready[0]) && write(go_b[1], &b, 1) == 1 &&
             wait_byte(ready[0]) && write(go_a[1], &b, 1) == 1 && write(go_b[1], &b, 1) == 1;
        CHECK(ok);
    }
    if (!ok) {
        kill(kids[0], SIGKILL);
        kill(kids[1], SIGKILL);
    }
    CHECK(child_end(kids[0]) == 0);
    CHECK(child_end(kids[1]) == 0);
    /* and the folder is whole for a new process */
    sop_env *env;
    REQUIRE(sop_env_open(dir, &opts, &env) == SOP_OK);
    for (int k = 1; k <= 4; k++)
        CHECK(has(env, k) == 1);
    sop_env_close(env);
    struct stat st;
    char p[300];
    snprintf(p, sizeof p, "%s/sop.readers", dir);
    CHECK(stat(p, &st) == 0 && st.st_size >= 4096 + 8); /* grown back */
    close(go_a[0]), close(go_a[1]), close(go_b[0]), close(go_b[1]), close(ready[0]);
    remove_dir(dir);
}

TEST(table_cut_to_zero)
{
    cut_while_open(0);
}

TEST(table_cut_to_half)
{
    cut_while_open(2080);
}

/* Fill the file system at m with 4 KiB files named fill-N (N from *n on)
 * until it is full. */
static void fill_fs(const char *m, int *n)
{
    static char page[4096];
    memset(page, 'x', sizeof page);
    for (;; ++*n) {
        char p[600];
        snprintf(p, sizeof p, "%s/fill-%05d", m, *n);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            break;
        ssize_t w = write(fd, page, sizeof page);
        close(fd);
        if (w != (ssize_t)sizeof page) {
            unlink(p);
            break;
        }
    }
}

TEST(full_file_system)
{
    char m[300];
    snprintf(m, sizeof m, "%s/sop_full_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(m));
    if (mount("tmpfs", m, "tmpfs", 0, "size=1m") != 0) {
        fprintf(stderr, "full_file_system: cannot mount a tmpfs (%s): skipped, see alloc_fault\n",
                strerror(errno));
        rmdir(m);
        return;
    }
    /* fill the file system, free k pages, open a new database there: it
     * works or fails with SOP_NOSPACE, in a process that lives */
    int n = 0, nospace = 0;
    for (int k = 0; k <= 8; k++) {
        fill_fs(m, &n);
        CHECK(n > 0);
        for (int i = 0; i < k && n > 0; i++) {
            char p[600];
            snprintf(p, sizeof p, "%s/fill-%05d", m, --n);
            unlink(p);
        }
        char db[600];
        snprintf(db, sizeof db, "%s/db%d", m, k);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid < 0)
            break; /* still unmount below */
        if (pid == 0) {
            sop_env *env;
            int rc = sop_env_open(db, &opts, &env);
            if (rc == SOP_OK) {
                rc = put(env, 1);
                sop_env_close(env);
                _exit(rc == SOP_OK ? 0 : rc == SOP_NOSPACE ? 10 : 20 + rc);
            }
            if (rc != SOP_NOSPACE)
                fprintf(stderr, "open on a full file system: %s\n", sop_errmsg());
            _exit(rc == SOP_NOSPACE ? 11 : 40 + rc);
        }
        int end = child_end(pid);
        CHECK(end == 0 || end == 10 || end == 11);
        nospace += end == 11;
    }
    CHECK(nospace > 0); /* the full file system was seen at open */
    /* space back: every folder opens, takes a commit and reads it */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -f %s/fill-*", m);
    CHECK(system(cmd) == 0);
    for (int k = 0; k <= 8; k++) {
        char db[600];
        snprintf(db, sizeof db, "%s/db%d", m, k);
        sop_env *env;
        int rc = sop_env_open(db, &opts, &env);
        CHECK_RC(rc, SOP_OK);
        if (rc == SOP_OK) {
            CHECK_RC(put(env, 2), SOP_OK);
            CHECK(has(env, 2) == 1);
            CHECK_RC(sop_env_close(env), SOP_OK);
        }
    }
    CHECK(umount(m) == 0);
    rmdir(m);
}

TEST(alloc_fault)
{
    new_dir();
    io_fault *f = io_fault_new(sop_io_posix());
    REQUIRE(f);
    io_fault_arm(f, 1, FAULT_ALLOC, 0);
    sop_env *env = NULL;
    CHECK_RC(env_open_with_io(dir, &opts, io_fault_io(f), &env), SOP_NOSPACE);
    CHECK(io_fault_fired(f));
    CHECK(env == NULL);
    io_fault_free(f);
    /* nothing half-made: the next open works */
    REQUIRE(sop_env_open(dir, &opts, &env) == SOP_OK);
    CHECK_RC(put(env, 1), SOP_OK);
    CHECK(has(env, 1) == 1);
    sop_env_close(env);
    remove_dir(dir);
}

int main(void)
{
    RUN(table_cut_to_zero);
    RUN(table_cut_to_half);
    RUN(full_file_system);
    RUN(alloc_fault);
    TEST_EXIT();
}
