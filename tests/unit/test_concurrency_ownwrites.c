/*
 * test_concurrency_ownwrites.c - "replace" transactions (remove key k, then
 * add k again with a new value, in one transaction) next to threads that
 * insert unrelated keys into the same leaves of the same store.  The
 * replace's second step reads what its first step wrote (k is absent), so
 * an unrelated insert must not fail it: every transaction finishes, hardly
 * any is retried (none should be), none gives up, and every key holds the
 * value its last committed replace wrote.  Also run under ThreadSanitizer
 * (label "concurrency").
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

int main(void)
{
    RUN(replaces_next_to_unrelated_inserts);
    TEST_EXIT();
}
