/*
 * test_doc.c - tests of the sopdoc document format (doc.c) and of the item
 * id text form (id.c): exact bytes, round trips of random nested documents,
 * validation of malformed / truncated / trailing input, the nesting limit,
 * UTF-8 rules, JSON rendering of known inputs, and robustness against
 * random corruption (run under -fsanitize=address,undefined).
 */
#include <math.h>
#include <stdint.h>

#include "sop.h"
#include "test.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }

static int bytes_are(const sop_docbuf *d, const char *want, size_t n)
{
    return d->err == SOP_OK && d->size == n && memcmp(d->data, want, n) == 0;
}

/* JSON of a document built by the caller; "" on failure (static buffer). */
static const char *json_of(const sop_docbuf *d)
{
    static char out[4096];
    char *j = NULL;
    size_t n = 0;
    out[0] = 0;
    if (d->err != SOP_OK || sop_doc_to_json(d->data, d->size, &j, &n) != SOP_OK)
        return "";
    if (n < sizeof out && strlen(j) == n)
        memcpy(out, j, n + 1);
    sop_free(j);
    return out;
}

TEST(exact_bytes)
{
    sop_docbuf d;
    sop_doc_init(&d);
#define EXPECT_BYTES(stmt, lit)                                                                    \
    do {                                                                                           \
        sop_doc_reset(&d);                                                                         \
        stmt;                                                                                      \
        CHECK(bytes_are(&d, lit, sizeof(lit) - 1));                                                \
    } while (0)
    EXPECT_BYTES(sop_doc_null(&d), "\xc0");
    EXPECT_BYTES(sop_doc_bool(&d, 0), "\xc1");
    EXPECT_BYTES(sop_doc_bool(&d, 2), "\xc2");
    EXPECT_BYTES(sop_doc_int(&d, 0), "\x00");
    EXPECT_BYTES(sop_doc_int(&d, 127), "\x7f");
    EXPECT_BYTES(sop_doc_int(&d, -1), "\xff");
    EXPECT_BYTES(sop_doc_int(&d, -32), "\xe0");
    EXPECT_BYTES(sop_doc_int(&d, -33), "\xc3\x41");
    EXPECT_BYTES(sop_doc_int(&d, 128), "\xc3\x80\x02");
    EXPECT_BYTES(sop_doc_int(&d, INT64_MIN), "\xc3\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
    EXPECT_BYTES(sop_doc_uint(&d, 5), "\xc4\x05");
    EXPECT_BYTES(sop_doc_uint(&d, UINT64_MAX), "\xc4\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
    EXPECT_BYTES(sop_doc_double(&d, 1.0), "\xc5\x00\x00\x00\x00\x00\x00\xf0\x3f");
    EXPECT_BYTES(sop_doc_str(&d, "ab", 2), "\x82" "ab");
    EXPECT_BYTES(sop_doc_str(&d, "", 0), "\x80");
    EXPECT_BYTES(sop_doc_str(&d, "0123456789012345678901234567890", 31),
                 "\x9f" "0123456789012345678901234567890");
    EXPECT_BYTES(sop_doc_str(&d, "01234567890123456789012345678901", 32),
                 "\xc6\x20" "01234567890123456789012345678901");
    EXPECT_BYTES(sop_doc_bytes(&d, "\x01\x02", 2), "\xc7\x02\x01\x02");
    EXPECT_BYTES(sop_doc_bigint(&d, "\x01\x00", 2), "\xca\x02\x01\x00");
    EXPECT_BYTES(sop_doc_list(&d, 0), "\xa0");
    EXPECT_BYTES(sop_doc_list(&d, 15), "\xaf");
    EXPECT_BYTES(sop_doc_list(&d, 16), "\xc8\x10");
    EXPECT_BYTES(sop_doc_map(&d, 1), "\xb1");
    EXPECT_BYTES(sop_doc_map(&d, 300), "\xc9\xac\x02");
    /* {"k": [1, "x"]} */
    EXPECT_BYTES((sop_doc_map(&d, 1), sop_doc_str(&d, "k", 1), sop_doc_list(&d, 2),
                  sop_doc_int(&d, 1), sop_doc_str(&d, "x", 1)),
                 "\xb1\x81k\xa2\x01\x81x");
#undef EXPECT_BYTES
    sop_doc_free(&d);
}

TEST(writer_errors)
{
    sop_docbuf d;
    sop_doc_init(&d);
    sop_doc_str(&d, "\xc0\x80", 2); /* overlong */
    CHECK(d.err == SOP_INVALID && d.size == 0);
    sop_doc_int(&d, 1); /* sticky */
    CHECK(d.err == SOP_INVALID && d.size == 0);
    sop_doc_reset(&d);
    sop_doc_bigint(&d, "", 0);
    CHECK(d.err == SOP_INVALID);
    sop_doc_reset(&d);
    static unsigned char big[1025];
    sop_doc_bigint(&d, big, 1025);
    CHECK(d.err == SOP_INVALID);
    sop_doc_reset(&d);
    sop_doc_bigint(&d, big, 1024);
    CHECK(d.err == SOP_OK && d.size == 1 + 2 + 1024);
    CHECK_RC(sop_doc_validate(d.data, d.size), SOP_OK);
    sop_doc_free(&d);
}

TEST(utf8_rules)
{
    static const struct {
        const char *s;
        size_t n;
        int ok;
    } cases[] = {
        {"plain", 5, 1},
        {"\xc3\xa9", 2, 1},
        {"\xe2\x82\xac", 3, 1},
        {"\xf0\x9f\x98\x80", 4, 1},
        {"\xf4\x8f\xbf\xbf", 4, 1},     /* U+10FFFF */
        {"\xed\x9f\xbf", 3, 1},         /* U+D7FF */
        {"\xee\x80\x80", 3, 1},         /* U+E000 */
        {"a\0b", 3, 1},                 /* NUL is valid UTF-8 */
        {"\xc0\x80", 2, 0},             /* overlong NUL */
        {"\xc1\xbf", 2, 0},             /* overlong */
        {"\xe0\x9f\xbf", 3, 0},         /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, 0},     /* overlong */
        {"\xed\xa0\x80", 3, 0},         /* surrogate */
        {"\xf4\x90\x80\x80", 4, 0},     /* > U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xe2\x82", 2, 0},             /* truncated */
        {"\x80", 1, 0},                 /* stray continuation */
        {"\xc3\x28", 2, 0},
        {"\xff", 1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sop_docbuf d;
        sop_doc_init(&d);
        sop_doc_str(&d, cases[k].s, cases[k].n);
        CHECK((d.err == SOP_OK) == cases[k].ok);
        /* the same bytes written raw must validate the same way */
        unsigned char raw[16];
        raw[0] = (unsigned char)(0x80 | cases[k].n);
        memcpy(raw + 1, cases[k].s, cases[k].n);
        CHECK((sop_doc_validate(raw, 1 + cases[k].n) == SOP_OK) == cases[k].ok);
        /* the tokenizer does not check UTF-8 */
        sop_doc_reader r;
        sop_doc_item it;
        sop_doc_reader_init(&r, raw, 1 + cases[k].n);
        CHECK(sop_doc_next(&r, &it) == 1 && it.type == SOP_DT_STR && it.n == cases[k].n);
        sop_doc_free(&d);
    }
}

/* ---- random documents with the expected token stream ------------------- */

typedef struct tok {
    int type;
    int64_t i;
    uint64_t u;
    double d;
    const unsigned char *p;
    size_t n;
} tok;

#define MAX_TOKS 20000
static tok toks[MAX_TOKS];
static size_t ntoks;

#define S_(lit) {lit, sizeof(lit) - 1}
static const struct {
    const char *s;
    size_t n;
} strings[] = {S_(""), S_("a"), S_("key"), S_("with \"quotes\" and \\"), S_("ctl\x01\x1f\n\t"),
               S_("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
               S_("a somewhat longer string that needs a varint length: "
                  "0123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789"),
               S_("nul\0inside")};
#undef S_
static unsigned char blob[600];

static void gen_str(sop_docbuf *d)
{
    size_t k = rnd_below(sizeof strings / sizeof strings[0]);
    sop_doc_str(d, strings[k].s, strings[k].n);
    toks[ntoks++] = (tok){SOP_DT_STR, 0, 0, 0, (const unsigned char *)strings[k].s, strings[k].n};
}

static void gen(sop_docbuf *d, int depth, int max_depth)
{
    if (ntoks > MAX_TOKS - 100)
        depth = max_depth; /* scalars only from here */
    tok t = {0, 0, 0, 0, NULL, 0};
    uint64_t k = rnd_below(depth < max_depth ? 14 : 11);
    switch (k) {
    case 0: t.type = SOP_DT_NULL; sop_doc_null(d); break;
    case 1: t.type = SOP_DT_FALSE; sop_doc_bool(d, 0); break;
    case 2: t.type = SOP_DT_TRUE; sop_doc_bool(d, 1); break;
    case 3: {
        static const int64_t edges[] = {0, 1, -1, 127, 128, -32, -33, INT64_MAX, INT64_MIN};
        t.type = SOP_DT_INT;
        t.i = rnd() & 1 ? edges[rnd_below(9)] : (int64_t)rnd() >> rnd_below(64);
        sop_doc_int(d, t.i);
        break;
    }
    case 4:
        t.type = SOP_DT_UINT;
        t.u = rnd() >> rnd_below(64);
        sop_doc_uint(d, t.u);
        break;
    case 5: {
        static const double edges[] = {0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, INFINITY};
        t.type = SOP_DT_DOUBLE;
        if (rnd() & 1) {
            t.d = edges[rnd_below(7)];
        } else {
            uint64_t u = rnd();
            memcpy(&t.d, &u, sizeof t.d);
            if (isnan(t.d))
                t.d = 0.5;
        }
        sop_doc_double(d, t.d);
        break;
    }
    case 6:
    case 7:
        gen_str(d);
        return;
    case 8:
        t.type = SOP_DT_BYTES;
        t.n = rnd_below(300);
        t.p = blob + rnd_below(300);
        sop_doc_bytes(d, t.p, t.n);
        break;
    case 9:
        t.type = SOP_DT_BIGINT;
        t.n = 1 + rnd_below(40);
        t.p = blob + rnd_below(300);
        sop_doc_bigint(d, t.p, t.n);
        break;
    case 10:
    case 11: {
        t.type = SOP_DT_LIST;
        t.n = rnd_below(8) == 0 ? 16 + rnd_below(30) : rnd_below(5);
        sop_doc_list(d, t.n);
        toks[ntoks++] = t;
        for (size_t e = 0; e < t.n; e++)
            gen(d, depth + 1, max_depth);
        return;
    }
    default: {
        t.type = SOP_DT_MAP;
        t.n = rnd_below(8) == 0 ? 16 + rnd_below(20) : rnd_below(5);
        sop_doc_map(d, t.n);
        toks[ntoks++] = t;
        for (size_t e = 0; e < t.n; e++) {
            gen_str(d);
            gen(d, depth + 1, max_depth);
        }
        return;
    }
    }
    toks[ntoks++] = t;
}

static int tok_matches(const sop_doc_item *it, const tok *t)
{
    if (it->type != t->type)
        return 0;
    switch (t->type) {
    case SOP_DT_INT: return it->i == t->i;
    case SOP_DT_UINT: return it->u == t->u;
    case SOP_DT_DOUBLE: return memcmp(&it->d, &t->d, sizeof t->d) == 0;
    case SOP_DT_STR:
    case SOP_DT_BYTES:
    case SOP_DT_BIGINT: return it->n == t->n && (t->n == 0 || memcmp(it->p, t->p, t->n) == 0);
    case SOP_DT_LIST:
    case SOP_DT_MAP: return it->n == t->n;
    default: return 1;
    }
}

TEST(round_trip_random)
{
    for (size_t k = 0; k < sizeof blob; k++)
        blob[k] = (unsigned char)rnd();
    long bad = 0, bad_valid = 0, bad_json = 0;
    for (int iter = 0; iter < 400; iter++) {
        sop_docbuf d;
        sop_doc_init(&d);
        ntoks = 0;
        gen(&d, 0, (int)rnd_below(8));
        REQUIRE(d.err == SOP_OK);
        /* exact-size heap copy so ASan catches overreads */
        unsigned char *p = malloc(d.size);
        memcpy(p, d.data, d.size);
        sop_doc_reader r;
        sop_doc_item it;
        sop_doc_reader_init(&r, p, d.size);
        for (size_t t = 0; t < ntoks; t++)
            if (sop_doc_next(&r, &it) != 1 || !tok_matches(&it, &toks[t]))
                bad++;
        if (sop_doc_next(&r, &it) != 0)
            bad++;
        if (sop_doc_validate(p, d.size) != SOP_OK)
            bad_valid++;
        char *j = NULL;
        size_t jn = 0;
        if (sop_doc_to_json(p, d.size, &j, &jn) != SOP_OK || !j || strlen(j) != jn)
            bad_json++;
        sop_free(j);
        free(p);
        sop_doc_free(&d);
    }
    CHECK(bad == 0);
    CHECK(bad_valid == 0);
    CHECK(bad_json == 0);
}

TEST(malformed_random)
{
    long truncated_ok = 0, trailing_ok = 0, mismatch = 0, accepted = 0, rejected = 0;
    for (int iter = 0; iter < 400; iter++) {
        sop_docbuf d;
        sop_doc_init(&d);
        ntoks = 0;
        gen(&d, 0, (int)rnd_below(5));
        REQUIRE(d.err == SOP_OK);
        size_t n = d.size;
        /* every proper prefix is incomplete (the grammar is self-delimiting) */
        size_t step = n > 300 ? n / 150 : 1;
        for (size_t cut = 0; cut < n; cut += step) {
            unsigned char *p = malloc(cut ? cut : 1);
            memcpy(p, d.data, cut);
            if (sop_doc_validate(p, cut) == SOP_OK)
                truncated_ok++;
            char *j = NULL;
            size_t jn = 0;
            if (sop_doc_to_json(p, cut, &j, &jn) == SOP_OK || j != NULL)
                truncated_ok++;
            free(p);
        }
        /* trailing bytes */
        unsigned char *p = malloc(n + 1);
        memcpy(p, d.data, n);
        p[n] = 0xc0;
        if (sop_doc_validate(p, n + 1) == SOP_OK)
            trailing_ok++;
        free(p);
        /* random corruption: never crash; when validate accepts, the
         * tokenizer and JSON agree */
        for (int m = 0; m < 20; m++) {
            p = malloc(n);
            memcpy(p, d.data, n);
            int flips = 1 + (int)rnd_below(3);
            for (int f = 0; f < flips; f++) {
                size_t at = rnd_below(n);
                switch (rnd_below(3)) {
                case 0: p[at] ^= (unsigned char)(1u << rnd_below(8)); break;
                case 1: p[at] = (unsigned char)rnd(); break;
                default: p[at] = (unsigned char)(0xa0 + rnd_below(0x30)); break;
                }
            }
            int vrc = sop_doc_validate(p, n);
            char *j = NULL;
            size_t jn = 0;
            int jrc = sop_doc_to_json(p, n, &j, &jn);
            if (vrc != jrc || (vrc == SOP_OK) != (j != NULL))
                mismatch++;
            if (vrc != SOP_OK && vrc != SOP_CORRUPT)
                mismatch++;
            sop_free(j);
            sop_doc_reader r;
            sop_doc_item it;
            sop_doc_reader_init(&r, p, n);
            int rc;
            while ((rc = sop_doc_next(&r, &it)) == 1)
                if ((it.type == SOP_DT_STR || it.type == SOP_DT_BYTES) &&
                    (it.p < p || it.p + it.n > p + n))
                    mismatch++;
            if (rc != 0 && rc != -SOP_CORRUPT)
                mismatch++;
            if (vrc == SOP_OK && rc != 0)
                mismatch++;
            accepted += vrc == SOP_OK;
            rejected += vrc != SOP_OK;
            free(p);
        }
        sop_doc_free(&d);
    }
    /* pure garbage biased to container and length tags */
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = rnd_below(20);
        unsigned char *p = malloc(n ? n : 1);
        for (size_t k = 0; k < n; k++)
            p[k] = rnd() & 1 ? (unsigned char)rnd() : (unsigned char)(0x80 + rnd_below(0x4b));
        int vrc = sop_doc_validate(p, n);
        char *j = NULL;
        size_t jn = 0;
        if (sop_doc_to_json(p, n, &j, &jn) != vrc)
            mismatch++;
        sop_free(j);
        free(p);
    }
    CHECK(truncated_ok == 0);
    CHECK(trailing_ok == 0);
    CHECK(mismatch == 0);
    CHECK(accepted > 0 && rejected > 0);
}

TEST(structure_errors)
{
    static const struct {
        const char *b;
        size_t n;
    } bad[] = {
        {"", 0},                                           /* empty */
        {"\xcb", 1},                                       /* reserved tag */
        {"\xdf", 1},                                       /* reserved tag */
        {"\xc3", 1},                                       /* missing varint */
        {"\xc3\x80", 2},                                   /* truncated varint */
        {"\xc4\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11}, /* varint overflow */
        {"\xc4\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 12}, /* 11-byte varint */
        {"\xc5\x00\x00\x00", 4},                           /* truncated double */
        {"\x83" "ab", 3},                                  /* fixstr past end */
        {"\xc6\x05" "abcd", 6},                            /* str past end */
        {"\xc7\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11}, /* huge bytes length */
        {"\xca\x00", 2},                                   /* empty bigint */
        {"\xa2\x01", 2},                                   /* list missing an item */
        {"\xc8\x05\x01\x02", 4},                           /* count beyond the end */
        {"\xb1\x01\x02", 3},                               /* map key not a string */
        {"\xb1\xa0\x02", 3},                               /* map key is a list */
        {"\xb1\x81k", 3},                                  /* map value missing */
        {"\xc0\xc0", 2},                                   /* two documents */
        {"\xa0\x00", 2},                                   /* trailing */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int rc = sop_doc_validate(bad[k].b, bad[k].n);
        if (rc != SOP_CORRUPT)
            fprintf(stderr, "case %zu: %d\n", k, rc);
        CHECK(rc == SOP_CORRUPT);
    }
    /* a long bigint limit is a format rule */
    static unsigned char bigdoc[1 + 2 + 1025];
    bigdoc[0] = 0xca;
    bigdoc[1] = 0x81; /* 1025 = 0x401 -> 0x81 0x08 */
    bigdoc[2] = 0x08;
    CHECK(sop_doc_validate(bigdoc, sizeof bigdoc) == SOP_CORRUPT);
    CHECK(sop_doc_validate(NULL, 0) == SOP_CORRUPT);

    /* a non-shortest form is accepted by readers */
    CHECK(sop_doc_validate("\xc3\x02", 2) == SOP_OK);
    CHECK(sop_doc_validate("\xc9\x01\xc6\x01k\xc8\x00", 7) == SOP_OK);
    sop_doc_reader r;
    sop_doc_item it;
    sop_doc_reader_init(&r, "\xc3\x03", 2);
    CHECK(sop_doc_next(&r, &it) == 1 && it.type == SOP_DT_INT && it.i == -2);
    CHECK(sop_doc_next(&r, &it) == 0);
    /* the tokenizer refuses and stays put on a bad item */
    sop_doc_reader_init(&r, "\x01\xcb", 2);
    CHECK(sop_doc_next(&r, &it) == 1 && it.i == 1);
    CHECK(sop_doc_next(&r, &it) == -SOP_CORRUPT);
    CHECK(sop_doc_next(&r, &it) == -SOP_CORRUPT);
}

TEST(depth_limit)
{
    for (int depth = 63; depth <= 66; depth++) {
        for (int use_map = 0; use_map < 2; use_map++) {
            sop_docbuf d;
            sop_doc_init(&d);
            for (int k = 0; k < depth; k++) {
                if (use_map) {
                    sop_doc_map(&d, 1);
                    sop_doc_str(&d, "k", 1);
                } else {
                    sop_doc_list(&d, 1);
                }
            }
            sop_doc_null(&d);
            int want = depth <= 64 ? SOP_OK : SOP_CORRUPT;
            CHECK_RC(sop_doc_validate(d.data, d.size), want);
            char *j = NULL;
            size_t jn = 0;
            CHECK_RC(sop_doc_to_json(d.data, d.size, &j, &jn), want);
            if (j) {
                CHECK(jn == (size_t)depth * (use_map ? 6 : 2) + 4);
                CHECK(j[jn - 1] == (use_map ? '}' : ']') && strstr(j, "null") != NULL);
            }
            sop_free(j);
            sop_doc_free(&d);
        }
    }
    /* deep nesting far beyond the limit is refused without recursion */
    static unsigned char deep[100000];
    memset(deep, 0xa1, sizeof deep - 1);
    deep[sizeof deep - 1] = 0xc0;
    CHECK(sop_doc_validate(deep, sizeof deep) == SOP_CORRUPT);
}

TEST(json_known)
{
    sop_docbuf d;
    sop_doc_init(&d);

    sop_doc_map(&d, 6);
    sop_doc_str(&d, "a", 1);
    sop_doc_int(&d, 1);
    sop_doc_str(&d, "b", 1);
    sop_doc_list(&d, 6);
    sop_doc_bool(&d, 1);
    sop_doc_bool(&d, 0);
    sop_doc_null(&d);
    sop_doc_int(&d, -5);
    sop_doc_double(&d, 1.5);
    sop_doc_str(&d, "x\"\\\n\x01/\xc3\xa9", 8);
    sop_doc_str(&d, "c", 1);
    sop_doc_bytes(&d, "\x01\x02\x03", 3);
    sop_doc_str(&d, "empty", 5);
    sop_doc_map(&d, 0);
    sop_doc_str(&d, "l", 1);
    sop_doc_list(&d, 0);
    sop_doc_str(&d, "", 0);
    sop_doc_uint(&d, UINT64_MAX);
    CHECK(strcmp(json_of(&d), "{\"a\":1,\"b\":[true,false,null,-5,1.5,\"x\\\"\\\\\\n\\u0001/\xc3\xa9\"],"
                              "\"c\":{\"$bytes\":\"AQID\"},\"empty\":{},\"l\":[],\"\":18446744073709551615}") == 0);

    static const struct {
        double v;
        const char *json;
    } dbl[] = {{0.1, "0.1"},
               {1.0, "1.0"},
               {-0.0, "-0.0"},
               {100.0, "100.0"},
               {1e300, "1e+300"},
               {1.0 / 3.0, "0.3333333333333333"},
               {5e-324, "4.94065645841247e-324"},
               {123456789012345680.0, "1.2345678901234568e+17"},
               {INFINITY, "null"},
               {-INFINITY, "null"},
               {NAN, "null"}};
    for (size_t k = 0; k < sizeof dbl / sizeof dbl[0]; k++) {
        sop_doc_reset(&d);
        sop_doc_double(&d, dbl[k].v);
        const char *got = json_of(&d);
        if (strcmp(got, dbl[k].json) != 0)
            fprintf(stderr, "double %zu: got %s want %s\n", k, got, dbl[k].json);
        CHECK(strcmp(got, dbl[k].json) == 0);
    }

    static const struct {
        const char *be;
        size_t n;
        const char *json;
    } big[] = {{"\x00", 1, "0"},
               {"\xff", 1, "-1"},
               {"\x7f", 1, "127"},
               {"\x80", 1, "-128"},
               {"\x00\x00\xff", 3, "255"},
               {"\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9, "18446744073709551616"},
               {"\x80\x00\x00\x00\x00\x00\x00\x00\x00", 9, "-2361183241434822606848"},
               {"\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 9, "-9223372036854775809"},
               {"\x02\xf0\x50\xfe\x93\x89\x43\xac\xc4\x5f\x65\x56\x80\x00\x00\x00\x01", 17,
                "1000000000000000000000000000000000000001"}};
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
        sop_doc_reset(&d);
        sop_doc_bigint(&d, big[k].be, big[k].n);
        const char *got = json_of(&d);
        if (strcmp(got, big[k].json) != 0)
            fprintf(stderr, "bigint %zu: got %s want %s\n", k, got, big[k].json);
        CHECK(strcmp(got, big[k].json) == 0);
    }

    sop_doc_reset(&d);
    sop_doc_list(&d, 5);
    sop_doc_int(&d, INT64_MIN);
    sop_doc_int(&d, INT64_MAX);
    sop_doc_bytes(&d, "", 0);
    sop_doc_bytes(&d, "\xff", 1);
    sop_doc_bytes(&d, "\xff\xfe", 2);
    CHECK(strcmp(json_of(&d), "[-9223372036854775808,9223372036854775807,{\"$bytes\":\"\"},"
                              "{\"$bytes\":\"/w==\"},{\"$bytes\":\"//4=\"}]") == 0);

    /* a 1024-byte bigint renders */
    static unsigned char b[1024];
    memset(b, 0xff, sizeof b);
    b[0] = 0x7f;
    sop_doc_reset(&d);
    sop_doc_bigint(&d, b, sizeof b);
    char *j = NULL;
    size_t jn = 0;
    CHECK_RC(sop_doc_to_json(d.data, d.size, &j, &jn), SOP_OK);
    CHECK(j && jn == 2466 && j[0] == '5'); /* 2^8191 - 1 = 5.45...e2465 */
    sop_free(j);

    /* invalid input gives no output */
    j = (char *)&d;
    jn = 7;
    CHECK_RC(sop_doc_to_json("\xa1", 1, &j, &jn), SOP_CORRUPT);
    CHECK(j == NULL && jn == 0);
    sop_doc_free(&d);
}

TEST(large_documents)
{
    sop_docbuf d;
    sop_doc_init(&d);
    sop_doc_list(&d, 100000);
    for (int k = 0; k < 100000; k++)
        sop_doc_int(&d, (int64_t)k * 1000003);
    REQUIRE(d.err == SOP_OK && d.data != d.inline_buf);
    CHECK_RC(sop_doc_validate(d.data, d.size), SOP_OK);
    sop_doc_reader r;
    sop_doc_item it;
    sop_doc_reader_init(&r, d.data, d.size);
    CHECK(sop_doc_next(&r, &it) == 1 && it.type == SOP_DT_LIST && it.n == 100000);
    long bad = 0;
    for (int k = 0; k < 100000; k++)
        if (sop_doc_next(&r, &it) != 1 || it.type != SOP_DT_INT || it.i != (int64_t)k * 1000003)
            bad++;
    CHECK(bad == 0);
    char *j = NULL;
    size_t jn = 0;
    CHECK_RC(sop_doc_to_json(d.data, d.size, &j, &jn), SOP_OK);
    CHECK(j && j[0] == '[' && j[jn - 1] == ']');
    sop_free(j);
    sop_doc_free(&d);
    CHECK(d.data == d.inline_buf && d.size == 0);
}

TEST(ids)
{
    sop_id id, back;
    for (int k = 0; k < 16; k++)
        id.bytes[k] = (unsigned char)(k * 17 + 0x0a);
    char text[37];
    sop_id_format(&id, text);
    CHECK(strcmp(text, "0a1b2c3d-4e5f-7081-92a3-b4c5d6e7f809") == 0);
    CHECK_RC(sop_id_parse(text, 36, &back), SOP_OK);
    CHECK(memcmp(&id, &back, sizeof id) == 0);
    for (int b = 0; b < 256; b++) { /* every byte value, at every position */
        char want[37], *w = want;
        for (int k = 0; k < 16; k++) {
            id.bytes[k] = (unsigned char)(b + k * 37);
            w += snprintf(w, 3, "%02x", id.bytes[k]);
            if (k == 3 || k == 5 || k == 7 || k == 9)
                *w++ = '-';
        }
        sop_id_format(&id, text);
        CHECK(strcmp(text, want) == 0);
    }
    for (int k = 0; k < 16; k++)
        id.bytes[k] = (unsigned char)(k * 17 + 0x0a);
    CHECK_RC(sop_id_parse("0A1B2C3D4E5F708192A3B4C5D6E7F809", 32, &back), SOP_OK);
    CHECK(memcmp(&id, &back, sizeof id) == 0);
    CHECK_RC(sop_id_parse("0A1B2C3D-4E5F-7081-92A3-B4C5D6E7F809", 36, &back), SOP_OK);
    CHECK(memcmp(&id, &back, sizeof id) == 0);

    static const char *const bad[] = {
        "",
        "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f",    /* 35 */
        "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f90",  /* 37 */
        "0a1b2c3d4e5f-6071-8293-a4b5c6d7e8f9-",   /* misplaced dash */
        "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8fg",   /* bad digit */
        "0a1b2c3d-4e5f-6071-8293+a4b5c6d7e8f9",   /* wrong separator */
        "0a1b2c3d4e5f60718293a4b5c6d7e8f-",       /* 32 with a dash */
        "-a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "0a1b2c3d-4e5f-6071-8293-a4b5c6d7 8f9",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memset(&back, 0x55, sizeof back);
        CHECK_RC(sop_id_parse(bad[k], strlen(bad[k]), &back), SOP_INVALID);
        static const sop_id zero;
        CHECK(memcmp(&back, &zero, sizeof back) == 0);
    }
    /* the length is the bound, not a NUL */
    CHECK_RC(sop_id_parse("0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9xyz", 36, &back), SOP_OK);
    CHECK_RC(sop_id_parse(NULL, 36, &back), SOP_INVALID);
}

int main(void)
{
    RUN(exact_bytes);
    RUN(writer_errors);
    RUN(utf8_rules);
    RUN(round_trip_random);
    RUN(malformed_random);
    RUN(structure_errors);
    RUN(depth_limit);
    RUN(json_known);
    RUN(large_documents);
    RUN(ids);
    TEST_EXIT();
}
