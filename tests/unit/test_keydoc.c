/*
 * test_keydoc.c - tests of key documents and index specifications
 * (keydoc.c): order of keys built by a spec with ascending and descending
 * fields against a model comparator, the default field order (no spec),
 * prefix keys, ride-on fields, bad fields and bad specs, and a store of
 * complex keys end to end (spec kept with the store, prefix scans, reopen).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- builders ------------------------------------------------------------ */

/* spec from "name:a" / "name:d" strings */
static void build_spec(sop_docbuf *d, const char *const *fields, size_t k)
{
    sop_doc_reset(d);
    sop_doc_list(d, k);
    for (size_t i = 0; i < k; i++) {
        const char *f = fields[i];
        const char *colon = strchr(f, ':');
        sop_doc_list(d, 2);
        sop_doc_str(d, f, (size_t)(colon - f));
        sop_doc_bool(d, colon[1] == 'a');
    }
}

static sop_val dval(const sop_docbuf *d)
{
    return (sop_val){d->size, d->data};
}

static void dstr(sop_docbuf *d, const char *s)
{
    sop_doc_str(d, s, strlen(s));
}

static int key_eq(const sop_keybuf *a, const sop_keybuf *b)
{
    return a->size == b->size && memcmp(a->data, b->data, a->size) == 0;
}

/* ---- ordering by a spec --------------------------------------------------- */

/* A record: region (str from a small set), level (int, may be huge or
 * negative), score (double or null), tag (ride-on). */
typedef struct rec {
    const char *region;
    int64_t level;
    int has_score;
    double score;
    int tag;
    unsigned char key[256];
    size_t klen;
} rec;

static const char *const regions[] = {"", "EU", "US", "US\xc3\xa9", "APAC", "eu"};

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

/* the model: region ascending, level descending, score ascending
 * (null < any number) */
static int model_cmp(const rec *a, const rec *b)
{
    int c = strcmp(a->region, b->region); /* bytewise on UTF-8 */
    if (c)
        return c < 0 ? -1 : 1;
    c = -cmp_i64(a->level, b->level);
    if (c)
        return c;
    if (a->has_score != b->has_score)
        return a->has_score ? 1 : -1;
    if (!a->has_score)
        return 0;
    return a->score < b->score ? -1 : a->score > b->score;
}

static void rec_doc(const rec *r, sop_docbuf *d, int with_tag)
{
    sop_doc_reset(d);
    sop_doc_map(d, with_tag ? 4 : 3);
    if (with_tag) { /* ride-on first, nested: must be ignored */
        dstr(d, "tag");
        sop_doc_list(d, 2);
        sop_doc_int(d, r->tag);
        sop_doc_map(d, 1);
        dstr(d, "x");
        sop_doc_null(d);
    }
    dstr(d, "score");
    if (r->has_score)
        sop_doc_double(d, r->score);
    else
        sop_doc_null(d);
    dstr(d, "level");
    sop_doc_int(d, r->level);
    dstr(d, "region");
    dstr(d, r->region);
}

static int cmp_key_bytes(const void *x, const void *y)
{
    const rec *a = x, *b = y;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->key, b->key, n);
    if (c)
        return c;
    return a->klen < b->klen ? -1 : a->klen > b->klen;
}

TEST(test_spec_order)
{
    static const char *const fields[] = {"region:a", "level:d", "score:a"};
    sop_docbuf spec, d;
    sop_keybuf kb;
    sop_doc_init(&spec);
    sop_doc_init(&d);
    sop_key_init(&kb);
    build_spec(&spec, fields, 3);
    sop_val sv = dval(&spec);
    size_t nf = 99;
    CHECK_RC(sop_index_spec_check(spec.data, spec.size, &nf), SOP_OK);
    CHECK(nf == 3);

    enum { N = 3000 };
    rec *recs = calloc(N, sizeof *recs);
    REQUIRE(recs);
    for (int i = 0; i < N; i++) {
        rec *r = &recs[i];
        r->region = regions[rnd() % 6];
        switch (rnd() % 4) {
        case 0: r->level = (int64_t)(rnd() % 7) - 3; break;
        case 1: r->level = (int64_t)rnd(); break; /* any int64, huge ones too */
        case 2: r->level = INT64_MAX - (int64_t)(rnd() % 3); break;
        default: r->level = INT64_MIN + (int64_t)(rnd() % 3); break;
        }
        r->has_score = rnd() % 5 != 0;
        r->score = ((double)(int64_t)(rnd() % 2001) - 1000) / 8.0;
        r->tag = i;
        rec_doc(r, &d, (int)(rnd() & 1));
        sop_key_reset(&kb);
        size_t used = 0;
        CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, &used), SOP_OK);
        CHECK(used == 3);
        REQUIRE(kb.size <= sizeof r->key);
        memcpy(r->key, kb.data, kb.size);
        r->klen = kb.size;
    }
    qsort(recs, N, sizeof *recs, cmp_key_bytes);
    int bad = 0;
    for (int i = 1; i < N; i++) {
        int m = model_cmp(&recs[i - 1], &recs[i]);
        int k = cmp_key_bytes(&recs[i - 1], &recs[i]);
        if (m > 0 || (m == 0) != (k == 0))
            bad++;
    }
    CHECK(bad == 0);

    /* ride-on fields do not change the key */
    rec r0 = {"US", 5, 1, 2.5, 7, {0}, 0};
    sop_keybuf k2;
    sop_key_init(&k2);
    rec_doc(&r0, &d, 1);
    sop_key_reset(&kb);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, NULL), SOP_OK);
    rec_doc(&r0, &d, 0);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &k2, NULL), SOP_OK);
    CHECK(key_eq(&kb, &k2));
    /* and it equals the hand-made key */
    sop_key_reset(&k2);
    sop_key_str(&k2, "US", 2, 0);
    sop_key_int(&k2, 5, 1);
    sop_key_double(&k2, 2.5, 0);
    sop_key_reset(&kb);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, NULL), SOP_OK);
    CHECK(key_eq(&kb, &k2));

    free(recs);
    sop_key_free(&kb);
    sop_key_free(&k2);
    sop_doc_free(&spec);
    sop_doc_free(&d);
}

/* ---- no spec: every field, by name --------------------------------------- */

TEST(test_default_order)
{
    sop_docbuf d;
    sop_keybuf kb, want;
    sop_doc_init(&d);
    sop_key_init(&kb);
    sop_key_init(&want);
    sop_doc_map(&d, 5);
    dstr(&d, "zeta");
    sop_doc_uint(&d, UINT64_MAX);
    dstr(&d, "alpha");
    dstr(&d, "x");
    dstr(&d, "mid");
    sop_doc_bool(&d, 1);
    dstr(&d, "al");
    sop_doc_null(&d);
    dstr(&d, "b");
    sop_doc_bytes(&d, "\x00\x01", 2);
    size_t used = 0;
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, &used), SOP_OK);
    CHECK(used == 5);
    /* al < alpha < b < mid < zeta */
    sop_key_null(&want, 0);
    sop_key_str(&want, "x", 1, 0);
    sop_key_bytes(&want, "\x00\x01", 2, 0);
    sop_key_bool(&want, 1, 0);
    sop_key_uint(&want, UINT64_MAX, 0);
    CHECK(key_eq(&kb, &want));

    /* an empty list spec is the same as no spec */
    sop_docbuf spec;
    sop_doc_init(&spec);
    sop_doc_list(&spec, 0);
    sop_val sv = dval(&spec);
    sop_key_reset(&kb);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, &used), SOP_OK);
    CHECK(used == 5 && key_eq(&kb, &want));

    /* appended to what kb holds */
    sop_key_reset(&kb);
    sop_key_int(&kb, 1, 0);
    size_t before = kb.size;
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, &used), SOP_OK);
    CHECK(kb.size == before + want.size && !memcmp(kb.data + before, want.data, want.size));

    /* an empty map: no fields */
    sop_doc_reset(&d);
    sop_doc_map(&d, 0);
    sop_key_reset(&kb);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, &used), SOP_OK);
    CHECK(used == 0 && kb.size == 0);

    /* numbers by value across types: 1 == 1.0, int < uint, -0.0 == 0 */
    sop_keybuf a, b;
    sop_key_init(&a);
    sop_key_init(&b);
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "n");
    sop_doc_int(&d, 1);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &a, NULL), SOP_OK);
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "n");
    sop_doc_double(&d, 1.0);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &b, NULL), SOP_OK);
    CHECK(key_eq(&a, &b));
    /* a bigint that fits 64 bits is an int */
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "n");
    sop_doc_bigint(&d, "\x00\x00\x01", 3);
    sop_key_reset(&b);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &b, NULL), SOP_OK);
    CHECK(key_eq(&a, &b));
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "n");
    sop_doc_bigint(&d, "\x00\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    sop_key_reset(&a);
    sop_key_reset(&b);
    sop_key_uint(&a, UINT64_MAX, 0);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &b, NULL), SOP_OK);
    CHECK(key_eq(&a, &b));
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "n");
    sop_doc_bigint(&d, "\xff\xfe", 2); /* -2 */
    sop_key_reset(&a);
    sop_key_reset(&b);
    sop_key_int(&a, -2, 0);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &b, NULL), SOP_OK);
    CHECK(key_eq(&a, &b));

    sop_key_free(&a);
    sop_key_free(&b);
    sop_doc_free(&spec);
    sop_doc_free(&d);
    sop_key_free(&kb);
    sop_key_free(&want);
}

/* ---- prefix keys ------------------------------------------------------------- */

TEST(test_prefix_keys)
{
    static const char *const fields[] = {"region:a", "dept:d", "id:a"};
    sop_docbuf spec, d;
    sop_keybuf full, pre;
    sop_doc_init(&spec);
    sop_doc_init(&d);
    sop_key_init(&full);
    sop_key_init(&pre);
    build_spec(&spec, fields, 3);
    sop_val sv = dval(&spec);
    size_t used = 9;

    sop_doc_map(&d, 4);
    dstr(&d, "id");
    sop_doc_int(&d, 7);
    dstr(&d, "dept");
    dstr(&d, "Eng");
    dstr(&d, "region");
    dstr(&d, "US");
    dstr(&d, "note");
    dstr(&d, "ride-on");
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &full, &used), SOP_OK);
    CHECK(used == 3);

    /* only the first field */
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "region");
    dstr(&d, "US");
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &pre, &used), SOP_OK);
    CHECK(used == 1);
    CHECK(pre.size < full.size && !memcmp(pre.data, full.data, pre.size));

    /* a later field without the one before it: the key stops at the gap */
    sop_doc_reset(&d);
    sop_doc_map(&d, 2);
    dstr(&d, "region");
    dstr(&d, "US");
    dstr(&d, "id");
    sop_doc_int(&d, 7);
    sop_keybuf gap;
    sop_key_init(&gap);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &gap, &used), SOP_OK);
    CHECK(used == 1 && key_eq(&gap, &pre));

    /* two fields */
    sop_doc_reset(&d);
    sop_doc_map(&d, 2);
    dstr(&d, "dept");
    dstr(&d, "Eng");
    dstr(&d, "region");
    dstr(&d, "US");
    sop_key_reset(&pre);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &pre, &used), SOP_OK);
    CHECK(used == 2);
    CHECK(pre.size < full.size && !memcmp(pre.data, full.data, pre.size));

    /* no indexed field at all */
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "note");
    dstr(&d, "x");
    sop_key_reset(&pre);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &pre, &used), SOP_OK);
    CHECK(used == 0 && pre.size == 0);

    sop_key_free(&gap);
    sop_key_free(&full);
    sop_key_free(&pre);
    sop_doc_free(&spec);
    sop_doc_free(&d);
}

/* ---- bad input ---------------------------------------------------------------- */

/* Build {"a": 1, "k": <bad>} and expect rc with "'k'" in the message. */
static void expect_bad_field(const sop_val *spec, void (*put)(sop_docbuf *), int want)
{
    sop_docbuf d;
    sop_keybuf kb;
    sop_doc_init(&d);
    sop_key_init(&kb);
    sop_key_int(&kb, 42, 0);
    size_t before = kb.size;
    sop_doc_map(&d, 2);
    dstr(&d, "a");
    sop_doc_int(&d, 1);
    dstr(&d, "k");
    put(&d);
    size_t used = 5;
    CHECK_RC(sop_key_from_doc(spec, d.data, d.size, &kb, &used), want);
    CHECK(used == 0);
    CHECK(strstr(sop_errmsg(), "'k'") != NULL);
    CHECK(kb.size == before && kb.err == SOP_OK); /* kb left as it was */
    sop_doc_free(&d);
    sop_key_free(&kb);
}

static void put_list(sop_docbuf *d) { sop_doc_list(d, 1); sop_doc_int(d, 1); }
static void put_map(sop_docbuf *d) { sop_doc_map(d, 1); dstr(d, "x"); sop_doc_int(d, 1); }
static void put_big(sop_docbuf *d) { sop_doc_bigint(d, "\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9); }
static void put_nan(sop_docbuf *d) { sop_doc_double(d, NAN); }

TEST(test_bad_fields)
{
    static const char *const fields[] = {"a:a", "k:d"};
    sop_docbuf spec;
    sop_doc_init(&spec);
    build_spec(&spec, fields, 2);
    sop_val sv = dval(&spec);
    for (int with_spec = 0; with_spec < 2; with_spec++) {
        const sop_val *s = with_spec ? &sv : NULL;
        expect_bad_field(s, put_list, SOP_BAD_KEY);
        expect_bad_field(s, put_map, SOP_BAD_KEY);
        expect_bad_field(s, put_big, SOP_BAD_KEY);
        expect_bad_field(s, put_nan, SOP_BAD_KEY);
    }

    sop_docbuf d;
    sop_keybuf kb;
    sop_doc_init(&d);
    sop_key_init(&kb);
    /* not a map */
    sop_doc_list(&d, 1);
    sop_doc_int(&d, 1);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, NULL), SOP_BAD_KEY);
    sop_doc_reset(&d);
    sop_doc_int(&d, 1);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, NULL), SOP_BAD_KEY);
    CHECK_RC(sop_key_from_doc(NULL, NULL, 0, &kb, NULL), SOP_BAD_KEY);
    /* malformed: truncated, trailing bytes, non-str map key */
    sop_doc_reset(&d);
    sop_doc_map(&d, 2);
    dstr(&d, "a");
    sop_doc_int(&d, 1);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, NULL), SOP_INVALID);
    dstr(&d, "b");
    sop_doc_int(&d, 2);
    sop_doc_int(&d, 3);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, NULL), SOP_INVALID);
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    sop_doc_int(&d, 1);
    sop_doc_int(&d, 1);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, NULL), SOP_INVALID);
    /* a ride-on field with a truncated nested value */
    sop_doc_reset(&d);
    sop_doc_map(&d, 2);
    dstr(&d, "a");
    sop_doc_int(&d, 1);
    dstr(&d, "r");
    sop_doc_list(&d, 3);
    sop_doc_int(&d, 1);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, NULL), SOP_INVALID);
    /* the same field twice (no spec) */
    sop_doc_reset(&d);
    sop_doc_map(&d, 2);
    dstr(&d, "a");
    sop_doc_int(&d, 1);
    dstr(&d, "a");
    sop_doc_int(&d, 2);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, NULL), SOP_BAD_KEY);
    /* too large */
    static char big[5000];
    memset(big, 'x', sizeof big);
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "a");
    sop_doc_str(&d, big, sizeof big);
    sop_key_reset(&kb);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, NULL), SOP_KEY_TOO_LARGE);
    CHECK(kb.size == 0 && kb.err == SOP_OK);
    sop_doc_reset(&d);
    sop_doc_map(&d, 2);
    dstr(&d, "a");
    sop_doc_str(&d, big, 3000);
    dstr(&d, "k");
    sop_doc_str(&d, big, 3000);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, NULL), SOP_KEY_TOO_LARGE);
    /* the limit itself is fine: "a" -> 0x30 + n + 00 01 */
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "a");
    sop_doc_str(&d, big, SOP_MAX_KEY - 3);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, NULL), SOP_OK);
    CHECK(kb.size == SOP_MAX_KEY);
    /* NULL kb */
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, NULL, NULL), SOP_MISUSE);

    sop_doc_free(&d);
    sop_key_free(&kb);
    sop_doc_free(&spec);
}

TEST(test_bad_specs)
{
    sop_docbuf s, d;
    sop_keybuf kb;
    sop_doc_init(&s);
    sop_doc_init(&d);
    sop_key_init(&kb);
    sop_doc_map(&d, 1);
    dstr(&d, "a");
    sop_doc_int(&d, 1);
    size_t nf = 7;
#define BAD_SPEC()                                                                     \
    do {                                                                               \
        sop_val sv_ = dval(&s);                                                        \
        CHECK_RC(sop_index_spec_check(s.data, s.size, &nf), SOP_INVALID);              \
        CHECK(nf == 0);                                                                \
        CHECK_RC(sop_key_from_doc(&sv_, d.data, d.size, &kb, NULL), SOP_INVALID);      \
        sop_doc_reset(&s);                                                             \
    } while (0)
    /* not a list */
    sop_doc_map(&s, 0);
    BAD_SPEC();
    /* JSON text (the original's form) is not a spec */
    sop_doc_reset(&s);
    s.size = 0;
    {
        const char *json = "{\"index_fields\":[]}";
        sop_val sv = {strlen(json), json};
        CHECK_RC(sop_index_spec_check(json, strlen(json), NULL), SOP_INVALID);
        CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, NULL), SOP_INVALID);
    }
    /* a pair that is not a pair */
    sop_doc_list(&s, 1);
    sop_doc_str(&s, "a", 1);
    BAD_SPEC();
    sop_doc_list(&s, 1);
    sop_doc_list(&s, 3);
    dstr(&s, "a");
    sop_doc_bool(&s, 1);
    sop_doc_bool(&s, 1);
    BAD_SPEC();
    sop_doc_list(&s, 1);
    sop_doc_list(&s, 2);
    dstr(&s, "a");
    sop_doc_int(&s, 1);
    BAD_SPEC();
    sop_doc_list(&s, 1);
    sop_doc_list(&s, 2);
    sop_doc_int(&s, 1);
    sop_doc_bool(&s, 1);
    BAD_SPEC();
    /* empty name, repeated name, trailing bytes, truncated */
    sop_doc_list(&s, 1);
    sop_doc_list(&s, 2);
    dstr(&s, "");
    sop_doc_bool(&s, 1);
    BAD_SPEC();
    sop_doc_list(&s, 2);
    sop_doc_list(&s, 2);
    dstr(&s, "a");
    sop_doc_bool(&s, 1);
    sop_doc_list(&s, 2);
    dstr(&s, "a");
    sop_doc_bool(&s, 0);
    BAD_SPEC();
    sop_doc_list(&s, 0);
    sop_doc_null(&s);
    BAD_SPEC();
    sop_doc_list(&s, 2);
    sop_doc_list(&s, 2);
    dstr(&s, "a");
    sop_doc_bool(&s, 1);
    BAD_SPEC();
#undef BAD_SPEC
    /* many fields (beyond the inline arrays) */
    sop_doc_reset(&s);
    sop_doc_reset(&d);
    sop_doc_list(&s, 40);
    sop_doc_map(&d, 40);
    char name[16];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "f%02d", 39 - i);
        sop_doc_list(&s, 2);
        dstr(&s, name);
        sop_doc_bool(&s, i % 2);
        dstr(&d, name);
        sop_doc_int(&d, i);
    }
    sop_val sv = dval(&s);
    CHECK_RC(sop_index_spec_check(s.data, s.size, &nf), SOP_OK);
    CHECK(nf == 40);
    size_t used = 0;
    sop_key_reset(&kb);
    CHECK_RC(sop_key_from_doc(&sv, d.data, d.size, &kb, &used), SOP_OK);
    CHECK(used == 40);
    sop_keybuf want;
    sop_key_init(&want);
    for (int i = 0; i < 40; i++)
        sop_key_int(&want, i, !(i % 2));
    CHECK(key_eq(&kb, &want));
    /* no spec: by name f00..f39, which is reverse insertion order */
    sop_key_reset(&kb);
    sop_key_reset(&want);
    CHECK_RC(sop_key_from_doc(NULL, d.data, d.size, &kb, &used), SOP_OK);
    CHECK(used == 40);
    for (int i = 39; i >= 0; i--)
        sop_key_int(&want, i, 0);
    CHECK(key_eq(&kb, &want));
    CHECK_RC(sop_index_spec_check(NULL, 0, &nf), SOP_OK);
    CHECK(nf == 0);

    sop_key_free(&want);
    sop_key_free(&kb);
    sop_doc_free(&s);
    sop_doc_free(&d);
}

/* ---- a store of complex keys ------------------------------------------------ */

static char dir[256];

TEST(test_store_end_to_end)
{
    snprintf(dir, sizeof dir, "%s/sop_test_keydoc_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(dir));
    static const char *const fields[] = {"region:a", "dept:a", "id:d"};
    static const char *const regs[] = {"EU", "US", "APAC"};
    static const char *const depts[] = {"Eng", "Sales", "Ops"};
    sop_docbuf spec, d;
    sop_keybuf kb;
    sop_doc_init(&spec);
    sop_doc_init(&d);
    sop_key_init(&kb);
    build_spec(&spec, fields, 3);

    sop_env *env = NULL;
    sop_env_options eo = {.cache_bytes = 0, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 0};
    REQUIRE(sop_env_open(dir, &eo, &env) == SOP_OK);
    sop_txn *t = NULL;
    REQUIRE(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) == SOP_OK);
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    o.is_primitive_key = 0;
    o.index_spec = dval(&spec);
    sop_store *s = NULL;
    REQUIRE(sop_store_open(t, "emp", &o, &s) == SOP_OK);
    int n = 0;
    for (int r = 0; r < 3; r++)
        for (int p = 0; p < 3; p++)
            for (int id = 0; id < 20; id++) {
                sop_doc_reset(&d);
                sop_doc_map(&d, 4);
                dstr(&d, "id");
                sop_doc_int(&d, id);
                dstr(&d, "name");
                dstr(&d, "someone");
                dstr(&d, "dept");
                dstr(&d, depts[p]);
                dstr(&d, "region");
                dstr(&d, regs[r]);
                sop_key_reset(&kb);
                size_t used = 0;
                CHECK_RC(sop_key_from_doc(&o.index_spec, d.data, d.size, &kb, &used), SOP_OK);
                CHECK(used == 3);
                sop_val k = {kb.size, kb.data}, kd = dval(&d), v = {1, "v"};
                CHECK_RC(sop_add(s, &k, &kd, &v, NULL), SOP_OK);
                n++;
            }
    CHECK_RC(sop_txn_commit(t), SOP_OK);

    /* a reader gets the spec back from the store and scans region "US" */
    REQUIRE(sop_txn_begin(env, SOP_TXN_READ, 0, &t) == SOP_OK);
    REQUIRE(sop_store_open(t, "emp", NULL, &s) == SOP_OK);
    sop_store_info info;
    REQUIRE(sop_store_get_info(s, &info) == SOP_OK);
    CHECK(info.count == (uint64_t)n && !info.options.is_primitive_key);
    CHECK(info.options.index_spec.size == spec.size &&
          !memcmp(info.options.index_spec.data, spec.data, spec.size));
    sop_val got_spec = info.options.index_spec;
    sop_doc_reset(&d);
    sop_doc_map(&d, 1);
    dstr(&d, "region");
    dstr(&d, "US");
    sop_key_reset(&kb);
    size_t used = 0;
    CHECK_RC(sop_key_from_doc(&got_spec, d.data, d.size, &kb, &used), SOP_OK);
    CHECK(used == 1);
    sop_cursor *c = NULL;
    REQUIRE(sop_cursor_open(s, &c) == SOP_OK);
    sop_val pk = {kb.size, kb.data};
    CHECK_RC(sop_cursor_find(c, &pk), SOP_NOTFOUND); /* no item has only region */
    int count = 0, prev_dept = -1, prev_id = 0, order_ok = 1;
    while (sop_cursor_is_positioned(c)) {
        sop_val k, kd;
        REQUIRE(sop_cursor_get(c, &k, &kd, NULL, NULL) == SOP_OK);
        if (k.size < kb.size || memcmp(k.data, kb.data, kb.size))
            break;
        /* depts ascending (Eng < Ops < Sales), ids descending within one */
        sop_key_reader rd;
        sop_key_field f;
        sop_key_reader_init(&rd, k.data, k.size);
        REQUIRE(sop_key_next(&rd, &f) == 1 && f.type == SOP_KT_STR && f.n == 2);
        REQUIRE(sop_key_next(&rd, &f) == 1 && f.type == SOP_KT_STR);
        int dept = f.p[0] == 'E' ? 0 : f.p[0] == 'O' ? 1 : 2;
        REQUIRE(sop_key_next(&rd, &f) == 1 && f.type == SOP_KT_INT && f.descending);
        if (dept < prev_dept || (dept == prev_dept && f.i >= prev_id))
            order_ok = 0;
        prev_dept = dept;
        prev_id = (int)f.i;
        sop_key_reader_free(&rd);
        count++;
        if (sop_cursor_next(c) != SOP_OK)
            break;
    }
    CHECK(count == 60);
    CHECK(order_ok);
    sop_txn_abort(t);

    /* opening with another spec is refused */
    REQUIRE(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t) == SOP_OK);
    static const char *const other[] = {"region:a"};
    build_spec(&spec, other, 1);
    o.index_spec = dval(&spec);
    CHECK_RC(sop_store_open(t, "emp", &o, &s), SOP_STORE_INCOMPATIBLE);
    sop_txn_abort(t);
    CHECK_RC(sop_env_close(env), SOP_OK);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    sop_key_free(&kb);
    sop_doc_free(&spec);
    sop_doc_free(&d);
}

int main(void)
{
    RUN(test_spec_order);
    RUN(test_default_order);
    RUN(test_prefix_keys);
    RUN(test_bad_fields);
    RUN(test_bad_specs);
    RUN(test_store_end_to_end);
    TEST_EXIT();
}
