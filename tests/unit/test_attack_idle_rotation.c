/*
 * test_attack_idle_rotation.c - defect found by helper h6 (first seen as
 * test_attack_kill_bigcommit.py): a process that stays idle while another
 * process fills, rotates past and reclaims whole log files loses track of
 * the log.
 *
 * Process A opens the database and commits, then stays idle (no transaction:
 * its sop.readers slot says "no snapshot", so nothing protects files for
 * it).  Process B opens with small log files and commits enough to start
 * several new files; its checkpoints delete the older ones.  When A next
 * catches up (src/env.c catch_up), it reads its current file to the end
 * through its open descriptor, then looks for the next file by name; that
 * one was already deleted, so A concludes nobody started a newer file, stops
 * there, and its next commit starts "file N+1" again next to B's newer
 * files.  Seen: A's read transactions miss B's acknowledged commits and a
 * later open fails with SOP_CORRUPT ("log file N is damaged ... and newer
 * files exist").  Expected: A sees every commit of B and the database
 * reopens with all of them.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];

static int put(sop_env *env, int64_t k, size_t vlen)
{
    static char val[4096];
    memset(val, 'v', sizeof val);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_key_int(&kb, k, 0);
    sop_val key = {kb.size, kb.data}, v = {vlen, val};
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.is_unique = 1;
    o.slot_length = 16;
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    if ((rc = sop_store_open(t, "s", &o, &s)) == SOP_OK)
        rc = sop_upsert(s, &key, NULL, &v);
    if (rc) {
        sop_txn_abort(t);
        return rc;
    }
    return sop_txn_commit(t);
}

/* number of keys 0..n-1 present, or -code */
static int count_present(sop_env *env, int n)
{
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    if (rc)
        return -rc;
    int found = 0;
    if ((rc = sop_store_open(t, "s", NULL, &s)) == SOP_OK) {
        for (int k = 0; k < n && rc == SOP_OK; k++) {
            sop_keybuf kb;
            sop_key_init(&kb);
            sop_key_int(&kb, k, 0);
            sop_val key = {kb.size, kb.data};
            rc = sop_get(s, &key, NULL, NULL, NULL);
            if (rc == SOP_OK)
                found++;
            if (rc == SOP_NOTFOUND)
                rc = SOP_OK;
        }
    }
    sop_txn_commit(t);
    return rc ? -rc : found;
}

TEST(idle_process_while_another_rotates_and_reclaims)
{
    snprintf(dir, sizeof dir, "%s/sop_idle_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(dir) != NULL);
    sop_env_options o;
    memset(&o, 0, sizeof o);
    o.flags = SOP_ENV_NOSYNC;
    o.log_file_bytes = 64 * 1024;
    sop_env *a;
    REQUIRE(sop_env_open(dir, &o, &a) == SOP_OK);
    CHECK_RC(put(a, 0, 100), SOP_OK);
    enum { B_KEYS = 400 };
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        sop_env *b;
        if (sop_env_open(dir, &o, &b) != SOP_OK)
            _exit(2);
        for (int k = 1; k <= B_KEYS; k++)
            if (put(b, k, 1000) != SOP_OK)
                _exit(3);
        sop_env_close(b);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* A was idle all along: it must see all of B's acknowledged commits */
    CHECK(count_present(a, B_KEYS + 1) == B_KEYS + 1);
    CHECK_RC(put(a, B_KEYS + 1, 100), SOP_OK);
    CHECK(count_present(a, B_KEYS + 2) == B_KEYS + 2);
    sop_env_close(a);
    sop_env *c = NULL;
    CHECK_RC(sop_env_open(dir, &o, &c), SOP_OK);
    if (c) {
        CHECK(count_present(c, B_KEYS + 2) == B_KEYS + 2);
        sop_env_close(c);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}

int main(void)
{
    RUN(idle_process_while_another_rotates_and_reclaims);
    TEST_EXIT();
}
