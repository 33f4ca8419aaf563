/*
 * test_concurrency.c - threads sharing one environment: writers move money
 * between accounts in their own transactions (retrying on SOP_CONFLICT) and
 * log every transfer in a second store, while readers check on their
 * snapshots that the total never changes.  Afterwards money is conserved, the
 * ledger holds exactly the committed transfers, and the integrity check is
 * clean.  Also run under ThreadSanitizer (label "concurrency").
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

#define ACCOUNTS 50
#define START 1000

static char dir[256];
static sop_env *env;
static atomic_int committed, conflicts, reader_checks, reader_errors, stop_readers;
static int transfers_per_thread = 650; /* x 8 writers = 5,200 transfers */

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

static long get_balance(sop_store *s, sop_keybuf *kb, int acct, int *rc)
{
    sop_val k = ikey(kb, acct), v;
    *rc = sop_get(s, &k, NULL, &v, NULL);
    if (*rc != SOP_OK)
        return 0;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)v.size, (const char *)v.data);
    return atol(buf);
}

static int set_balance(sop_store *s, sop_keybuf *kb, int acct, long bal)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", bal);
    sop_val k = ikey(kb, acct), v = {strlen(buf), buf};
    return sop_update(s, &k, NULL, &v);
}

static void *writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
    sop_keybuf kb;
    sop_key_init(&kb);
    for (int n = 0; n < transfers_per_thread; n++) {
        int from = rand_r(&seed) % ACCOUNTS, to = (from + 1 + rand_r(&seed) % (ACCOUNTS - 1)) % ACCOUNTS;
        long amount = rand_r(&seed) % 50;
        int abort_it = rand_r(&seed) % 10 == 0;
        for (int attempt = 0; attempt < 1000; attempt++) {
            sop_txn *t;
            sop_store *acc, *led;
            int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
            if (rc == SOP_OK)
                rc = sop_store_open(t, "accounts", NULL, &acc);
            if (rc == SOP_OK)
                rc = sop_store_open(t, "ledger", NULL, &led);
            long fb = 0, tb = 0;
            if (rc == SOP_OK)
                fb = get_balance(acc, &kb, from, &rc);
            if (rc == SOP_OK)
                tb = get_balance(acc, &kb, to, &rc);
            if (rc == SOP_OK)
                rc = set_balance(acc, &kb, from, fb - amount);
            if (rc == SOP_OK)
                rc = set_balance(acc, &kb, to, tb + amount);
            char entry[64];
            snprintf(entry, sizeof entry, "%d>%d:%ld", from, to, amount);
            sop_val v = {strlen(entry), entry};
            sop_id id;
            sop_val k = ikey(&kb, 0);
            if (rc == SOP_OK)
                rc = sop_add(led, &k, NULL, &v, &id); /* non-unique ledger: one key */
            if (rc != SOP_OK) {
                fprintf(stderr, "writer: %s\n", sop_errmsg());
                sop_txn_abort(t);
                break;
            }
            if (abort_it) {
                sop_txn_abort(t);
                break;
            }
            rc = sop_txn_commit(t);
            if (rc == SOP_OK) {
                atomic_fetch_add(&committed, 1);
                break;
            }
            if (rc != SOP_CONFLICT) {
                fprintf(stderr, "commit: %s\n", sop_errmsg());
                break;
            }
            atomic_fetch_add(&conflicts, 1);
            struct timespec ts = {0, (long)(rand_r(&seed) % 300) * 1000L};
            nanosleep(&ts, NULL); /* back off, then retry */
        }
    }
    sop_key_free(&kb);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    sop_keybuf kb;
    sop_key_init(&kb);
    while (!atomic_load(&stop_readers)) {
        sop_txn *t;
        sop_store *acc;
        if (sop_txn_begin(env, SOP_TXN_READ, 0, &t) != SOP_OK) {
            atomic_fetch_add(&reader_errors, 1);
            break;
        }
        int rc = sop_store_open(t, "accounts", NULL, &acc);
        long total = 0;
        for (int a = 0; a < ACCOUNTS && rc == SOP_OK; a++)
            total += get_balance(acc, &kb, a, &rc);
        if (rc != SOP_OK || total != (long)ACCOUNTS * START)
            atomic_fetch_add(&reader_errors, 1);
        atomic_fetch_add(&reader_checks, 1);
        sop_txn_abort(t);
    }
    sop_key_free(&kb);
    return NULL;
}

TEST(bank_transfers_across_threads)
{
    if (getenv("SOP_SANITIZER"))
        transfers_per_thread = 80;
    snprintf(dir, sizeof dir, "/tmp/sop_conc_XXXXXX");
    REQUIRE(mkdtemp(dir));
    sop_env_options eo = {.cache_bytes = 0, .flags = 0, .log_file_bytes = 1u << 20}; /* durable; small log files to exercise reclamation */
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *acc, *led;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "accounts", &o, &acc), SOP_OK);
    o.is_unique = 0;
    CHECK_RC(sop_store_open(t, "ledger", &o, &led), SOP_OK);
    for (int a = 0; a < ACCOUNTS; a++) {
        sop_val k = ikey(&kb, a), v = {4, "1000"};
        CHECK_RC(sop_add(acc, &k, NULL, &v, NULL), SOP_OK);
    }
    CHECK_RC(sop_txn_commit(t), SOP_OK);

    enum { W = 8, R = 2 };
    pthread_t w[W], r[R];
    for (int i = 0; i < R; i++)
        pthread_create(&r[i], NULL, reader, NULL);
    for (int i = 0; i < W; i++)
        pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < W; i++)
        pthread_join(w[i], NULL);
    atomic_store(&stop_readers, 1);
    for (int i = 0; i < R; i++)
        pthread_join(r[i], NULL);

    fprintf(stderr, "%d committed, %d conflicts retried, %d reader snapshots checked\n",
            atomic_load(&committed), atomic_load(&conflicts), atomic_load(&reader_checks));
    CHECK(atomic_load(&reader_errors) == 0);
    CHECK(atomic_load(&committed) > 0);
    /* money conserved; the ledger holds exactly the committed transfers */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "accounts", NULL, &acc), SOP_OK);
    CHECK_RC(sop_store_open(t, "ledger", NULL, &led), SOP_OK);
    long total = 0, net[ACCOUNTS] = {0};
    int rc = SOP_OK;
    for (int a = 0; a < ACCOUNTS; a++)
        total += get_balance(acc, &kb, a, &rc);
    CHECK(total == (long)ACCOUNTS * START);
    uint64_t n = 0;
    sop_store_count(led, &n);
    CHECK(n == (uint64_t)atomic_load(&committed));
    sop_cursor *c;
    sop_cursor_open(led, &c);
    for (int r2 = sop_cursor_first(c); r2 == SOP_OK; r2 = sop_cursor_next(c)) {
        sop_val v;
        sop_cursor_get(c, NULL, NULL, &v, NULL);
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)v.size, (const char *)v.data);
        int from, to;
        long amount;
        if (sscanf(buf, "%d>%d:%ld", &from, &to, &amount) == 3 && from < ACCOUNTS && to < ACCOUNTS) {
            net[from] -= amount;
            net[to] += amount;
        }
    }
    for (int a = 0; a < ACCOUNTS; a++) {
        long bal = get_balance(acc, &kb, a, &rc);
        CHECK(bal == START + net[a]);
    }
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    /* and the same after recovery */
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    sop_key_free(&kb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

int main(void)
{
    RUN(bank_transfers_across_threads);
    TEST_EXIT();
}
