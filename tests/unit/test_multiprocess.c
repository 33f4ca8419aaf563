/*
 * test_multiprocess.c - several processes on one database folder.
 *  - a long reader in one process keeps its snapshot while another process
 *    commits thousands of transactions, compacts and checkpoints: old log
 *    files are kept while the reader lives and reclaimed after it exits;
 *  - processes writing the same store at once merge, and see each other's
 *    commits;
 *  - opening the database while another process checkpoints and deletes
 *    old log files always succeeds;
 *  - a transaction begun after another process's commit returned sees it
 *    (the shared log epoch tells the process to catch up).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];
static const sop_env_options opts = {.cache_bytes = 0, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 64u << 10};

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

/* A fresh database folder in dir. */
static void new_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_mp_XXXXXX");
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

/* Wait for a child process: did it exit with status 0? */
static int child_ok(pid_t pid)
{
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void fill(sop_env *env, int round)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    char val[500];
    if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "s", &o, &s))
        abort();
    for (int i = 0; i < 50; i++) {
        memset(val, 'a' + round % 26, sizeof val);
        snprintf(val, 20, "%d", round);
        sop_val k = ikey(&kb, i), v = {sizeof val, val};
        sop_upsert(s, &k, NULL, &v);
    }
    int rc;
    while ((rc = sop_txn_commit(t)) == SOP_CONFLICT) {
        if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "s", &o, &s))
            abort();
        for (int i = 0; i < 50; i++) {
            sop_val k = ikey(&kb, i), v = {sizeof val, val};
            sop_upsert(s, &k, NULL, &v);
        }
    }
    if (rc != SOP_OK)
        abort();
    sop_key_free(&kb);
}

static int reads_round(sop_txn *t, int round)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_store *s;
    int ok = sop_store_open(t, "s", NULL, &s) == SOP_OK;
    for (int i = 0; i < 50 && ok; i++) {
        sop_val k = ikey(&kb, i), v;
        char want[20];
        snprintf(want, sizeof want, "%d", round);
        ok = sop_get(s, &k, NULL, &v, NULL) == SOP_OK && v.size == 500 && !strcmp(v.data, want);
    }
    sop_key_free(&kb);
    return ok;
}

static uint64_t log_bytes(sop_env *env)
{
    sop_env_stats st;
    sop_env_stat(env, &st);
    return st.log_bytes;
}

TEST(long_reader_in_another_process)
{
    snprintf(dir, sizeof dir, "/tmp/sop_mp_XXXXXX");
    REQUIRE(mkdtemp(dir));
    sop_env *env;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    fill(env, 0);
    int to_child[2], to_parent[2];
    REQUIRE(pipe(to_child) == 0 && pipe(to_parent) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        /* the reader: its own handle on the folder, one long snapshot */
        sop_env *renv;
        char c = 0;
        if (sop_env_open(dir, &opts, &renv) != SOP_OK)
            _exit(2);
        sop_txn *t;
        if (sop_txn_begin(renv, SOP_TXN_READ, 0, &t) != SOP_OK || !reads_round(t, 0))
            _exit(3);
        if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1)
            _exit(4);
        int ok = reads_round(t, 0); /* after thousands of commits elsewhere */
        sop_txn_abort(t);
        /* and a new snapshot sees the other process's latest commit */
        if (sop_txn_begin(renv, SOP_TXN_READ, 0, &t) != SOP_OK)
            _exit(5);
        ok = ok && reads_round(t, 1500);
        sop_txn_abort(t);
        sop_env_close(renv);
        _exit(ok ? 0 : 6);
    }
    char c;
    REQUIRE(read(to_parent[0], &c, 1) == 1);
    for (int round = 1; round <= 1500; round++)
        fill(env, round);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    uint64_t held = log_bytes(env);
    CHECK(write(to_child[1], "go", 1) == 1);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* its snapshot stayed whole */
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    uint64_t after = log_bytes(env);
    fprintf(stderr, "log bytes %llu while the other process read, %llu after it exited\n",
            (unsigned long long)held, (unsigned long long)after);
    CHECK(held > 4 * after);  /* old files were kept for the reader ... */
    CHECK(after < 1u << 20);  /* ... and reclaimed once it was gone */
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
}

TEST(writers_in_two_processes_merge)
{
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        REQUIRE(pids[p] >= 0);
        if (pids[p] == 0) {
            sop_env *env;
            if (sop_env_open(dir, &opts, &env) != SOP_OK)
                _exit(2);
            sop_keybuf kb;
            sop_key_init(&kb);
            sop_store_options o;
            memset(&o, 0, sizeof o);
            o.slot_length = 8;
            o.is_unique = 1;
            for (int n = 0; n < 300; n++) {
                int rc;
                do {
                    sop_txn *t;
                    sop_store *s;
                    if (sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "m", &o, &s))
                        _exit(3);
                    sop_val k = ikey(&kb, p * 100000 + n), v = {1, "x"};
                    if (sop_add(s, &k, NULL, &v, NULL))
                        _exit(4);
                    rc = sop_txn_commit(t);
                } while (rc == SOP_CONFLICT);
                if (rc != SOP_OK)
                    _exit(5);
            }
            sop_env_close(env);
            _exit(0);
        }
    }
    for (int p = 0; p < 2; p++) {
        int status;
        waitpid(pids[p], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    sop_env *env;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    sop_txn *t;
    sop_store *s;
    uint64_t n = 0;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "m", NULL, &s), SOP_OK);
    sop_store_count(s, &n);
    CHECK(n == 600);
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* ---- the bank across processes, with SIGKILLs ---- */
#define ACCOUNTS 40
#define START 1000

typedef struct bank_worker {
    sop_env *env;
    int fd;
    int64_t id_base;
} bank_worker;

static pthread_mutex_t ack_mu = PTHREAD_MUTEX_INITIALIZER;

static long balance_of(sop_store *s, sop_keybuf *kb, int a, int *rc)
{
    sop_val k = ikey(kb, a), v;
    *rc = sop_get(s, &k, NULL, &v, NULL);
    if (*rc != SOP_OK)
        return 0;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)v.size, (const char *)v.data);
    return atol(buf);
}

static void *bank_thread(void *arg)
{
    bank_worker *w = arg;
    sop_keybuf kb;
    sop_key_init(&kb);
    unsigned seed = (unsigned)(w->id_base ^ (int64_t)getpid());
    for (int64_t n = 0;; n++) {
        int64_t id = w->id_base + n;
        int from = rand_r(&seed) % ACCOUNTS, to = (from + 1 + rand_r(&seed) % (ACCOUNTS - 1)) % ACCOUNTS;
        long amount = rand_r(&seed) % 20;
        int rc;
        do {
            sop_txn *t;
            sop_store *acc, *led;
            if (sop_txn_begin(w->env, SOP_TXN_WRITE, 0, &t) || sop_store_open(t, "acc", NULL, &acc) ||
                sop_store_open(t, "ledger", NULL, &led))
                _exit(10);
            int r1, r2;
            long fb = balance_of(acc, &kb, from, &r1), tb = balance_of(acc, &kb, to, &r2);
            if (r1 || r2)
                _exit(11);
            char b1[32], b2[32], entry[64];
            snprintf(b1, sizeof b1, "%ld", fb - amount);
            snprintf(b2, sizeof b2, "%ld", tb + amount);
            snprintf(entry, sizeof entry, "%d>%d:%ld", from, to, amount);
            sop_val kf = ikey(&kb, from), vf = {strlen(b1), b1};
            if (sop_update(acc, &kf, NULL, &vf))
                _exit(12);
            sop_val kt = ikey(&kb, to), vt = {strlen(b2), b2};
            if (sop_update(acc, &kt, NULL, &vt))
                _exit(13);
            sop_val kl = ikey(&kb, id), vl = {strlen(entry), entry};
            if (sop_add(led, &kl, NULL, &vl, NULL))
                _exit(14);
            rc = sop_txn_commit(t);
        } while (rc == SOP_CONFLICT);
        if (rc != SOP_OK)
            _exit(15);
        pthread_mutex_lock(&ack_mu);
        if (write(w->fd, &id, sizeof id) != sizeof id)
            _exit(16);
        pthread_mutex_unlock(&ack_mu);
    }
    return NULL;
}

static pid_t start_bank_worker(int fd, int64_t id_base)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    sop_env *env;
    sop_env_options o = {.cache_bytes = 0, .flags = 0, .log_file_bytes = 256u << 10}; /* durable commits */
    if (sop_env_open(dir, &o, &env) != SOP_OK)
        _exit(9);
    bank_worker w[2] = {{env, fd, id_base}, {env, fd, id_base + 500000}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, bank_thread, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    _exit(0);
}

TEST(bank_across_processes_with_kills)
{
    snprintf(dir, sizeof dir, "/tmp/sop_mpbank_XXXXXX");
    REQUIRE(mkdtemp(dir));
    sop_env *env;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    {
        sop_keybuf kb;
        sop_key_init(&kb);
        sop_txn *t;
        sop_store *acc, *led;
        sop_store_options o;
        memset(&o, 0, sizeof o);
        o.slot_length = 8;
        o.is_unique = 1;
        sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
        sop_store_open(t, "acc", &o, &acc);
        sop_store_open(t, "ledger", &o, &led);
        for (int a = 0; a < ACCOUNTS; a++) {
            sop_val k = ikey(&kb, a), v = {4, "1000"};
            sop_add(acc, &k, NULL, &v, NULL);
        }
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        sop_key_free(&kb);
    }
    sop_env_close(env);
    int want = getenv("SOP_SANITIZER") ? 800 : 5000;
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t workers[4];
    int64_t gen = 1;
    for (int i = 0; i < 4; i++)
        workers[i] = start_bank_worker(fds[1], (gen++) * 1000000);
    /* acknowledged ids, read as they come; kill a random worker now and then */
    int64_t *acked = malloc(sizeof(int64_t) * 2000000);
    size_t nacked = 0;
    int kills = 0;
    unsigned seed = 7;
    uint64_t deadline = (uint64_t)time(NULL) + 240;
    while ((int)nacked < want && (uint64_t)time(NULL) < deadline) {
        struct timespec ts = {0, (long)(20 + rand_r(&seed) % 80) * 1000000L};
        nanosleep(&ts, NULL);
        int v = rand_r(&seed) % 4;
        kill(workers[v], SIGKILL);
        waitpid(workers[v], NULL, 0);
        kills++;
        workers[v] = start_bank_worker(fds[1], (gen++) * 1000000);
        /* drain what arrived */
        int64_t id;
        int flags = fcntl(fds[0], F_GETFL);
        fcntl(fds[0], F_SETFL, flags | O_NONBLOCK);
        while (read(fds[0], &id, sizeof id) == sizeof id)
            acked[nacked++] = id;
        fcntl(fds[0], F_SETFL, flags);
    }
    for (int i = 0; i < 4; i++) {
        kill(workers[i], SIGKILL);
        waitpid(workers[i], NULL, 0);
    }
    close(fds[1]);
    int64_t id;
    while (read(fds[0], &id, sizeof id) == sizeof id)
        acked[nacked++] = id;
    close(fds[0]);
    fprintf(stderr, "%zu acknowledged transfers, %d processes killed\n", nacked, kills);
    CHECK((int)nacked >= want);

    /* money conserved; balances follow the ledger; every ack is in it */
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *acc, *led;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "acc", NULL, &acc), SOP_OK);
    CHECK_RC(sop_store_open(t, "ledger", NULL, &led), SOP_OK);
    long net[ACCOUNTS] = {0}, total = 0;
    sop_cursor *c;
    sop_cursor_open(led, &c);
    for (int rc = sop_cursor_first(c); rc == SOP_OK; rc = sop_cursor_next(c)) {
        sop_val v;
        sop_cursor_get(c, NULL, NULL, &v, NULL);
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)v.size, (const char *)v.data);
        int from, to;
        long amount;
        if (sscanf(buf, "%d>%d:%ld", &from, &to, &amount) == 3) {
            net[from] -= amount;
            net[to] += amount;
        }
    }
    int rc = SOP_OK, balances_ok = 1, missing = 0;
    for (int a = 0; a < ACCOUNTS; a++) {
        long b = balance_of(acc, &kb, a, &rc);
        total += b;
        if (b != START + net[a])
            balances_ok = 0;
    }
    CHECK(total == (long)ACCOUNTS * START);
    CHECK(balances_ok);
    for (size_t i = 0; i < nacked; i++) {
        sop_val k = ikey(&kb, acked[i]), v;
        if (sop_get(led, &k, NULL, &v, NULL) != SOP_OK)
            missing++;
    }
    CHECK(missing == 0);
    sop_txn_abort(t);
    sop_env_close(env);
    sop_key_free(&kb);
    free(acked);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* Another process keeps committing, compacting and checkpointing (which
 * deletes old log files) while this one opens and closes the database over
 * and over: every open succeeds and sees a whole store.  (Before the open
 * took the checkpoint lock, a file listed by the opening process could be
 * deleted before it was opened.) */
TEST(open_while_another_process_reclaims)
{
    new_dir();
    sop_env *env;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    fill(env, 0);
    sop_env_close(env);
    int go[2];
    REQUIRE(pipe(go) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(go[0]);
        sop_env *e;
        if (sop_env_open(dir, &opts, &e) != SOP_OK)
            _exit(2);
        for (int round = 1; round < 100000; round++) {
            fill(e, round);
            if (round % 8 == 0 && sop_env_compact(e) != SOP_OK)
                _exit(3);
            if (round == 50 && write(go[1], "g", 1) != 1)
                _exit(4);
            if (getppid() == 1)
                break;
            struct stat st;
            char stop[300];
            snprintf(stop, sizeof stop, "%s/stop", dir);
            if (stat(stop, &st) == 0)
                break;
        }
        sop_env_close(e);
        _exit(0);
    }
    close(go[1]);
    char g;
    REQUIRE(read(go[0], &g, 1) == 1);
    close(go[0]);
    int opened = 0;
    for (int i = 0; i < 150; i++) {
        int rc = sop_env_open(dir, &opts, &env);
        if (rc != SOP_OK) {
            fprintf(stderr, "open %d: %s\n", i, sop_errmsg());
            CHECK_RC(rc, SOP_OK);
            break;
        }
        opened++;
        sop_txn *t;
        CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
        sop_store *s;
        CHECK_RC(sop_store_open(t, "s", NULL, &s), SOP_OK);
        uint64_t n = 0;
        sop_store_count(s, &n);
        CHECK(n == 50);
        sop_txn_abort(t);
        sop_env_close(env);
    }
    CHECK(opened == 150);
    char stop[300];
    snprintf(stop, sizeof stop, "%s/stop", dir);
    FILE *f = fopen(stop, "w");
    if (f)
        fclose(f);
    CHECK(child_ok(pid));
    remove_dir();
}

/* Another process commits and then says so through a pipe; each
 * transaction this process begins afterwards must see that commit, from an
 * environment that stays open the whole time (so it learns of the commit
 * only from the log epoch, not from recovery). */
TEST(commit_in_another_process_is_seen_at_once)
{
    new_dir();
    sop_env *env;
    CHECK_RC(sop_env_open(dir, &opts, &env), SOP_OK);
    fill(env, 0);
    int go[2], done[2];
    REQUIRE(pipe(go) == 0 && pipe(done) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(go[0]);
        close(done[1]);
        sop_env *e;
        if (sop_env_open(dir, &opts, &e) != SOP_OK)
            _exit(2);
        for (int round = 1; round <= 200; round++) {
            fill(e, round);
            unsigned char r = (unsigned char)round;
            char ack;
            if (write(go[1], &r, 1) != 1 || read(done[0], &ack, 1) != 1)
                _exit(3);
        }
        sop_env_close(e);
        _exit(0);
    }
    close(go[1]);
    close(done[0]);
    int seen = 0;
    for (int round = 1; round <= 200; round++) {
        unsigned char r;
        REQUIRE(read(go[0], &r, 1) == 1);
        sop_txn *t;
        CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
        int ok = reads_round(t, round);
        seen += ok;
        if (!ok)
            fprintf(stderr, "round %d: the other process's commit is not visible\n", round);
        sop_txn_abort(t);
        if (round % 3 == 0)
            fill(env, round); /* our own commits move the epoch too */
        REQUIRE(write(done[1], "k", 1) == 1);
    }
    CHECK(seen == 200);
    CHECK(child_ok(pid));
    sop_env_close(env);
    remove_dir();
}


int main(void)
{
    RUN(bank_across_processes_with_kills);
    RUN(long_reader_in_another_process);
    RUN(writers_in_two_processes_merge);
    RUN(open_while_another_process_reclaims);
    RUN(commit_in_another_process_is_seen_at_once);
    TEST_EXIT();
}
