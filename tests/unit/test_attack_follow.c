/*
 * test_attack_follow.c - helper h8: several processes with different
 * log_file_bytes follow each other's rotations, idle spells, compaction,
 * SIGKILL and read-only followers.  Every process checks, at the start of
 * each check transaction, that it sees every key whose commit returned
 * SOP_OK (in any process) before that transaction began.  Acknowledgements
 * go through a MAP_SHARED page written right after sop_txn_commit returned.
 *
 * DEFECT (readonly_idle_while_writer_rotates, readonly_follows_small_file_
 * writers): a SOP_ENV_RDONLY handle (no readers slot) with the default
 * 64 MiB log_file_bytes, following a writer with 64 KiB files whose
 * checkpoints delete old files, answers stale without error: after the
 * writer committed 300 keys, the handle sees 14 of them, forever.  In
 * src/env.c catch_up, when log file cur+1 does not exist, the check for
 * newer files (which poisons the handle) is skipped because
 * "env->log_end < env->rotate_bytes" compares with THIS handle's file
 * size, not the writer's.  With log_file_bytes = 64 KiB on the read-only
 * handle too (readonly_same_file_size_idle_while_writer_rotates), it gets
 * SOP_POISONED as documented.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

enum { NPROC = 3, KEYS = 250, NKEYS = NPROC * KEYS };
static char dir[256];
static volatile unsigned char *acked; /* shared: 1 once commit returned OK */
static volatile int *failbox;         /* shared: failures seen by children */
static const uint64_t fbytes[NPROC] = {0, 64 * 1024, 128 * 1024};

static sop_val mkkey(sop_keybuf *kb, int64_t k)
{
    sop_key_init(kb);
    sop_key_int(kb, k, 0);
    sop_val v = {kb->size, kb->data};
    return v;
}

static int put(sop_env *env, int64_t k, size_t vlen)
{
    static char val[8192];
    memset(val, 'a' + (int)(k % 26), sizeof val);
    for (int attempt = 0; attempt < 200; attempt++) {
        sop_keybuf kb;
        sop_val key = mkkey(&kb, k), v = {vlen, val};
        sop_txn *t;
        sop_store *s;
        int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
        if (rc)
            return rc;
        if ((rc = sop_store_open(t, "s", NULL, &s)) == SOP_OK)
            rc = sop_upsert(s, &key, NULL, &v);
        if (rc == SOP_OK)
            rc = sop_txn_commit(t);
        else
            sop_txn_abort(t);
        sop_key_free(&kb);
        if (rc != SOP_CONFLICT && rc != SOP_BUSY)
            return rc;
        usleep(1000);
    }
    return SOP_BUSY;
}

/* Check that every key acked before begin is visible.  Returns number
 * missing, or -rc on an error. */
static int check_acked(sop_env *env, const char *who)
{
    static unsigned char snap[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        snap[i] = __atomic_load_n(&acked[i], __ATOMIC_ACQUIRE);
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    if (rc)
        return -rc;
    int missing = 0;
    if ((rc = sop_store_open(t, "s", NULL, &s)) == SOP_OK) {
        for (int k = 0; k < NKEYS && rc == SOP_OK; k++) {
            if (!snap[k])
                continue;
            sop_keybuf kb;
            sop_val key = mkkey(&kb, k);
            rc = sop_get(s, &key, NULL, NULL, NULL);
            sop_key_free(&kb);
            if (rc == SOP_NOTFOUND) {
                if (missing < 3)
                    fprintf(stderr, "  %s (pid %d): acked key %d missing\n", who, (int)getpid(), k);
                missing++;
                rc = SOP_OK;
            }
        }
    }
    sop_txn_commit(t);
    return rc ? -rc : missing;
}

static void mkdir_tmp(const char *tag)
{
    snprintf(dir, sizeof dir, "%s/sop_%s_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag);
    if (!mkdtemp(dir))
        abort();
}

static void rmdir_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}

static void setup_shared(void)
{
    void *p = mmap(NULL, NKEYS + 80, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    memset(p, 0, NKEYS + 80);
    acked = p;
    failbox = (volatile int *)((char *)p + ((NKEYS + 15) & ~15)); /* aligned */
}

static int create_store(unsigned flags)
{
    sop_env_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    sop_env *e;
    int rc = sop_env_open(dir, &o, &e);
    if (rc)
        return rc;
    sop_txn *t;
    sop_store *s;
    sop_store_options so;
    memset(&so, 0, sizeof so);
    so.is_unique = 1;
    so.slot_length = 16;
    if ((rc = sop_txn_begin(e, SOP_TXN_WRITE, 0, &t)) == SOP_OK) {
        rc = sop_store_open(t, "s", &so, &s);
        if (rc == SOP_OK)
            rc = sop_txn_commit(t);
        else
            sop_txn_abort(t);
    }
    sop_env_close(e);
    return rc;
}

/* worker i: commits keys i*KEYS .. i*KEYS+KEYS-1 */
static void worker(int i, unsigned flags, int slow)
{
    srand((unsigned)getpid());
    sop_env_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.log_file_bytes = fbytes[i];
    sop_env *e;
    char who[32];
    snprintf(who, sizeof who, "worker%d", i);
    if (sop_env_open(dir, &o, &e) != SOP_OK) {
        fprintf(stderr, "  %s open: %s\n", who, sop_errmsg());
        __atomic_add_fetch(&failbox[0], 1, __ATOMIC_SEQ_CST);
        _exit(2);
    }
    for (int j = 0; j < KEYS; j++) {
        int k = i * KEYS + j;
        /* idle spells: worker 0 (64 MiB files) idles longest */
        if (i == 0 && j % 60 == 30)
            usleep(300 * 1000);
        if (slow && rand() % 8 == 0)
            usleep(rand() % 20000);
        int rc = put(e, k, 200 + (size_t)(rand() % 3000));
        if (rc != SOP_OK) {
            fprintf(stderr, "  %s put %d: %s %s\n", who, k, sop_errname(rc), sop_errmsg());
            __atomic_add_fetch(&failbox[0], 1, __ATOMIC_SEQ_CST);
            _exit(3);
        }
        __atomic_store_n(&acked[k], 1, __ATOMIC_RELEASE);
        if (j % 10 == 9) {
            int m = check_acked(e, who);
            if (m != 0) {
                fprintf(stderr, "  %s check: %d (%s)\n", who, m, m < 0 ? sop_errname(-m) : "missing");
                __atomic_add_fetch(&failbox[0], 1, __ATOMIC_SEQ_CST);
            }
        }
        if (i == 2 && j % 40 == 39) {
            int rc2 = sop_env_compact(e);
            if (rc2 != SOP_OK && rc2 != SOP_BUSY) {
                fprintf(stderr, "  %s compact: %s %s\n", who, sop_errname(rc2), sop_errmsg());
                __atomic_add_fetch(&failbox[0], 1, __ATOMIC_SEQ_CST);
            }
        }
    }
    /* final check after everyone may have finished */
    usleep(100 * 1000);
    int m = check_acked(e, who);
    if (m != 0) {
        fprintf(stderr, "  %s final check: %d\n", who, m);
        __atomic_add_fetch(&failbox[0], 1, __ATOMIC_SEQ_CST);
    }
    sop_env_close(e);
    _exit(0);
}

static void final_verify(unsigned flags)
{
    sop_env_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    sop_env *e = NULL;
    CHECK_RC(sop_env_open(dir, &o, &e), SOP_OK);
    if (!e)
        return;
    CHECK(check_acked(e, "fresh") == 0);
    char *rep = NULL;
    int rc = sop_env_check(e, &rep);
    CHECK_RC(rc, SOP_OK);
    if (rc && rep)
        fprintf(stderr, "%s\n", rep);
    sop_free(rep);
    sop_env_close(e);
}

static void run_mixed(unsigned flags, int kill_mode)
{
    mkdir_tmp("follow");
    setup_shared();
    if (create_store(flags) != SOP_OK) {
        CHECK(0);
        return;
    }
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            worker(i, flags, 1);
    }
    if (kill_mode) {
        /* kill worker 1 (64 KiB files) and later a restarted copy... once */
        srand((unsigned)time(NULL));
        usleep(50000 + (unsigned)(rand() % 400000));
        kill(pids[1], SIGKILL);
        usleep(20000 + (unsigned)(rand() % 200000));
        kill(pids[2], SIGKILL);
    }
    for (int i = 0; i < NPROC; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!kill_mode || i == 0)
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int nack = 0;
    for (int k = 0; k < NKEYS; k++)
        nack += acked[k];
    fprintf(stderr, "  acked %d keys, child failures %d\n", nack, failbox[0]);
    CHECK(failbox[0] == 0);
    final_verify(flags);
    rmdir_tmp();
}

TEST(mixed_file_sizes_nosync) { run_mixed(SOP_ENV_NOSYNC, 0); }
TEST(mixed_file_sizes_durable) { run_mixed(0, 0); }
TEST(mixed_file_sizes_nosync_sigkill) { run_mixed(SOP_ENV_NOSYNC, 1); }
TEST(mixed_file_sizes_durable_sigkill) { run_mixed(0, 1); }

/* read-only followers: must see every acked commit or fail with SOP_POISONED */
TEST(readonly_follows_small_file_writers)
{
    mkdir_tmp("rofollow");
    setup_shared();
    REQUIRE(create_store(SOP_ENV_NOSYNC) == SOP_OK);
    pid_t pids[NPROC];
    for (int i = 1; i < NPROC; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            worker(i, SOP_ENV_NOSYNC, 0);
    }
    sop_env_options o;
    memset(&o, 0, sizeof o);
    o.flags = SOP_ENV_RDONLY;
    sop_env *ro = NULL;
    REQUIRE(sop_env_open(dir, &o, &ro) == SOP_OK);
    int stale = 0, poisoned = 0, other = 0, checks = 0;
    for (;;) {
        int done = 1;
        for (int i = 1; i < NPROC; i++)
            if (pids[i] && waitpid(pids[i], NULL, WNOHANG) == pids[i])
                pids[i] = 0;
            else if (pids[i])
                done = 0;
        int m = check_acked(ro, "readonly");
        checks++;
        if (m > 0)
            stale++;
        else if (m == -SOP_POISONED) {
            poisoned++;
            sop_env_close(ro);
            ro = NULL;
            if (sop_env_open(dir, &o, &ro) != SOP_OK) {
                other++;
                break;
            }
        } else if (m < 0) {
            fprintf(stderr, "  readonly: %s %s\n", sop_errname(-m), sop_errmsg());
            other++;
        }
        if (done)
            break;
        usleep(5000);
    }
    fprintf(stderr, "  readonly: %d checks, %d stale, %d poisoned, %d other\n", checks, stale, poisoned, other);
    CHECK(stale == 0);
    CHECK(other == 0);
    CHECK(failbox[0] == 0);
    if (ro) {
        CHECK(check_acked(ro, "readonly-end") == 0);
        sop_env_close(ro);
    }
    final_verify(SOP_ENV_NOSYNC);
    rmdir_tmp();
}

/* Minimal: one writer process with 64 KiB log files (it rotates, and its
 * checkpoints delete old files); a SOP_ENV_RDONLY handle opened before.
 * mode 0: the read-only handle is idle while the writer runs;
 * mode 1: it reads while the writer runs;
 * mode 2: like 0 but a read-write handle with default (64 MiB) files;
 * mode 3: like 0 but the read-only handle says log_file_bytes = 64 KiB too
 *         (then it does get SOP_POISONED, as documented). */
static void ro_minimal(int mode)
{
    mkdir_tmp("romin");
    setup_shared();
    REQUIRE(create_store(SOP_ENV_NOSYNC) == SOP_OK);
    sop_env_options o;
    memset(&o, 0, sizeof o);
    o.flags = mode == 2 ? SOP_ENV_NOSYNC : SOP_ENV_RDONLY;
    if (mode == 3)
        o.log_file_bytes = 64 * 1024;
    sop_env *ro = NULL;
    REQUIRE(sop_env_open(dir, &o, &ro) == SOP_OK);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        sop_env_options w;
        memset(&w, 0, sizeof w);
        w.flags = SOP_ENV_NOSYNC;
        w.log_file_bytes = 64 * 1024;
        sop_env *e;
        if (sop_env_open(dir, &w, &e) != SOP_OK)
            _exit(2);
        for (int k = 0; k < 300; k++) {
            if (put(e, k, 1000) != SOP_OK)
                _exit(3);
            __atomic_store_n(&acked[k], 1, __ATOMIC_RELEASE);
            if (mode == 1)
                usleep(2000);
        }
        sop_env_close(e);
        _exit(0);
    }
    int m, worst = 0;
    if (mode == 1) {
        while (waitpid(pid, NULL, WNOHANG) != pid) {
            m = check_acked(ro, "ro-during");
            if (m > 0 && m > worst)
                worst = m;
            CHECK(m >= 0 || m == -SOP_POISONED);
            usleep(3000);
        }
    } else {
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    m = check_acked(ro, "ro-after");
    fprintf(stderr, "  ro_minimal(%d): worst stale %d, after writer exit %d (negative = -rc)\n", mode, worst, m);
    CHECK(worst == 0);
    CHECK(m == 0 || m == -SOP_POISONED);
    sop_env_close(ro);
    final_verify(SOP_ENV_NOSYNC);
    rmdir_tmp();
}
TEST(readonly_idle_while_writer_rotates) { ro_minimal(0); }
TEST(readonly_reading_while_writer_rotates) { ro_minimal(1); }
TEST(idle_bigfile_writer_while_smallfile_writer_rotates) { ro_minimal(2); }
TEST(readonly_same_file_size_idle_while_writer_rotates) { ro_minimal(3); }

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(mixed_file_sizes_nosync);
    RUN(mixed_file_sizes_durable);
    RUN(mixed_file_sizes_nosync_sigkill);
    RUN(mixed_file_sizes_durable_sigkill);
    RUN(readonly_follows_small_file_writers);
    RUN(readonly_idle_while_writer_rotates);
    RUN(readonly_reading_while_writer_rotates);
    RUN(idle_bigfile_writer_while_smallfile_writer_rotates);
    RUN(readonly_same_file_size_idle_while_writer_rotates);
    TEST_EXIT();
}
