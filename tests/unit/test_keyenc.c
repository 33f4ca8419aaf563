/*
 * test_keyenc.c - tests of the order-preserving key encoder (keyenc.c):
 * exact byte forms, ordering property tests over random values (memcmp order
 * of encodings == true value order, ascending, descending and composite),
 * decode round trips, error handling, and malformed-input robustness.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "sop.h"
#include "test.h"

/* ---- a model of key values and their true order ---------------------- */

enum { V_NULL, V_BOOL, V_INT, V_UINT, V_DOUBLE, V_STR, V_BYTES };

typedef struct val {
    int kind;
    int64_t i;
    uint64_t u;
    double d;
    unsigned char s[40];
    size_t n;
} val;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }

static int type_rank(int kind)
{
    switch (kind) {
    case V_NULL: return 0;
    case V_BOOL: return 1;
    case V_INT: case V_UINT: case V_DOUBLE: return 2;
    case V_STR: return 3;
    default: return 4;
    }
}

/* An integer as sign + magnitude. */
typedef struct bigi {
    int neg; /* magnitude > 0 when neg */
    uint64_t mag;
} bigi;

static int cmp_bigi(bigi a, bigi b)
{
    if (a.neg != b.neg)
        return a.neg ? -1 : 1;
    if (a.mag == b.mag)
        return 0;
    int c = a.mag < b.mag ? -1 : 1;
    return a.neg ? -c : c;
}

static bigi int_of(const val *v)
{
    bigi r;
    if (v->kind == V_UINT) {
        r.neg = 0;
        r.mag = v->u;
    } else {
        r.neg = v->i < 0;
        r.mag = v->i < 0 ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i;
    }
    return r;
}

/* integer vs double, exactly */
static int cmp_int_double(bigi a, double x)
{
    if (x < -9223372036854775808.0)
        return 1;
    if (x >= 18446744073709551616.0)
        return -1;
    double fl = floor(x);
    bigi f;
    if (fl < 0) {
        f.neg = 1;
        f.mag = (uint64_t)(-fl);
    } else {
        f.neg = 0;
        f.mag = (uint64_t)fl;
    }
    int c = cmp_bigi(a, f);
    if (c)
        return c;
    return x == fl ? 0 : -1;
}

static int cmp_val(const val *a, const val *b)
{
    int ra = type_rank(a->kind), rb = type_rank(b->kind);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (a->kind) {
    case V_NULL:
        return 0;
    case V_BOOL:
        return (a->i > b->i) - (a->i < b->i);
    case V_STR:
    case V_BYTES: {
        size_t m = a->n < b->n ? a->n : b->n;
        int c = memcmp(a->s, b->s, m);
        if (c)
            return c < 0 ? -1 : 1;
        return (a->n > b->n) - (a->n < b->n);
    }
    default:
        break;
    }
    int ad = a->kind == V_DOUBLE, bd = b->kind == V_DOUBLE;
    if (ad && bd)
        return (a->d > b->d) - (a->d < b->d);
    if (!ad && !bd)
        return cmp_bigi(int_of(a), int_of(b));
    if (!ad)
        return cmp_int_double(int_of(a), b->d);
    return -cmp_int_double(int_of(b), a->d);
}

static void encode_val(sop_keybuf *kb, const val *v, int desc)
{
    switch (v->kind) {
    case V_NULL: sop_key_null(kb, desc); break;
    case V_BOOL: sop_key_bool(kb, (int)v->i, desc); break;
    case V_INT: sop_key_int(kb, v->i, desc); break;
    case V_UINT: sop_key_uint(kb, v->u, desc); break;
    case V_DOUBLE: sop_key_double(kb, v->d, desc); break;
    case V_STR: sop_key_str(kb, (const char *)v->s, v->n, desc); break;
    default: sop_key_bytes(kb, v->s, v->n, desc); break;
    }
}

/* ---- random values ---------------------------------------------------- */

static const int64_t int_edges[] = {
    INT64_MIN, INT64_MIN + 1, INT64_MIN + 1024, INT64_MIN + 1025, INT64_MIN + 2047,
    -(1LL << 62) - 1, -(1LL << 62), -(1LL << 53) - 3, -(1LL << 53) - 2, -(1LL << 53) - 1,
    -(1LL << 53), -(1LL << 53) + 1, -(1LL << 54) - 1, -(1LL << 54) - 3, -1000000, -2, -1, 0,
    1, 2, 127, 128, 255, 256, (1LL << 53) - 1, 1LL << 53, (1LL << 53) + 1, (1LL << 53) + 2,
    (1LL << 53) + 3, (1LL << 54) + 1, (1LL << 54) + 3, (1LL << 62) + 1, INT64_MAX - 2047,
    INT64_MAX - 1024, INT64_MAX - 1023, INT64_MAX - 1, INT64_MAX};

static const uint64_t uint_edges[] = {
    0, 1, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1, (uint64_t)INT64_MAX + 2,
    (uint64_t)INT64_MAX + 2048, (uint64_t)INT64_MAX + 2049, UINT64_MAX - 4096, UINT64_MAX - 2048,
    UINT64_MAX - 2047, UINT64_MAX - 1, UINT64_MAX};

static double rnd_double(void)
{
    switch (rnd_below(12)) {
    case 0: {
        static const double edges[] = {0.0, -0.0, INFINITY, -INFINITY, DBL_MAX, -DBL_MAX,
                                       DBL_MIN, -DBL_MIN, 4.9406564584124654e-324,
                                       -4.9406564584124654e-324, 1.0, -1.0, 0.5, -0.5,
                                       9007199254740992.0, -9007199254740992.0,
                                       9223372036854775808.0, -9223372036854775808.0,
                                       18446744073709551616.0, -18446744073709551616.0,
                                       9223372036854774784.0, 18446744073709549568.0,
                                       1e300, -1e300, 1e-300, -1e-300};
        return edges[rnd_below(sizeof edges / sizeof edges[0])];
    }
    case 1:
    case 2: { /* random bits, not NaN */
        for (;;) {
            uint64_t u = rnd();
            double d;
            memcpy(&d, &u, sizeof d);
            if (!isnan(d))
                return d;
        }
    }
    case 3: /* an integer with a random number of bits */
    case 4: {
        int bits = (int)rnd_below(66);
        double d = bits >= 64 ? ldexp((double)(rnd() | 1), (int)rnd_below(4)) : (double)(rnd() >> (64 - (bits ? bits : 1)));
        return rnd() & 1 ? -d : d;
    }
    case 5: { /* next to an integer near an edge */
        double base = (double)int_edges[rnd_below(sizeof int_edges / sizeof int_edges[0])];
        double d = rnd() & 1 ? nextafter(base, INFINITY) : nextafter(base, -INFINITY);
        return d;
    }
    case 6:
        return (double)int_edges[rnd_below(sizeof int_edges / sizeof int_edges[0])];
    case 7:
        return (double)uint_edges[rnd_below(sizeof uint_edges / sizeof uint_edges[0])];
    case 8: /* small fractions */
        return ((double)(int64_t)rnd_below(2001) - 1000.0) / 8.0;
    case 9: /* tiny */
        return ldexp((double)(int64_t)(rnd() >> 11) * (rnd() & 1 ? -1 : 1), -1000 - (int)rnd_below(74));
    default: /* huge */
        return ldexp((double)(rnd() >> 11) * (rnd() & 1 ? -1 : 1), 60 + (int)rnd_below(900));
    }
}

static void rnd_text(val *v, int binary)
{
    static const char *const pieces[] = {"", "\0", "\x01", "a", "b", "z", "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80", "\x7f", "\xff"};
    static const size_t piece_len[] = {0, 1, 1, 1, 1, 1, 2, 3, 4, 1, 1};
    size_t count = binary ? 11 : 10; /* 0xFF only in bytes */
    size_t parts = rnd_below(8);
    v->n = 0;
    for (size_t i = 0; i < parts; i++) {
        size_t k = rnd_below(count);
        if (binary && rnd_below(3) == 0) {
            v->s[v->n++] = (unsigned char)rnd();
            continue;
        }
        memcpy(v->s + v->n, pieces[k], piece_len[k]);
        v->n += piece_len[k];
    }
}

static val rnd_val(void)
{
    val v;
    memset(&v, 0, sizeof v);
    uint64_t k = rnd_below(20);
    if (k == 0) {
        v.kind = V_NULL;
    } else if (k == 1) {
        v.kind = V_BOOL;
        v.i = (int64_t)(rnd() & 1);
    } else if (k <= 6) {
        v.kind = V_INT;
        switch (rnd_below(4)) {
        case 0: v.i = int_edges[rnd_below(sizeof int_edges / sizeof int_edges[0])]; break;
        case 1: v.i = (int64_t)rnd(); break;
        case 2: v.i = (int64_t)rnd() >> rnd_below(64); break;
        default: v.i = (int64_t)rnd_below(21) - 10; break;
        }
    } else if (k <= 9) {
        v.kind = V_UINT;
        switch (rnd_below(3)) {
        case 0: v.u = uint_edges[rnd_below(sizeof uint_edges / sizeof uint_edges[0])]; break;
        case 1: v.u = rnd(); break;
        default: v.u = rnd() >> rnd_below(64); break;
        }
    } else if (k <= 15) {
        v.kind = V_DOUBLE;
        v.d = rnd_double();
    } else if (k <= 17) {
        v.kind = V_STR;
        rnd_text(&v, 0);
    } else {
        v.kind = V_BYTES;
        rnd_text(&v, 1);
    }
    return v;
}

/* ---- helpers ---------------------------------------------------------- */

typedef struct enc {
    unsigned char b[200];
    size_t n;
} enc;

static int cmp_bytes(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return (an > bn) - (an < bn);
}

static int cmp_enc(const enc *a, const enc *b) { return cmp_bytes(a->b, a->n, b->b, b->n); }

static void encode_fields(enc *e, const val *v, const int *desc, int nf)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    for (int i = 0; i < nf; i++)
        encode_val(&kb, &v[i], desc[i]);
    e->n = 0;
    if (kb.err == SOP_OK && kb.size <= sizeof e->b) {
        memcpy(e->b, kb.data, kb.size);
        e->n = kb.size;
    }
    sop_key_free(&kb);
}

static int sign(int c) { return (c > 0) - (c < 0); }

/* Check that field f decodes back to v (value equal, expected type). */
static int field_matches(const sop_key_field *f, const val *v, int desc)
{
    if (f->descending != (desc != 0))
        return 0;
    switch (v->kind) {
    case V_NULL: return f->type == SOP_KT_NULL;
    case V_BOOL: return f->type == SOP_KT_BOOL && f->i == v->i;
    case V_STR:
    case V_BYTES:
        return f->type == (v->kind == V_STR ? SOP_KT_STR : SOP_KT_BYTES) && f->n == v->n &&
               (v->n == 0 || memcmp(f->p, v->s, v->n) == 0);
    default: break;
    }
    val got;
    memset(&got, 0, sizeof got);
    if (f->type == SOP_KT_INT) {
        got.kind = V_INT;
        got.i = f->i;
    } else if (f->type == SOP_KT_UINT) {
        got.kind = V_UINT;
        got.u = f->u;
        if (f->u <= (uint64_t)INT64_MAX)
            return 0; /* would have been SOP_KT_INT */
    } else if (f->type == SOP_KT_DOUBLE) {
        got.kind = V_DOUBLE;
        got.d = f->d;
        /* integral values within the 64-bit range must come back as ints */
        if (f->d == floor(f->d) && f->d >= -9223372036854775808.0 && f->d < 18446744073709551616.0)
            return 0;
    } else {
        return 0;
    }
    return cmp_val(&got, v) == 0;
}

/* ---- tests ------------------------------------------------------------ */

TEST(exact_bytes)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_key_null(&kb, 0);
    sop_key_bool(&kb, 0, 0);
    sop_key_bool(&kb, 7, 0);
    static const unsigned char want1[] = {0x05, 0x10, 0x11};
    CHECK(kb.size == 3 && memcmp(kb.data, want1, 3) == 0);

    sop_key_reset(&kb);
    sop_key_int(&kb, 1, 0);
    static const unsigned char one[] = {0x20, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0, 0x00};
    CHECK(kb.size == sizeof one && memcmp(kb.data, one, sizeof one) == 0);

    sop_key_reset(&kb);
    sop_key_int(&kb, -1, 0);
    static const unsigned char minus_one[] = {0x20, 0x40, 0x0F, 0xFF, 0xFF, 0xFF,
                                              0xFF, 0xFF, 0xFF, 0x00};
    CHECK(kb.size == sizeof minus_one && memcmp(kb.data, minus_one, sizeof minus_one) == 0);

    /* 2^53 + 1: d = 2^53, r = 1 */
    sop_key_reset(&kb);
    sop_key_int(&kb, (1LL << 53) + 1, 0);
    static const unsigned char p53[] = {0x20, 0xC3, 0x40, 0, 0, 0, 0, 0, 0, 0x01, 0x01};
    CHECK(kb.size == sizeof p53 && memcmp(kb.data, p53, sizeof p53) == 0);

    /* UINT64_MAX: d = 2^64 - 2^11, r = 2047 */
    sop_key_reset(&kb);
    sop_key_uint(&kb, UINT64_MAX, 0);
    CHECK(kb.size == 12 && kb.data[9] == 2 && kb.data[10] == 0x07 && kb.data[11] == 0xFF);

    /* -(2^53 + 1): d = -(2^53 + 2), r = 1 */
    sop_key_reset(&kb);
    sop_key_int(&kb, -(1LL << 53) - 1, 0);
    sop_keybuf kb2;
    sop_key_init(&kb2);
    sop_key_double(&kb2, -9007199254740994.0, 0);
    CHECK(kb.size == 11 && kb2.size == 10 && memcmp(kb.data, kb2.data, 9) == 0 &&
          kb.data[9] == 1 && kb.data[10] == 1);
    sop_key_free(&kb2);

    sop_key_reset(&kb);
    sop_key_str(&kb, "a\0b", 3, 0);
    static const unsigned char s1[] = {0x30, 'a', 0x00, 0xFF, 'b', 0x00, 0x01};
    CHECK(kb.size == sizeof s1 && memcmp(kb.data, s1, sizeof s1) == 0);

    sop_key_reset(&kb);
    sop_key_bytes(&kb, "", 0, 1);
    static const unsigned char b1[] = {0xBF, 0xFF, 0xFE};
    CHECK(kb.size == sizeof b1 && memcmp(kb.data, b1, sizeof b1) == 0);

    sop_key_reset(&kb);
    sop_key_null(&kb, 1);
    sop_key_bool(&kb, 1, 1);
    CHECK(kb.size == 2 && kb.data[0] == 0xFA && kb.data[1] == 0xEE);
    sop_key_free(&kb);
}

TEST(numbers_equal_across_types)
{
    sop_keybuf a, b, c;
    sop_key_init(&a);
    sop_key_init(&b);
    sop_key_init(&c);
    struct {
        int64_t i;
        double d;
    } eq[] = {{0, 0.0},          {0, -0.0},       {1, 1.0},   {-1, -1.0}, {5, 5.0},
              {INT64_MIN, -9223372036854775808.0}, {1LL << 53, 9007199254740992.0},
              {INT64_MAX - 1023, 9223372036854774784.0}};
    for (size_t k = 0; k < sizeof eq / sizeof eq[0]; k++) {
        sop_key_reset(&a);
        sop_key_reset(&b);
        sop_key_int(&a, eq[k].i, 0);
        sop_key_double(&b, eq[k].d, 0);
        CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
        if (eq[k].i >= 0) {
            sop_key_reset(&c);
            sop_key_uint(&c, (uint64_t)eq[k].i, 0);
            CHECK(a.size == c.size && memcmp(a.data, c.data, a.size) == 0);
        }
    }
    sop_key_reset(&a);
    sop_key_reset(&b);
    sop_key_uint(&a, 1ull << 63, 0);
    sop_key_double(&b, 9223372036854775808.0, 0);
    CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);

    /* a decoded integral double is reported as an int */
    sop_key_reader r;
    sop_key_field f;
    sop_key_reset(&b);
    sop_key_double(&b, 5.0, 1);
    sop_key_double(&b, 0.25, 0);
    sop_key_double(&b, 1e30, 0);
    sop_key_double(&b, 12345678901234567890.0, 0);
    sop_key_reader_init(&r, b.data, b.size);
    CHECK(sop_key_next(&r, &f) == 1 && f.type == SOP_KT_INT && f.i == 5 && f.descending);
    CHECK(sop_key_next(&r, &f) == 1 && f.type == SOP_KT_DOUBLE && f.d == 0.25 && !f.descending);
    CHECK(sop_key_next(&r, &f) == 1 && f.type == SOP_KT_DOUBLE && f.d == 1e30);
    CHECK(sop_key_next(&r, &f) == 1 && f.type == SOP_KT_UINT &&
          (double)f.u == 12345678901234567890.0);
    CHECK(sop_key_next(&r, &f) == 0);
    sop_key_reader_free(&r);
    sop_key_free(&a);
    sop_key_free(&b);
    sop_key_free(&c);
}

TEST(errors)
{
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_key_int(&kb, 3, 0);
    sop_key_double(&kb, NAN, 0);
    CHECK(kb.err == SOP_INVALID);
    size_t size = kb.size;
    sop_key_str(&kb, "x", 1, 0); /* sticky: nothing appended */
    CHECK(kb.err == SOP_INVALID && kb.size == size);
    sop_key_reset(&kb);
    CHECK(kb.err == SOP_OK && kb.size == 0);

    /* grows past the inline buffer, then hits the limit */
    static char big[5000];
    memset(big, 'q', sizeof big);
    sop_key_str(&kb, big, 200, 0);
    CHECK(kb.err == SOP_OK && kb.size == 203 && kb.data != kb.inline_buf);
    sop_key_str(&kb, big, SOP_MAX_KEY - 203 - 3, 0);
    CHECK(kb.err == SOP_OK && kb.size == SOP_MAX_KEY);
    sop_key_null(&kb, 0);
    CHECK(kb.err == SOP_KEY_TOO_LARGE && kb.size == SOP_MAX_KEY);
    sop_key_reset(&kb);
    sop_key_bytes(&kb, big, sizeof big, 0);
    CHECK(kb.err == SOP_KEY_TOO_LARGE);
    sop_key_int(&kb, 1, 0);
    CHECK(kb.err == SOP_KEY_TOO_LARGE);
    /* NULs are escaped: 2100 NULs need 4200+3 bytes */
    sop_key_reset(&kb);
    static char zeros[2100];
    sop_key_bytes(&kb, zeros, sizeof zeros, 1);
    CHECK(kb.err == SOP_KEY_TOO_LARGE);
    sop_key_reset(&kb);
    sop_key_bytes(&kb, zeros, 2046, 1);
    CHECK(kb.err == SOP_OK && kb.size == 4095);
    sop_key_reader r;
    sop_key_field f;
    sop_key_reader_init(&r, kb.data, kb.size);
    CHECK(sop_key_next(&r, &f) == 1 && f.type == SOP_KT_BYTES && f.n == 2046 && f.descending &&
          memcmp(f.p, zeros, 2046) == 0);
    CHECK(sop_key_next(&r, &f) == 0);
    sop_key_reader_free(&r);
    sop_key_free(&kb);
    CHECK(kb.data == kb.inline_buf && kb.size == 0);

    /* malformed */
    static const unsigned char bad[][4] = {{0x00}, {0x21}, {0x30, 'a'}, {0x30, 0x00, 0x02}};
    static const size_t bad_n[] = {1, 1, 2, 3};
    for (size_t k = 0; k < 4; k++) {
        sop_key_reader_init(&r, bad[k], bad_n[k]);
        CHECK(sop_key_next(&r, &f) == -SOP_CORRUPT);
        sop_key_reader_free(&r);
    }
    /* -0.0 written raw (non-canonical) and NaN are refused */
    unsigned char negzero[10] = {0x20, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
    sop_key_reader_init(&r, negzero, sizeof negzero);
    CHECK(sop_key_next(&r, &f) == -SOP_CORRUPT);
    unsigned char nan[10] = {0x20, 0xFF, 0xF8, 0, 0, 0, 0, 0, 0, 0x00};
    sop_key_reader_init(&r, nan, sizeof nan);
    CHECK(sop_key_next(&r, &f) == -SOP_CORRUPT);
    sop_key_reader_init(&r, NULL, 0);
    CHECK(sop_key_next(&r, &f) == 0);
}

#define NVALS 2500
static val vals[NVALS];
static enc encs[NVALS];
static enc encs_desc[NVALS];

TEST(order_single_fields)
{
    int zero = 0, one = 1;
    for (int i = 0; i < NVALS; i++) {
        vals[i] = rnd_val();
        encode_fields(&encs[i], &vals[i], &zero, 1);
        encode_fields(&encs_desc[i], &vals[i], &one, 1);
        REQUIRE(encs[i].n > 0 && encs_desc[i].n == encs[i].n);
    }
    long bad = 0, bad_desc = 0;
    for (int i = 0; i < NVALS; i++) {
        for (int j = 0; j < NVALS; j++) {
            int want = cmp_val(&vals[i], &vals[j]);
            if (sign(cmp_enc(&encs[i], &encs[j])) != want) {
                if (bad++ < 5)
                    fprintf(stderr, "order mismatch: kinds %d/%d i=%lld/%lld u=%llu/%llu d=%.17g/%.17g\n",
                            vals[i].kind, vals[j].kind, (long long)vals[i].i,
                            (long long)vals[j].i, (unsigned long long)vals[i].u,
                            (unsigned long long)vals[j].u, vals[i].d, vals[j].d);
            }
            if (sign(cmp_enc(&encs_desc[i], &encs_desc[j])) != -want)
                bad_desc++;
        }
    }
    CHECK(bad == 0);
    CHECK(bad_desc == 0);
}

TEST(order_edges_all_pairs)
{
    /* every boundary integer against every boundary/adjacent double */
    val v[512];
    int n = 0;
    for (size_t k = 0; k < sizeof int_edges / sizeof int_edges[0]; k++) {
        v[n].kind = V_INT;
        v[n++].i = int_edges[k];
        double d = (double)int_edges[k];
        v[n].kind = V_DOUBLE;
        v[n++].d = d;
        v[n].kind = V_DOUBLE;
        v[n++].d = nextafter(d, INFINITY);
        v[n].kind = V_DOUBLE;
        v[n++].d = nextafter(d, -INFINITY);
    }
    for (size_t k = 0; k < sizeof uint_edges / sizeof uint_edges[0]; k++) {
        v[n].kind = V_UINT;
        v[n++].u = uint_edges[k];
        double d = (double)uint_edges[k];
        v[n].kind = V_DOUBLE;
        v[n++].d = d;
        v[n].kind = V_DOUBLE;
        v[n++].d = nextafter(d, INFINITY);
        v[n].kind = V_DOUBLE;
        v[n++].d = nextafter(d, -INFINITY);
    }
    REQUIRE(n <= 512);
    static enc e[512];
    int zero = 0;
    for (int i = 0; i < n; i++)
        encode_fields(&e[i], &v[i], &zero, 1);
    long bad = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (sign(cmp_enc(&e[i], &e[j])) != cmp_val(&v[i], &v[j]))
                bad++;
    CHECK(bad == 0);
}

TEST(round_trip)
{
    long bad = 0;
    for (int i = 0; i < NVALS; i++) {
        for (int desc = 0; desc < 2; desc++) {
            const enc *e = desc ? &encs_desc[i] : &encs[i];
            sop_key_reader r;
            sop_key_field f;
            sop_key_reader_init(&r, e->b, e->n);
            int rc = sop_key_next(&r, &f);
            if (rc != 1 || !field_matches(&f, &vals[i], desc) || sop_key_next(&r, &f) != 0)
                bad++;
            sop_key_reader_free(&r);
        }
    }
    CHECK(bad == 0);
}

/* Composite keys from a small pool of values so that prefixes collide. */
TEST(order_composite)
{
    val pool[40];
    for (int i = 0; i < 40; i++)
        pool[i] = vals[rnd_below(NVALS)];
    pool[1] = pool[0];
    if (pool[2].kind == V_STR)
        pool[2].n = pool[2].n ? pool[2].n - 1 : 0; /* a prefix of itself */
    enum { NK = 700 };
    static val keys[NK][3];
    static enc ke[NK];
    long bad = 0, bad_rt = 0;
    for (int nf = 2; nf <= 3; nf++) {
        for (int pattern = 0; pattern < (1 << nf); pattern++) {
            int desc[3] = {pattern & 1, (pattern >> 1) & 1, (pattern >> 2) & 1};
            for (int k = 0; k < NK; k++) {
                for (int f = 0; f < nf; f++)
                    keys[k][f] = pool[rnd_below(40)];
                encode_fields(&ke[k], keys[k], desc, nf);
            }
            for (int a = 0; a < NK; a++) {
                for (int b = 0; b < NK; b++) {
                    int want = 0;
                    for (int f = 0; f < nf && !want; f++)
                        want = desc[f] ? -cmp_val(&keys[a][f], &keys[b][f])
                                       : cmp_val(&keys[a][f], &keys[b][f]);
                    if (sign(cmp_enc(&ke[a], &ke[b])) != want)
                        bad++;
                }
                sop_key_reader r;
                sop_key_field fl;
                sop_key_reader_init(&r, ke[a].b, ke[a].n);
                for (int f = 0; f < nf; f++)
                    if (sop_key_next(&r, &fl) != 1 || !field_matches(&fl, &keys[a][f], desc[f]))
                        bad_rt++;
                if (sop_key_next(&r, &fl) != 0)
                    bad_rt++;
                sop_key_reader_free(&r);
            }
        }
    }
    CHECK(bad == 0);
    CHECK(bad_rt == 0);
}

/* Decode everything in [p, p+n); on success re-encode the fields and check
 * the bytes are identical (the reader accepts only canonical input).
 * Returns 1 if decoded, 0 if an error was reported, -1 on a mismatch. */
static int decode_all(const unsigned char *p, size_t n)
{
    sop_key_reader r;
    sop_key_field f;
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_key_reader_init(&r, p, n);
    int rc, result = 1;
    while ((rc = sop_key_next(&r, &f)) == 1) {
        switch (f.type) {
        case SOP_KT_NULL: sop_key_null(&kb, f.descending); break;
        case SOP_KT_BOOL: sop_key_bool(&kb, (int)f.i, f.descending); break;
        case SOP_KT_INT: sop_key_int(&kb, f.i, f.descending); break;
        case SOP_KT_UINT: sop_key_uint(&kb, f.u, f.descending); break;
        case SOP_KT_DOUBLE: sop_key_double(&kb, f.d, f.descending); break;
        case SOP_KT_STR: sop_key_str(&kb, (const char *)f.p, f.n, f.descending); break;
        case SOP_KT_BYTES: sop_key_bytes(&kb, f.p, f.n, f.descending); break;
        default: result = -1;
        }
    }
    if (rc < 0)
        result = rc == -SOP_CORRUPT ? 0 : -1;
    else if (kb.err != SOP_OK || kb.size != n || (n && memcmp(kb.data, p, n) != 0))
        result = -1;
    sop_key_reader_free(&r);
    sop_key_free(&kb);
    return result;
}

TEST(malformed_inputs)
{
    long mismatches = 0, decoded = 0, rejected = 0;
    for (int iter = 0; iter < 3000; iter++) {
        val v[3];
        int desc[3];
        int nf = 1 + (int)rnd_below(3);
        for (int f = 0; f < nf; f++) {
            v[f] = vals[rnd_below(NVALS)];
            desc[f] = (int)(rnd() & 1);
        }
        enc e;
        encode_fields(&e, v, desc, nf);
        /* truncations, copied to exact-size heap blocks so ASan sees overreads */
        for (size_t cut = 0; cut <= e.n; cut++) {
            unsigned char *p = malloc(cut ? cut : 1);
            memcpy(p, e.b, cut);
            int rc = decode_all(p, cut);
            mismatches += rc < 0;
            free(p);
        }
        /* random byte flips */
        for (int m = 0; m < 8; m++) {
            unsigned char *p = malloc(e.n);
            memcpy(p, e.b, e.n);
            int flips = 1 + (int)rnd_below(3);
            for (int k = 0; k < flips; k++) {
                size_t at = rnd_below(e.n);
                switch (rnd_below(3)) {
                case 0: p[at] ^= (unsigned char)(1u << rnd_below(8)); break;
                case 1: p[at] = (unsigned char)rnd(); break;
                default: p[at] = (unsigned char)(rnd() & 1 ? 0x00 : 0xFF); break;
                }
            }
            int rc = decode_all(p, e.n);
            mismatches += rc < 0;
            decoded += rc == 1;
            rejected += rc == 0;
            free(p);
        }
    }
    /* pure random garbage, biased to tag and escape bytes */
    static const unsigned char interesting[] = {0x05, 0x10, 0x11, 0x20, 0x30, 0x40,
                                                0x00, 0x01, 0xff, 0xfa, 0xdf, 0xcf};
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rnd_below(24);
        unsigned char *p = malloc(n ? n : 1);
        for (size_t k = 0; k < n; k++)
            p[k] = rnd_below(4) ? interesting[rnd_below(sizeof interesting)] : (unsigned char)rnd();
        mismatches += decode_all(p, n) < 0;
        free(p);
    }
    CHECK(mismatches == 0);
    CHECK(decoded > 0 && rejected > 0);
}

int main(void)
{
    RUN(exact_bytes);
    RUN(numbers_equal_across_types);
    RUN(errors);
    RUN(order_single_fields);
    RUN(order_edges_all_pairs);
    RUN(round_trip);
    RUN(order_composite);
    RUN(malformed_inputs);
    TEST_EXIT();
}
