/*
 * test_attack_maxtime.c - defect found by helper h6: a huge max_time makes a
 * transaction time out at once.
 *
 * sop_txn_begin (src/txn.c) computes the deadline as
 *     sop_mono_ns() + max_time_ms * 1000000
 * in uint64_t without a bound, so any max_time_ms above about 1.8e13 (about
 * 584 years) wraps around.  UINT64_MAX, the natural "no limit" value of a
 * uint64_t parameter, gives a deadline 1 ms in the past: the first
 * operation or the commit fails with SOP_TIMEOUT.  Expected: a huge
 * max_time means "practically never" (saturate the deadline), and the
 * transaction commits.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];

static int put(sop_env *env, int64_t k, uint64_t max_time)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_key_int(&kb, k, 0);
    sop_val key = {kb.size, kb.data}, val = {2, "ok"};
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.is_unique = 1;
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, max_time, &t);
    if (rc)
        return rc;
    if ((rc = sop_store_open(t, "s", &o, &s)) == SOP_OK)
        rc = sop_upsert(s, &key, NULL, &val);
    if (rc) {
        sop_txn_abort(t);
        return rc;
    }
    return sop_txn_commit(t);
}

TEST(huge_max_time_does_not_time_out)
{
    snprintf(dir, sizeof dir, "attack_maxtime_%d", (int)getpid());
    sop_env_options opts;
    memset(&opts, 0, sizeof opts);
    opts.flags = SOP_ENV_NOSYNC;
    sop_env *env;
    REQUIRE(sop_env_open(dir, &opts, &env) == SOP_OK);
    CHECK_RC(put(env, 1, 0), SOP_OK);                 /* default: 15 minutes */
    CHECK_RC(put(env, 2, 3600000), SOP_OK);           /* one hour */
    CHECK_RC(put(env, 3, UINT64_C(1) << 40), SOP_OK); /* 35 years: fine */
    CHECK_RC(put(env, 4, UINT64_MAX), SOP_OK);        /* "no limit": SOP_TIMEOUT */
    CHECK_RC(put(env, 5, UINT64_C(18446744073709)), SOP_OK); /* 584 years: wraps */
    CHECK_RC(put(env, 6, UINT64_MAX / 2), SOP_OK);
    sop_env_close(env);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
}

int main(void)
{
    RUN(huge_max_time_does_not_time_out);
    TEST_EXIT();
}
