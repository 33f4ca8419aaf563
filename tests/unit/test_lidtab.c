/*
 * test_lidtab.c - the logical-id hash table: random adds, finds and deletes
 * (backward-shift deletion across wrap-around and growth) against a plain
 * array of expected values.
 */
#include <stdint.h>

#include "lidtab.h"
#include "sop.h"
#include "test.h"

typedef struct ent {
    uint64_t lid;
    uint64_t val;
} ent;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

TEST(random_against_array)
{
    enum { KEYS = 5000 };
    static uint64_t want[KEYS + 1]; /* 0 = absent; keys 1..KEYS */
    lidtab t;
    lidtab_init(&t, sizeof(ent));
    size_t present = 0;
    for (int n = 0; n < 200000; n++) {
        /* keys spread over the table and clustered (small numbers collide in
         * runs after masking), so probe runs wrap and shift */
        uint64_t k = 1 + next_rand() % KEYS;
        ent *e = lidtab_find(&t, k);
        CHECK((e != NULL) == (want[k] != 0));
        if (e)
            CHECK(e->val == want[k]);
        if (!e) {
            e = lidtab_add(&t, k);
            REQUIRE(e);
            CHECK(e->lid == k && e->val == 0);
            e->val = want[k] = next_rand() | 1;
            present++;
        } else if (next_rand() % 3 == 0) {
            lidtab_del(&t, e);
            want[k] = 0;
            present--;
        }
        CHECK(t.n == present);
    }
    size_t seen = 0;
    for (size_t i = 0; i < lidtab_slots(&t); i++) {
        ent *e = lidtab_at(&t, i);
        if (e) {
            seen++;
            CHECK(e->lid >= 1 && e->lid <= KEYS && want[e->lid] == e->val);
        }
    }
    CHECK(seen == present);
    for (uint64_t k = 1; k <= KEYS; k++) {
        ent *e = lidtab_find(&t, k);
        CHECK((e != NULL) == (want[k] != 0));
    }
    lidtab_free(&t);
    CHECK(lidtab_find(&t, 1) == NULL && lidtab_slots(&t) == 0);
}

int main(void)
{
    RUN(random_against_array);
    TEST_EXIT();
}
