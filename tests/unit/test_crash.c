/*
 * test_crash.c - kill -9 crash test.  A child process commits a stream of
 * transactions, each adding the same batch of keys to two stores, and
 * reports every acknowledged commit through a pipe.  The parent kills it
 * with SIGKILL at a random moment, reopens the database and checks: every
 * reported commit is there, no transaction is half there (both stores hold
 * exactly the same keys), and nothing beyond whole transactions appeared.
 * Repeated SOP_CRASH_ROUNDS times (default 120).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];
/* small log files, so checkpoints, compaction and file deletion happen while
 * the child is being killed */
static const sop_env_options env_opts = {.cache_bytes = 0, .flags = 0, .log_file_bytes = 256u << 10};

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

/* transaction number n adds keys [first(n), first(n) + size(n)) */
static int64_t txn_size(int64_t n) { return (n % 17 == 0) ? 400 : 1 + n % 5; }

static void child(int fd, int64_t start_txn, int64_t start_key)
{
    sop_env *env;
    if (sop_env_open(dir, &env_opts, &env) != SOP_OK)
        _exit(3);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 16;
    o.is_unique = 1;
    int64_t key = start_key;
    for (int64_t n = start_txn;; n++) {
        sop_txn *t;
        sop_store *a, *b;
        if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "a", &o, &a) ||
            sop_store_open(t, "b", &o, &b))
            _exit(4);
        int64_t sz = txn_size(n);
        char val[64];
        snprintf(val, sizeof val, "txn %lld", (long long)n);
        for (int64_t i = 0; i < sz; i++) {
            sop_val k = ikey(&kb, key + i), v = {strlen(val), val};
            if (sop_add(a, &k, NULL, &v, NULL) || sop_add(b, &k, NULL, &v, NULL))
                _exit(5);
        }
        if (sop_txn_commit(t) != SOP_OK)
            _exit(6);
        key += sz;
        int64_t msg[2] = {n, key};
        if (write(fd, msg, sizeof msg) != sizeof msg)
            _exit(7);
    }
}

/* Read back both stores; returns the number of keys (or -1 on mismatch). */
static int64_t verify(int64_t *next_txn)
{
    sop_env *env;
    int64_t result = -1;
    CHECK_RC(sop_env_open(dir, &env_opts, &env), SOP_OK);
    if (!env)
        return -1;
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_txn *t;
    sop_store *a, *b;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    if (sop_store_open(t, "a", NULL, &a) == SOP_STORE_NOTFOUND) {
        sop_txn_abort(t);
        sop_env_close(env);
        *next_txn = 0;
        return 0;
    }
    CHECK_RC(sop_store_open(t, "b", NULL, &b), SOP_OK);
    sop_cursor *ca, *cb;
    sop_cursor_open(a, &ca);
    sop_cursor_open(b, &cb);
    int64_t expect = 0, last_txn = -1;
    int ra = sop_cursor_first(ca), rb = sop_cursor_first(cb);
    int ok = 1;
    while (ra == SOP_OK && rb == SOP_OK) {
        sop_val ka, kb, va;
        sop_cursor_get(ca, &ka, NULL, &va, NULL);
        sop_cursor_get(cb, &kb, NULL, NULL, NULL);
        if (ka.size != kb.size || memcmp(ka.data, kb.data, ka.size)) {
            ok = 0;
            break;
        }
        sop_key_reader r;
        sop_key_field f;
        sop_key_reader_init(&r, ka.data, ka.size);
        if (sop_key_next(&r, &f) != 1 || f.i != expect)
            ok = 0;
        sop_key_reader_free(&r);
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)va.size, (const char *)va.data);
        last_txn = atoll(buf + 4);
        expect++;
        ra = sop_cursor_next(ca);
        rb = sop_cursor_next(cb);
        if (!ok)
            break;
    }
    if (ok && ra == SOP_NOTFOUND && rb == SOP_NOTFOUND)
        result = expect;
    sop_txn_abort(t);
    sop_env_close(env);
    *next_txn = last_txn + 1;
    return result;
}

TEST(kill_nine_loop)
{
    const char *env_rounds = getenv("SOP_CRASH_ROUNDS");
    int rounds = env_rounds ? atoi(env_rounds) : 120;
    snprintf(dir, sizeof dir, "/tmp/sop_crash_XXXXXX");
    REQUIRE(mkdtemp(dir));
    srand((unsigned)time(NULL));
    int64_t next_txn = 0, keys = 0, acked_keys = 0;
    int killed_mid = 0;
    for (int round = 0; round < rounds; round++) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child(fds[1], next_txn, keys);
        }
        close(fds[1]);
        struct timespec ts = {0, (long)(rand() % 40 + 1) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status)); /* it was still committing, not failed */
        if (WIFSIGNALED(status))
            killed_mid++;
        int64_t msg[2];
        ssize_t r;
        while ((r = read(fds[0], msg, sizeof msg)) == sizeof msg)
            if (msg[1] > acked_keys)
                acked_keys = msg[1];
        close(fds[0]);
        int64_t found = verify(&next_txn);
        CHECK(found >= 0);           /* both stores equal, keys contiguous */
        CHECK(found >= acked_keys);  /* every acknowledged commit survived */
        if (found < 0 || found < acked_keys) {
            fprintf(stderr, "round %d: found %lld keys, acknowledged %lld\n", round, (long long)found,
                    (long long)acked_keys);
            break;
        }
        keys = found;
        acked_keys = found;
    }
    fprintf(stderr, "%d kills, %lld keys committed in total\n", killed_mid, (long long)keys);
    CHECK(killed_mid >= rounds * 9 / 10);
    CHECK(keys > 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* ---- several threads committing in the child while it is killed ---- */
#define THREADS 3
#define SPAN 1000000000LL

typedef struct worker {
    sop_env *env;
    int fd, idx;
    int64_t next; /* next key (within the thread's span) */
} worker;

static pthread_mutex_t pipe_mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker_main(void *arg)
{
    worker *w = arg;
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 16;
    o.is_unique = 1;
    for (;;) {
        int64_t key = w->idx * SPAN + w->next;
        int rc;
        do {
            sop_txn *t;
            sop_store *a, *b;
            if (sop_txn_begin(w->env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "a", &o, &a) ||
                sop_store_open(t, "b", &o, &b))
                _exit(4);
            sop_val k = ikey(&kb, key), v = {3, "val"};
            if (sop_add(a, &k, NULL, &v, NULL) || sop_add(b, &k, NULL, &v, NULL))
                _exit(5);
            rc = sop_txn_commit(t);
        } while (rc == SOP_CONFLICT);
        if (rc != SOP_OK)
            _exit(6);
        w->next++;
        int64_t msg[2] = {w->idx, w->next};
        pthread_mutex_lock(&pipe_mu);
        if (write(w->fd, msg, sizeof msg) != sizeof msg)
            _exit(7);
        pthread_mutex_unlock(&pipe_mu);
    }
    return NULL;
}

/* Per thread: keys in both stores equal and contiguous; returns counts. */
static int verify_threads(int64_t counts[THREADS])
{
    sop_env *env;
    if (sop_env_open(dir, &env_opts, &env) != SOP_OK)
        return 0;
    int ok = sop_env_check(env, NULL) == SOP_OK;
    sop_txn *t;
    sop_store *a, *b;
    for (int i = 0; i < THREADS; i++)
        counts[i] = 0;
    sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    if (sop_store_open(t, "a", NULL, &a) == SOP_OK && sop_store_open(t, "b", NULL, &b) == SOP_OK) {
        sop_cursor *ca, *cb;
        sop_cursor_open(a, &ca);
        sop_cursor_open(b, &cb);
        int ra = sop_cursor_first(ca), rb = sop_cursor_first(cb);
        while (ok && ra == SOP_OK && rb == SOP_OK) {
            sop_val ka, kb2;
            sop_cursor_get(ca, &ka, NULL, NULL, NULL);
            sop_cursor_get(cb, &kb2, NULL, NULL, NULL);
            if (ka.size != kb2.size || memcmp(ka.data, kb2.data, ka.size))
                ok = 0;
            sop_key_reader r;
            sop_key_field f;
            sop_key_reader_init(&r, ka.data, ka.size);
            if (sop_key_next(&r, &f) == 1) {
                int w = (int)(f.i / SPAN);
                if (w < 0 || w >= THREADS || f.i % SPAN != counts[w])
                    ok = 0; /* a gap: a lost commit */
                else
                    counts[w]++;
            }
            sop_key_reader_free(&r);
            ra = sop_cursor_next(ca);
            rb = sop_cursor_next(cb);
        }
        if (ra != rb)
            ok = 0;
    }
    sop_txn_abort(t);
    sop_env_close(env);
    return ok;
}

TEST(kill_nine_while_threads_commit)
{
    const char *env_rounds = getenv("SOP_CRASH_ROUNDS");
    int rounds = env_rounds ? atoi(env_rounds) : 60;
    snprintf(dir, sizeof dir, "/tmp/sop_crash_mt_XXXXXX");
    REQUIRE(mkdtemp(dir));
    int64_t counts[THREADS] = {0}, acked[THREADS] = {0};
    for (int round = 0; round < rounds; round++) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            sop_env *env;
            if (sop_env_open(dir, &env_opts, &env) != SOP_OK)
                _exit(3);
            worker w[THREADS];
            pthread_t th[THREADS];
            for (int i = 0; i < THREADS; i++) {
                w[i] = (worker){env, fds[1], i, counts[i]};
                pthread_create(&th[i], NULL, worker_main, &w[i]);
            }
            for (int i = 0; i < THREADS; i++)
                pthread_join(th[i], NULL);
            _exit(0);
        }
        close(fds[1]);
        struct timespec ts = {0, (long)(rand() % 40 + 5) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        int64_t msg[2];
        while (read(fds[0], msg, sizeof msg) == sizeof msg)
            if (msg[0] >= 0 && msg[0] < THREADS && msg[1] > acked[msg[0]])
                acked[msg[0]] = msg[1];
        close(fds[0]);
        int ok = verify_threads(counts);
        CHECK(ok);
        for (int i = 0; i < THREADS; i++) {
            CHECK(counts[i] >= acked[i]); /* every acknowledged commit is there */
            acked[i] = counts[i];
        }
        if (!ok)
            break;
    }
    fprintf(stderr, "threads committed %lld, %lld, %lld keys across %d kills\n", (long long)counts[0],
            (long long)counts[1], (long long)counts[2], rounds);
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

int main(void)
{
    RUN(kill_nine_loop);
    RUN(kill_nine_while_threads_commit);
    TEST_EXIT();
}
