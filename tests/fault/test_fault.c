/*
 * test_fault.c - fault injection and crash simulation through the I/O layer.
 *
 * For every I/O call reachable while a two-store transaction commits (and
 * while a database recovers), fail the Nth call with EIO, ENOSPC, a short
 * write or a failed fsync; then reopen with the real I/O layer and require:
 * the transaction is all or nothing, a failed commit reported a specific
 * error, and the integrity check is clean.  Then simulate power loss at each
 * sync point (every write not yet synced is dropped, or the last one torn).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core.h"
#include "io_fault.h"
#include "test.h"

#define BASE 1
#define NEW 2

static char dir[256];
static const sop_env_options small_files = {.cache_bytes = 0, .flags = 0, .log_file_bytes = 24u << 10}; /* rotate + checkpoint often */

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

static void make_base(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0)
        abort();
    sop_env *env;
    if (sop_env_open(dir, &small_files, &env) != SOP_OK)
        abort();
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    sop_txn *t;
    sop_store *s[2];
    sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    sop_store_open(t, "a", &o, &s[0]);
    o.value_placement = SOP_VALUE_BIG;
    sop_store_open(t, "b", &o, &s[1]);
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 100; i++) {
            sop_val k = ikey(&kb, i), v = {4, "base"};
            sop_add(s[j], &k, NULL, &v, NULL);
        }
    if (sop_txn_commit(t) != SOP_OK)
        abort();
    sop_env_close(env);
    sop_key_free(&kb);
}

/* The transaction under test: updates, adds and removes in both stores. */
static int run_txn(sop_env *env)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s[2];
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc != SOP_OK) {
        sop_key_free(&kb);
        return rc;
    }
    rc = sop_store_open(t, "a", NULL, &s[0]);
    if (rc == SOP_OK)
        rc = sop_store_open(t, "b", NULL, &s[1]);
    char val[600];
    memset(val, 'n', sizeof val);
    memcpy(val, "new", 3);
    for (int j = 0; j < 2 && rc == SOP_OK; j++) {
        for (int i = 0; i < 10 && rc == SOP_OK; i++) {
            sop_val k = ikey(&kb, i), v = {sizeof val, val};
            rc = sop_update(s[j], &k, NULL, &v);
        }
        for (int i = 100; i < 150 && rc == SOP_OK; i++) {
            sop_val k = ikey(&kb, i), v = {sizeof val, val};
            rc = sop_add(s[j], &k, NULL, &v, NULL);
        }
        for (int i = 50; i < 60 && rc == SOP_OK; i++) {
            sop_val k = ikey(&kb, i);
            rc = sop_remove(s[j], &k);
        }
    }
    if (rc == SOP_OK)
        rc = sop_txn_commit(t);
    else
        sop_txn_abort(t);
    sop_key_free(&kb);
    return rc;
}

/* Reopen with the real I/O layer: BASE, NEW, or 0 for anything else. */
static int state(void)
{
    sop_env *env;
    if (sop_env_open(dir, &small_files, &env) != SOP_OK) {
        fprintf(stderr, "reopen failed: %s\n", sop_errmsg());
        return 0;
    }
    int result = 0, per[2] = {0, 0};
    char *report = NULL;
    if (sop_env_check(env, &report) != SOP_OK) {
        fprintf(stderr, "check failed: %s\n%s", sop_errmsg(), report ? report : "");
        sop_free(report);
        sop_env_close(env);
        return 0;
    }
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    for (int j = 0; j < 2; j++) {
        sop_store *s;
        if (sop_store_open(t, j ? "b" : "a", NULL, &s) != SOP_OK)
            continue;
        uint64_t n = 0;
        sop_store_count(s, &n);
        int is_base = n == 100, is_new = n == 140;
        for (int i = 0; i < 150; i++) {
            sop_val k = ikey(&kb, i), v;
            int rc = sop_get(s, &k, NULL, &v, NULL);
            int present = rc == SOP_OK;
            int newval = present && v.size == 600 && !memcmp(v.data, "new", 3);
            int baseval = present && v.size == 4 && !memcmp(v.data, "base", 4);
            if (rc != SOP_OK && rc != SOP_NOTFOUND)
                is_base = is_new = 0;
            if (!(i < 100 ? baseval : !present))
                is_base = 0;
            int want_new = i < 10 ? newval : i >= 50 && i < 60 ? !present : i < 100 ? baseval : newval;
            if (!want_new)
                is_new = 0;
        }
        per[j] = is_base ? BASE : is_new ? NEW : 0;
    }
    sop_txn_abort(t);
    sop_env_close(env);
    sop_key_free(&kb);
    if (per[0] && per[0] == per[1])
        result = per[0];
    else
        fprintf(stderr, "stores disagree or are damaged: a=%d b=%d\n", per[0], per[1]);
    return result;
}

static int specific(int rc)
{
    return rc == SOP_IOERR || rc == SOP_NOSPACE || rc == SOP_POISONED;
}

TEST(fail_each_call_of_a_commit)
{
    const int kinds[] = {FAULT_EIO, FAULT_ENOSPC, FAULT_SHORT, FAULT_FSYNC};
    int runs = 0;
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
        for (long n = 1; n < 2000; n++) {
            make_base();
            io_fault *f = io_fault_new(sop_io_posix());
            sop_env *env;
            REQUIRE(env_open_with_io(dir, &small_files, io_fault_io(f), &env) == SOP_OK);
            io_fault_arm(f, n, kinds[ki], 0);
            int rc = run_txn(env);
            int fired = io_fault_fired(f);
            io_fault_arm(f, 0, 0, 0);
            sop_env_close(env);
            io_fault_free(f);
            int st = state();
            runs++;
            if (rc == SOP_OK) {
                CHECK(st == NEW);
            } else {
                CHECK(specific(rc));
                CHECK(st == BASE || st == NEW);
            }
            if ((rc == SOP_OK ? st != NEW : !specific(rc) || !st)) {
                fprintf(stderr, "kind %d call %ld: commit %s, state %d\n", kinds[ki], n, sop_errname(rc), st);
                return;
            }
            if (!fired)
                break; /* n is past the last I/O call of the commit */
        }
    }
    fprintf(stderr, "%d injected-fault runs\n", runs);
    CHECK(runs > 20);
}

TEST(power_loss_at_each_sync_point)
{
    int runs = 0;
    for (int torn = 0; torn <= 1; torn++) {
        for (long k = 1; k < 200; k++) {
            make_base();
            io_fault *f = io_fault_new(sop_io_posix());
            sop_env *env;
            REQUIRE(env_open_with_io(dir, &small_files, io_fault_io(f), &env) == SOP_OK);
            io_fault_track(f, 1);
            /* sync k and everything after it fail: the machine died right
             * after sync k-1; then drop (or tear) what was not synced */
            io_fault_arm(f, k, FAULT_FSYNC, 1);
            int rc = run_txn(env);
            int fired = io_fault_fired(f);
            io_fault_crash(f, torn);
            io_fault_arm(f, 0, 0, 0);
            sop_env_close(env);
            io_fault_free(f);
            int st = state();
            runs++;
            CHECK(st == BASE || st == NEW);
            if (rc == SOP_OK)
                CHECK(st == NEW); /* acknowledged: it must have survived */
            if (!st || (rc == SOP_OK && st != NEW)) {
                fprintf(stderr, "torn %d sync %ld: commit %s, state %d\n", torn, k, sop_errname(rc), st);
                return;
            }
            if (!fired)
                break;
        }
    }
    fprintf(stderr, "%d power-loss runs\n", runs);
    CHECK(runs >= 4);
}

TEST(fail_each_call_of_recovery)
{
    int runs = 0;
    for (long n = 1; n < 2000; n++) {
        /* a database with a torn tail to recover */
        make_base();
        {
            io_fault *f = io_fault_new(sop_io_posix());
            sop_env *env;
            REQUIRE(env_open_with_io(dir, &small_files, io_fault_io(f), &env) == SOP_OK);
            io_fault_track(f, 1);
            io_fault_arm(f, 1, FAULT_FSYNC, 1);
            run_txn(env);
            io_fault_crash(f, 1);
            io_fault_arm(f, 0, 0, 0);
            sop_env_close(env);
            io_fault_free(f);
        }
        io_fault *f = io_fault_new(sop_io_posix());
        io_fault_arm(f, n, FAULT_EIO, 0);
        sop_env *env = NULL;
        int rc = env_open_with_io(dir, &small_files, io_fault_io(f), &env);
        int fired = io_fault_fired(f);
        if (rc == SOP_OK)
            sop_env_close(env);
        io_fault_free(f);
        CHECK(rc == SOP_OK || specific(rc));
        int st = state();
        CHECK(st == BASE || st == NEW);
        runs++;
        if (!fired)
            break;
    }
    fprintf(stderr, "%d recovery-fault runs\n", runs);
    CHECK(runs > 5);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_fault_%d", (int)getpid());
    RUN(fail_each_call_of_a_commit);
    RUN(power_loss_at_each_sync_point);
    RUN(fail_each_call_of_recovery);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    TEST_EXIT();
}
