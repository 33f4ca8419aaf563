/*
 * keyenc.c - the order-preserving key encoder and decoder (sop_key_*).
 * Every field encoding is prefix-free, so a composite key is the plain
 * concatenation of its fields and memcmp order of two keys is the
 * lexicographic order of their fields.  A descending field is the bitwise
 * NOT of every byte of its ascending encoding.
 *
 * Field encodings (ascending; tags sort null < bool < number < str < bytes):
 *
 *   null    05
 *   bool    10 (false) | 11 (true)
 *   number  20, D[8], L, R[L]
 *           D: the IEEE-754 bits of d = the largest double <= the exact
 *              value, made order-preserving (positive: sign bit flipped;
 *              negative: all bits flipped; -0.0 is written as +0.0),
 *              big-endian.
 *           L: byte count of R (0 when the value is exactly a double).
 *           R: r = value - d, an exact integer 0 < r < 2^12, big-endian,
 *              minimal bytes (first byte non-zero).
 *           int64, uint64 and double compare by exact mathematical value:
 *           1 and 1.0 give the same bytes; NaN is refused (SOP_INVALID);
 *           -inf / +inf sort before / after every other number.
 *   str     30, bytes with 00 escaped as 00 FF, then the terminator 00 01
 *   bytes   40, same escaping and terminator as str
 *
 * Descending fields start with the inverted tag (FA, EF/EE, DF, CF, BF), so
 * the reader recognises them.  Because the key does not record whether a
 * number was an int or a float, the reader reports an integral number in
 * the 64-bit ranges as SOP_KT_INT (fits int64) or SOP_KT_UINT, anything else
 * as SOP_KT_DOUBLE (5.0 decodes as SOP_KT_INT 5).  The reader only accepts
 * canonical encodings (exactly what the encoder produces).
 *
 * sop_keybuf points at its own inline_buf until a key outgrows it: do not
 * copy a sop_keybuf by value.
 */
#include <math.h>

#include "sop_int.h"

#define TAG_NULL 0x05u
#define TAG_FALSE 0x10u
#define TAG_TRUE 0x11u
#define TAG_NUM 0x20u
#define TAG_STR 0x30u
#define TAG_BYTES 0x40u

#define NUM_MAX_LEN 12 /* tag + 8 + L + up to 2 remainder bytes */
#define TWO53 9007199254740992.0
#define TWO63 9223372036854775808.0
#define TWO64 18446744073709551616.0

/* ---- builder --------------------------------------------------------- */

void sop_key_init(sop_keybuf *kb)
{
    kb->data = kb->inline_buf;
    kb->size = 0;
    kb->cap = sizeof kb->inline_buf;
    kb->err = SOP_OK;
}

void sop_key_reset(sop_keybuf *kb)
{
    if (kb->data == NULL)
        sop_key_init(kb);
    kb->size = 0;
    kb->err = SOP_OK;
}

void sop_key_free(sop_keybuf *kb)
{
    if (kb->data != kb->inline_buf)
        sop_free(kb->data);
    sop_key_init(kb);
}

static void set_err(sop_keybuf *kb, int rc)
{
    if (kb->err == SOP_OK)
        kb->err = rc;
}

/* Room for `add` more bytes; NULL (and kb->err set) when the key would be
 * too large or memory runs out.  Nothing is appended after an error. */
static unsigned char *key_room(sop_keybuf *kb, size_t add)
{
    if (kb->err != SOP_OK)
        return NULL;
    if (kb->data == NULL)
        sop_key_init(kb);
    if (add > SOP_MAX_KEY || kb->size + add > SOP_MAX_KEY) {
        set_err(kb, sop_report(SOP_KEY_TOO_LARGE, "encoded key longer than %d bytes",
                               SOP_MAX_KEY));
        return NULL;
    }
    size_t need = kb->size + add;
    if (need > kb->cap) {
        size_t cap = kb->cap ? kb->cap : 64;
        while (cap < need)
            cap *= 2;
        unsigned char *p;
        if (kb->data == kb->inline_buf) {
            p = sop_malloc(cap);
            if (p)
                memcpy(p, kb->data, kb->size);
        } else {
            p = sop_realloc(kb->data, cap);
        }
        if (!p) {
            set_err(kb, sop_report(SOP_NOMEM, "key encoder: out of memory (%zu bytes)", cap));
            return NULL;
        }
        kb->data = p;
        kb->cap = cap;
    }
    unsigned char *w = kb->data + kb->size;
    kb->size = need;
    return w;
}

static void key_put(sop_keybuf *kb, const unsigned char *src, size_t n, int descending)
{
    unsigned char *w = key_room(kb, n);
    if (!w)
        return;
    if (descending) {
        for (size_t i = 0; i < n; i++)
            w[i] = (unsigned char)~src[i];
    } else {
        memcpy(w, src, n);
    }
}

void sop_key_null(sop_keybuf *kb, int descending)
{
    unsigned char t = TAG_NULL;
    key_put(kb, &t, 1, descending);
}

void sop_key_bool(sop_keybuf *kb, int v, int descending)
{
    unsigned char t = v ? TAG_TRUE : TAG_FALSE;
    key_put(kb, &t, 1, descending);
}

/* ---- numbers ---------------------------------------------------------- */

static int top_bit(uint64_t v) /* v != 0 */
{
    int k = 0;
    while (v >>= 1)
        k++;
    return k;
}

/* Write tag, the order-preserving bits of d and the remainder r. */
static size_t num_put(unsigned char out[NUM_MAX_LEN], double d, uint64_t r)
{
    uint64_t u;
    if (d == 0)
        d = 0.0; /* -0.0 == 0.0 */
    memcpy(&u, &d, sizeof u);
    if (u >> 63)
        u = ~u;
    else
        u |= (uint64_t)1 << 63;
    out[0] = TAG_NUM;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (unsigned char)(u >> (56 - 8 * i));
    size_t len = 0;
    for (uint64_t t = r; t; t >>= 8)
        len++;
    out[9] = (unsigned char)len;
    for (size_t i = 0; i < len; i++)
        out[10 + i] = (unsigned char)(r >> (8 * (len - 1 - i)));
    return 10 + len;
}

/* Non-negative integer v: d = v rounded toward zero (= toward -inf). */
static size_t num_put_u(unsigned char out[NUM_MAX_LEN], uint64_t v)
{
    if (v <= ((uint64_t)1 << 53))
        return num_put(out, (double)v, 0);
    int shift = top_bit(v) - 52;
    uint64_t mask = ((uint64_t)1 << shift) - 1;
    return num_put(out, (double)(v & ~mask), v & mask);
}

/* Negative integer -m (1 <= m <= 2^63): d = -(m rounded up). */
static size_t num_put_neg(unsigned char out[NUM_MAX_LEN], uint64_t m)
{
    if (m <= ((uint64_t)1 << 53))
        return num_put(out, -(double)m, 0);
    int shift = top_bit(m) - 52;
    uint64_t mask = ((uint64_t)1 << shift) - 1;
    if ((m & mask) == 0)
        return num_put(out, -(double)m, 0);
    uint64_t mu = (m & ~mask) + ((uint64_t)1 << shift); /* <= 2^63, a double */
    return num_put(out, -(double)mu, mu - m);
}

static size_t num_put_i(unsigned char out[NUM_MAX_LEN], int64_t v)
{
    if (v >= 0)
        return num_put_u(out, (uint64_t)v);
    return num_put_neg(out, (uint64_t)0 - (uint64_t)v);
}

void sop_key_int(sop_keybuf *kb, int64_t v, int descending)
{
    unsigned char b[NUM_MAX_LEN];
    key_put(kb, b, num_put_i(b, v), descending);
}

void sop_key_uint(sop_keybuf *kb, uint64_t v, int descending)
{
    unsigned char b[NUM_MAX_LEN];
    key_put(kb, b, num_put_u(b, v), descending);
}

void sop_key_double(sop_keybuf *kb, double v, int descending)
{
    if (isnan(v)) {
        if (kb->err == SOP_OK)
            kb->err = sop_report(SOP_INVALID, "NaN cannot be a key");
        return;
    }
    unsigned char b[NUM_MAX_LEN];
    key_put(kb, b, num_put(b, v, 0), descending);
}

/* ---- strings and bytes ------------------------------------------------ */

static void key_escaped(sop_keybuf *kb, unsigned tag, const unsigned char *s, size_t n,
                        int descending)
{
    if (kb->err != SOP_OK)
        return;
    if (n && !s) {
        set_err(kb, sop_report(SOP_INVALID, "key field: NULL pointer with length %zu", n));
        return;
    }
    if (n > SOP_MAX_KEY) { /* also keeps n + zeros + 3 from overflowing */
        key_room(kb, SOP_MAX_KEY + 1);
        return;
    }
    if (!descending && (n == 0 || !memchr(s, 0, n))) { /* nothing to escape */
        unsigned char *w = key_room(kb, n + 3);
        if (!w)
            return;
        *w++ = (unsigned char)tag;
        if (n)
            memcpy(w, s, n);
        w[n] = 0x00;
        w[n + 1] = 0x01;
        return;
    }
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++)
        zeros += s[i] == 0;
    unsigned char *w = key_room(kb, n + zeros + 3);
    if (!w)
        return;
    unsigned char x = descending ? 0xFF : 0x00;
    *w++ = (unsigned char)(tag ^ x);
    for (size_t i = 0; i < n; i++) {
        *w++ = (unsigned char)(s[i] ^ x);
        if (s[i] == 0)
            *w++ = (unsigned char)(0xFF ^ x);
    }
    *w++ = x;
    *w = (unsigned char)(0x01 ^ x);
}

void sop_key_str(sop_keybuf *kb, const char *s, size_t n, int descending)
{
    key_escaped(kb, TAG_STR, (const unsigned char *)s, n, descending);
}

void sop_key_bytes(sop_keybuf *kb, const void *p, size_t n, int descending)
{
    key_escaped(kb, TAG_BYTES, (const unsigned char *)p, n, descending);
}

/* ---- reader ----------------------------------------------------------- */

void sop_key_reader_init(sop_key_reader *r, const void *key, size_t size)
{
    r->pos = (const unsigned char *)key;
    r->end = r->pos ? r->pos + size : NULL;
    r->scratch = NULL;
    r->scratch_cap = 0;
}

void sop_key_reader_free(sop_key_reader *r)
{
    sop_free(r->scratch);
    r->scratch = NULL;
    r->scratch_cap = 0;
}

static const unsigned char empty_field[1];

static int read_number(sop_key_reader *r, sop_key_field *f, unsigned char x)
{
    const unsigned char *p = r->pos;
    size_t avail = (size_t)(r->end - p);
    unsigned char in[NUM_MAX_LEN];
    if (avail < 10)
        return -SOP_CORRUPT_AT("key: truncated number field");
    size_t len = (size_t)(p[9] ^ x);
    if (len > 2 || avail < 10 + len)
        return -SOP_CORRUPT_AT("key: bad number field (remainder length %zu)", len);
    for (size_t i = 0; i < 10 + len; i++)
        in[i] = (unsigned char)(p[i] ^ x);

    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | in[1 + i];
    if (u >> 63)
        u &= ~((uint64_t)1 << 63);
    else
        u = ~u;
    double d;
    memcpy(&d, &u, sizeof d);
    uint64_t rem = 0;
    for (size_t i = 0; i < len; i++)
        rem = (rem << 8) | in[10 + i];
    if (isnan(d))
        return -SOP_CORRUPT_AT("key: NaN number field");

    unsigned char again[NUM_MAX_LEN];
    size_t again_len;
    if (len == 0) {
        if (d == floor(d) && d >= -TWO63 && d < TWO63) {
            f->type = SOP_KT_INT;
            f->i = (int64_t)d;
            again_len = num_put_i(again, f->i);
        } else if (d == floor(d) && d >= TWO63 && d < TWO64) {
            f->type = SOP_KT_UINT;
            f->u = (uint64_t)d;
            again_len = num_put_u(again, f->u);
        } else {
            f->type = SOP_KT_DOUBLE;
            again_len = num_put(again, d, 0);
        }
        f->d = d;
    } else {
        if (!isfinite(d) || d != floor(d) || d < -TWO63 || d >= TWO64 || rem == 0)
            return -SOP_CORRUPT_AT("key: bad number field (remainder on a non-integer)");
        if (d >= 0) {
            uint64_t v = (uint64_t)d + rem;
            if (v < rem)
                return -SOP_CORRUPT_AT("key: number field out of range");
            if (v <= (uint64_t)INT64_MAX) {
                f->type = SOP_KT_INT;
                f->i = (int64_t)v;
            } else {
                f->type = SOP_KT_UINT;
                f->u = v;
            }
            f->d = (double)v;
            again_len = num_put_u(again, v);
        } else {
            uint64_t mu = (uint64_t)(-d);
            if (rem >= mu)
                return -SOP_CORRUPT_AT("key: number field out of range");
            uint64_t m = mu - rem; /* < 2^63 */
            f->type = SOP_KT_INT;
            f->i = -(int64_t)m;
            f->d = (double)f->i;
            again_len = num_put_neg(again, m);
        }
    }
    if (again_len != 10 + len || memcmp(again, in, again_len) != 0)
        return -SOP_CORRUPT_AT("key: non-canonical number field");
    r->pos = p + again_len;
    return 1;
}

static int read_escaped(sop_key_reader *r, sop_key_field *f, unsigned char x)
{
    const unsigned char *p = r->pos + 1;
    const unsigned char *end = r->end;
    if (x == 0 && p < end) { /* ascending: no escape before the terminator? */
        const unsigned char *z = memchr(p, 0, (size_t)(end - p));
        if (z && z + 1 < end && z[1] == 0x01) {
            f->p = z > p ? p : empty_field; /* the key's own bytes */
            f->n = (size_t)(z - p);
            r->pos = z + 2;
            return 1;
        }
    }
    /* Find the terminator and the decoded length first. */
    size_t n = 0;
    const unsigned char *q = p;
    for (;;) {
        if (q >= end)
            return -SOP_CORRUPT_AT("key: unterminated string field");
        unsigned char b = (unsigned char)(*q ^ x);
        if (b != 0) {
            q++;
            n++;
            continue;
        }
        if (q + 1 >= end)
            return -SOP_CORRUPT_AT("key: unterminated string field");
        unsigned char c = (unsigned char)(q[1] ^ x);
        if (c == 0x01)
            break;
        if (c != 0xFF)
            return -SOP_CORRUPT_AT("key: bad escape 00 %02x in string field", c);
        q += 2;
        n++;
    }
    if (n > r->scratch_cap) {
        size_t cap = r->scratch_cap ? r->scratch_cap : 64;
        while (cap < n)
            cap = cap > SIZE_MAX / 2 ? n : cap * 2;
        unsigned char *s = sop_realloc(r->scratch, cap);
        if (!s)
            return -sop_report(SOP_NOMEM, "key reader: out of memory (%zu bytes)", cap);
        r->scratch = s;
        r->scratch_cap = cap;
    }
    unsigned char *w = r->scratch;
    while (p < q) {
        unsigned char b = (unsigned char)(*p ^ x);
        if (w)
            *w++ = b;
        p += b == 0 ? 2 : 1;
    }
    f->p = n ? r->scratch : empty_field;
    f->n = n;
    r->pos = q + 2;
    return 1;
}

int sop_key_next(sop_key_reader *r, sop_key_field *f)
{
    memset(f, 0, sizeof *f);
    if (!r->pos || r->pos >= r->end)
        return 0;
    unsigned char t = *r->pos;
    unsigned char x = 0;
    if (t >= 0x80) { /* every ascending tag is < 0x80, every inverted one >= 0x80 */
        x = 0xFF;
        t = (unsigned char)~t;
        f->descending = 1;
    }
    switch (t) {
    case TAG_NULL:
        f->type = SOP_KT_NULL;
        r->pos++;
        return 1;
    case TAG_FALSE:
    case TAG_TRUE:
        f->type = SOP_KT_BOOL;
        f->i = t == TAG_TRUE;
        f->u = (uint64_t)f->i;
        r->pos++;
        return 1;
    case TAG_NUM:
        return read_number(r, f, x);
    case TAG_STR:
        f->type = SOP_KT_STR;
        return read_escaped(r, f, x);
    case TAG_BYTES:
        f->type = SOP_KT_BYTES;
        return read_escaped(r, f, x);
    default:
        return -SOP_CORRUPT_AT("key: unknown field tag 0x%02x", *r->pos);
    }
}
