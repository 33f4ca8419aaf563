/*
 * test_concurrency_ownwrites.c - "replace" transactions (remove key k, then
 * add k again with a new value, in one transaction) next to threads that
 * insert unrelated keys into the same leaves of the same store.  The
 * replace's second step reads what its first step wrote (k is absent), so
 * an unrelated insert must not fail it: every transaction finishes, hardly
 * any is retried (none should be), none gives up, and every key holds the
 * value its last committed replace wrote.  And the other side: a read after
 * the transaction's own write, of an item others change, is still validated
 * (no write skew: withdrawals from the two accounts of a pair that each
 * read the other account after writing their own).
 * Also run under ThreadSanitizer (label "concurrency").
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

#define REPLACERS 2
#define INSERTERS 2
#define KEYS 100          /* per replacer */
#define SPREAD 100000     /* replacer key k*SPREAD + i; inserters fill the gaps */
#define MAX_RETRIES 50

static char dir[256];
static sop_env *env;
static int replaces_per_thread = 150;
static atomic_int replace_retries, gave_up, errors, inserted, insert_retries, replacers_left;
static int last_value[REPLACERS][KEYS]; /* the value of the last committed replace, -1 none */

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

static void *replacer(void *arg)
{
    int me = (int)(uintptr_t)arg;
    unsigned seed = (unsigned)me * 7919u + 17;
    sop_keybuf kb;
    sop_key_init(&kb);
    for (int n = 0; n < replaces_per_thread; n++) {
        int k = rand_r(&seed) % KEYS;
        int attempt;
        for (attempt = 0; attempt <= MAX_RETRIES; attempt++) {
            sop_txn *t;
            sop_store *s;
            int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
            if (rc != SOP_OK) {
                atomic_fetch_add(&errors, 1);
                break;
            }
            rc = sop_store_open(t, "s", NULL, &s);
            sop_val key = ikey(&kb, (int64_t)k * SPREAD + me);
            if (rc == SOP_OK)
                rc = sop_remove(s, &key);
            char buf[32];
            snprintf(buf, sizeof buf, "%d", n);
            sop_val v = {strlen(buf), buf};
            if (rc == SOP_OK)
                rc = sop_add(s, &key, NULL, &v, NULL);
            if (rc == SOP_OK)
                rc = sop_txn_commit(t);
            else
                sop_txn_abort(t);
            if (rc == SOP_OK) {
                last_value[me][k] = n;
                break;
            }
            if (rc != SOP_CONFLICT) {
                fprintf(stderr, "replacer: %s\n", sop_errmsg());
                atomic_fetch_add(&errors, 1);
                break;
            }
            atomic_fetch_add(&replace_retries, 1);
            struct timespec ts = {0, (long)(rand_r(&seed) % 200) * 1000L};
            nanosleep(&ts, NULL);
        }
        if (attempt > MAX_RETRIES)
            atomic_fetch_add(&gave_up, 1);
    }
    sop_key_free(&kb);
    atomic_fetch_sub(&replacers_left, 1);
    return NULL;
}

/* New keys between the replacers' keys, one per transaction, until the
 * replacers are done (at least 20 each, so they always overlap some). */
static void *inserter(void *arg)
{
    int me = (int)(uintptr_t)arg;
    sop_keybuf kb;
    sop_key_init(&kb);
    for (int m = 0; m < 1000000 && (m < 20 || atomic_load(&replacers_left) > 0); m++) {
        int64_t kv = (int64_t)(m % KEYS) * SPREAD + 10 + me + 2 * (m / KEYS);
        for (int attempt = 0; attempt <= MAX_RETRIES; attempt++) {
            sop_txn *t = NULL;
            sop_store *s;
            int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
            if (rc == SOP_OK)
                rc = sop_store_open(t, "s", NULL, &s);
            sop_val key = ikey(&kb, kv), v = {3, "ins"};
            if (rc == SOP_OK)
                rc = sop_add(s, &key, NULL, &v, NULL);
            if (rc == SOP_OK)
                rc = sop_txn_commit(t);
            else if (t)
                sop_txn_abort(t);
            if (rc == SOP_OK) {
                atomic_fetch_add(&inserted, 1);
                break;
            }
            if (rc != SOP_CONFLICT) {
                fprintf(stderr, "inserter: %s\n", sop_errmsg());
                atomic_fetch_add(&errors, 1);
                m = 1000000;
                break;
            }
            atomic_fetch_add(&insert_retries, 1);
        }
    }
    sop_key_free(&kb);
    return NULL;
}

TEST(replaces_next_to_unrelated_inserts)
{
    if (getenv("SOP_SANITIZER"))
        replaces_per_thread = 40;
    snprintf(dir, sizeof dir, "/tmp/sop_ownw_XXXXXX");
    REQUIRE(mkdtemp(dir));
    sop_env_options eo = {.cache_bytes = 0, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 0};
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 32;
    o.is_unique = 1;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "s", &o, &s), SOP_OK);
    for (int i = 0; i < REPLACERS; i++)
        for (int k = 0; k < KEYS; k++) {
            sop_val key = ikey(&kb, (int64_t)k * SPREAD + i), v = {4, "base"};
            CHECK_RC(sop_add(s, &key, NULL, &v, NULL), SOP_OK);
            last_value[i][k] = -1;
        }
    CHECK_RC(sop_txn_commit(t), SOP_OK);

    atomic_store(&replacers_left, REPLACERS);
    pthread_t rt[REPLACERS], it[INSERTERS];
    for (int i = 0; i < INSERTERS; i++)
        pthread_create(&it[i], NULL, inserter, (void *)(uintptr_t)i);
    for (int i = 0; i < REPLACERS; i++)
        pthread_create(&rt[i], NULL, replacer, (void *)(uintptr_t)i);
    for (int i = 0; i < REPLACERS; i++)
        pthread_join(rt[i], NULL);
    for (int i = 0; i < INSERTERS; i++)
        pthread_join(it[i], NULL);

    int total = REPLACERS * replaces_per_thread;
    fprintf(stderr, "%d replaces, %d retried, %d gave up; %d inserts, %d retried\n", total,
            atomic_load(&replace_retries), atomic_load(&gave_up), atomic_load(&inserted),
            atomic_load(&insert_retries));
    CHECK(atomic_load(&errors) == 0);
    CHECK(atomic_load(&gave_up) == 0);
    CHECK(atomic_load(&replace_retries) * 10 < total);
    CHECK(atomic_load(&insert_retries) * 10 < atomic_load(&inserted) + 10);

    /* every key holds its last committed replace; every insert is there */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "s", NULL, &s), SOP_OK);
    uint64_t n = 0;
    CHECK_RC(sop_store_count(s, &n), SOP_OK);
    CHECK(n == (uint64_t)(REPLACERS * KEYS + atomic_load(&inserted)));
    for (int i = 0; i < REPLACERS; i++)
        for (int k = 0; k < KEYS; k++) {
            sop_val key = ikey(&kb, (int64_t)k * SPREAD + i), v;
            char want[32];
            if (last_value[i][k] < 0)
                snprintf(want, sizeof want, "base");
            else
                snprintf(want, sizeof want, "%d", last_value[i][k]);
            int rc = sop_get(s, &key, NULL, &v, NULL);
            CHECK(rc == SOP_OK && v.size == strlen(want) && !memcmp(v.data, want, v.size));
        }
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    sop_key_free(&kb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* ------------------------------------ write skew after own writes */
/* Accounts in pairs (a, a ^ 1) whose sum must stay >= 0.  A withdrawal
 * reads a, writes a - amount, and only then reads the partner b (a read
 * after its own write, of an item it does not write) to decide: commit if
 * the pair stays >= 0, else roll back.  Two withdrawals from the two sides
 * of one pair write different items; only validating the read of b stops
 * both from committing (write skew).  Deposits keep the pairs near 0. */
#define ACCOUNTS 8
#define START 50
#define BANKERS 4
static int ops_per_thread = 300;
static long net[BANKERS][ACCOUNTS];
static atomic_int bank_committed, bank_conflicts, skew_seen;

static long balance(sop_store *s, sop_keybuf *kb, int a, int *rc)
{
    sop_val k = ikey(kb, a), v;
    *rc = sop_get(s, &k, NULL, &v, NULL);
    if (*rc != SOP_OK)
        return 0;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)v.size, (const char *)v.data);
    return atol(buf);
}

static int set_balance(sop_store *s, sop_keybuf *kb, int a, long bal, int replace)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", bal);
    sop_val k = ikey(kb, a), v = {strlen(buf), buf};
    if (!replace)
        return sop_update(s, &k, NULL, &v);
    int rc = sop_remove(s, &k);
    return rc == SOP_OK ? sop_add(s, &k, NULL, &v, NULL) : rc;
}

static void *banker(void *arg)
{
    int me = (int)(uintptr_t)arg;
    unsigned seed = (unsigned)me * 104729u + 3;
    sop_keybuf kb;
    sop_key_init(&kb);
    for (int n = 0; n < ops_per_thread; n++) {
        int a = rand_r(&seed) % ACCOUNTS, b = a ^ 1;
        int deposit = rand_r(&seed) % 3 == 0, replace = rand_r(&seed) % 2;
        long amount = deposit ? 1 + rand_r(&seed) % 30 : 1 + rand_r(&seed) % 40;
        for (int attempt = 0; attempt < 1000; attempt++) {
            sop_txn *t;
            sop_store *s;
            int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
            if (rc != SOP_OK) {
                atomic_fetch_add(&errors, 1);
                break;
            }
            rc = sop_store_open(t, "bank", NULL, &s);
            long ab = 0, bb = 0, delta = deposit ? amount : -amount;
            if (rc == SOP_OK)
                ab = balance(s, &kb, a, &rc);
            if (rc == SOP_OK)
                rc = set_balance(s, &kb, a, ab + delta, replace);
            int keep = 1;
            if (rc == SOP_OK && !deposit) {
                struct timespec ts = {0, (long)(rand_r(&seed) % 100) * 1000L};
                nanosleep(&ts, NULL); /* let others commit in between */
                bb = balance(s, &kb, b, &rc);
                if (rc == SOP_OK && ab + bb < 0)
                    atomic_fetch_add(&skew_seen, 1); /* a snapshot broke the rule */
                keep = ab + delta + bb >= 0;
            }
            if (rc == SOP_OK && keep) {
                rc = sop_txn_commit(t);
            } else {
                sop_txn_abort(t);
                if (rc == SOP_OK)
                    break; /* not enough money: done */
            }
            if (rc == SOP_OK) {
                net[me][a] += delta;
                atomic_fetch_add(&bank_committed, 1);
                break;
            }
            if (rc != SOP_CONFLICT) {
                fprintf(stderr, "banker: %s\n", sop_errmsg());
                atomic_fetch_add(&errors, 1);
                break;
            }
            atomic_fetch_add(&bank_conflicts, 1);
        }
    }
    sop_key_free(&kb);
    return NULL;
}

TEST(no_write_skew_through_reads_after_own_writes)
{
    if (getenv("SOP_SANITIZER"))
        ops_per_thread = 80;
    atomic_store(&errors, 0);
    snprintf(dir, sizeof dir, "/tmp/sop_ownb_XXXXXX");
    REQUIRE(mkdtemp(dir));
    sop_env_options eo = {.cache_bytes = 0, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 0};
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 4; /* several leaves */
    o.is_unique = 1;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "bank", &o, &s), SOP_OK);
    char start[16];
    snprintf(start, sizeof start, "%d", START);
    for (int a = 0; a < ACCOUNTS; a++) {
        sop_val k = ikey(&kb, a), v = {strlen(start), start};
        CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
    }
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    pthread_t th[BANKERS];
    for (int i = 0; i < BANKERS; i++)
        pthread_create(&th[i], NULL, banker, (void *)(uintptr_t)i);
    for (int i = 0; i < BANKERS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "%d committed, %d conflicts retried, %d snapshots with a broken pair\n",
            atomic_load(&bank_committed), atomic_load(&bank_conflicts), atomic_load(&skew_seen));
    CHECK(atomic_load(&errors) == 0);
    CHECK(atomic_load(&skew_seen) == 0);
    CHECK(atomic_load(&bank_committed) > 0);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "bank", NULL, &s), SOP_OK);
    long bal[ACCOUNTS];
    for (int a = 0; a < ACCOUNTS; a++) {
        int rc;
        long want = START;
        for (int i = 0; i < BANKERS; i++)
            want += net[i][a];
        bal[a] = balance(s, &kb, a, &rc);
        CHECK(rc == SOP_OK && bal[a] == want);
    }
    for (int a = 0; a < ACCOUNTS; a += 2)
        CHECK(bal[a] + bal[a + 1] >= 0);
    uint64_t n = 0;
    CHECK_RC(sop_store_count(s, &n), SOP_OK);
    CHECK(n == ACCOUNTS);
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    sop_key_free(&kb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

int main(void)
{
    RUN(replaces_next_to_unrelated_inserts);
    RUN(no_write_skew_through_reads_after_own_writes);
    TEST_EXIT();
}
