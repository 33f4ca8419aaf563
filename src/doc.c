/*
 * doc.c - the "sopdoc" document format: writer (sop_doc_* builders), a flat
 * bounds-checked tokenizer (sop_doc_next), an iterative validator and a JSON
 * renderer.  sopdoc is a pure value grammar (no header, no version byte: the
 * containers that store documents are versioned by the engine).
 *
 * Byte layout.  Every item starts with one tag byte.  All multi-byte fixed
 * numbers are little-endian; "varint" is unsigned LEB128 (7 bits per byte,
 * low group first, high bit = more; at most 10 bytes, and the value must fit
 * 64 bits).
 *
 *   tag        item     type           payload after the tag
 *   ---------  -------  -------------  ----------------------------------------
 *   0x00-0x7F  fixint   SOP_DT_INT     none; value = tag (0..127)
 *   0x80-0x9F  fixstr   SOP_DT_STR     (tag & 0x1F) bytes of UTF-8 (len 0..31)
 *   0xA0-0xAF  fixlist  SOP_DT_LIST    (tag & 0x0F) items follow (0..15)
 *   0xB0-0xBF  fixmap   SOP_DT_MAP     (tag & 0x0F) entries follow (0..15)
 *   0xC0       null     SOP_DT_NULL    none
 *   0xC1       false    SOP_DT_FALSE   none
 *   0xC2       true     SOP_DT_TRUE    none
 *   0xC3       int      SOP_DT_INT     varint of zigzag(v) = (v << 1) ^ (v >> 63)
 *   0xC4       uint     SOP_DT_UINT    varint of v
 *   0xC5       double   SOP_DT_DOUBLE  8 bytes, IEEE-754 binary64, little-endian
 *   0xC6       str      SOP_DT_STR     varint n, then n bytes of UTF-8
 *   0xC7       bytes    SOP_DT_BYTES   varint n, then n bytes
 *   0xC8       list     SOP_DT_LIST    varint count, then count items
 *   0xC9       map      SOP_DT_MAP     varint count, then count entries
 *   0xCA       bigint   SOP_DT_BIGINT  varint n (1..1024), then n bytes of
 *                                      two's complement, big-endian
 *   0xCB-0xDF  reserved (malformed)
 *   0xE0-0xFF  fixint   SOP_DT_INT     none; value = tag - 256 (-32..-1)
 *
 *   A map entry is a key item, which must be a str (fixstr or 0xC6), followed
 *   by a value item; entry order is kept and duplicate keys are not checked.
 *
 * Rules.  The writer always picks the shortest form for int and str (so the
 * same values always give the same bytes), keeps uint as uint (0xC4) so the
 * type round-trips, and uses fixlist/fixmap for counts up to 15.  Readers
 * accept any form of the table (e.g. 0xC3 for a small int).  str must be
 * valid UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF): the
 * writer refuses invalid text (err = SOP_INVALID) and sop_doc_validate
 * rejects it.  A document is exactly one item (with its children) and no
 * trailing bytes; containers nest at most 64 deep (a scalar is depth 0, a
 * list of scalars depth 1).  The writer does not track nesting.
 *
 * sop_doc_next is a flat tokenizer: it returns each item in pre-order
 * (containers report their count in it->n, the caller tracks structure;
 * r->depth is not used by it).  It checks every length and count against
 * the bytes left (a count can never exceed the bytes left), so callers may
 * size arrays by it->n.  It does not check UTF-8 or map-key types;
 * sop_doc_validate does.  Numbers: INT sets it->i (and it->u when >= 0),
 * UINT sets it->u (and it->i when <= INT64_MAX); both also set it->d to the
 * nearest double.  On error the reader does not advance.
 *
 * JSON (sop_doc_to_json; the document is validated first, SOP_CORRUPT if
 * malformed): null/true/false; int, uint, bigint as JSON integers; doubles
 * as the shortest of %.15g/%.16g/%.17g that round-trips, with ".0" added
 * when the text would otherwise look like an integer (so 1.0 -> 1.0);
 * non-finite doubles -> null; str as JSON strings (", \ and control
 * characters escaped, other UTF-8 emitted as is); bytes as
 * {"$bytes":"<standard base64 with padding>"}; lists as arrays; maps as
 * objects (in stored order).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sop_int.h"

#define T_FIXSTR 0x80u
#define T_FIXLIST 0xA0u
#define T_FIXMAP 0xB0u
#define T_NULL 0xC0u
#define T_FALSE 0xC1u
#define T_TRUE 0xC2u
#define T_INT 0xC3u
#define T_UINT 0xC4u
#define T_DOUBLE 0xC5u
#define T_STR 0xC6u
#define T_BYTES 0xC7u
#define T_LIST 0xC8u
#define T_MAP 0xC9u
#define T_BIGINT 0xCAu

#define DOC_MAX_DEPTH 64
#define DOC_MAX_BIGINT 1024

/* ---- UTF-8 ------------------------------------------------------------ */

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c;
        if (n - i >= 8) { /* ASCII fast path: 8 bytes without a high bit */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* > U+10FFFF */
        } else
            return 0;
        if (n - i < len)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += len;
    }
    return 1;
}

/* ---- writer ----------------------------------------------------------- */

void sop_doc_init(sop_docbuf *d)
{
    d->data = d->inline_buf;
    d->size = 0;
    d->cap = sizeof d->inline_buf;
    d->err = SOP_OK;
}

void sop_doc_reset(sop_docbuf *d)
{
    if (d->data == NULL)
        sop_doc_init(d);
    d->size = 0;
    d->err = SOP_OK;
}

void sop_doc_free(sop_docbuf *d)
{
    if (d->data != d->inline_buf)
        sop_free(d->data);
    sop_doc_init(d);
}

static void doc_fail(sop_docbuf *d, int rc)
{
    if (d->err == SOP_OK)
        d->err = rc;
}

/* Room for `add` bytes at the end; NULL after any error. */
static unsigned char *doc_room(sop_docbuf *d, size_t add)
{
    if (d->err != SOP_OK)
        return NULL;
    if (d->data == NULL)
        sop_doc_init(d);
    if (add > SIZE_MAX - d->size) {
        doc_fail(d, sop_report(SOP_VALUE_TOO_LARGE, "document too large"));
        return NULL;
    }
    size_t need = d->size + add;
    if (need > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        unsigned char *p;
        if (d->data == d->inline_buf) {
            p = sop_malloc(cap);
            if (p)
                memcpy(p, d->data, d->size);
        } else {
            p = sop_realloc(d->data, cap);
        }
        if (!p) {
            doc_fail(d, sop_report(SOP_NOMEM, "document encoder: out of memory (%zu bytes)", cap));
            return NULL;
        }
        d->data = p;
        d->cap = cap;
    }
    unsigned char *w = d->data + d->size;
    d->size = need;
    return w;
}

static void put_tag_varint(sop_docbuf *d, unsigned tag, uint64_t v)
{
    unsigned char *w = doc_room(d, 1 + sop_varint_len(v));
    if (!w)
        return;
    w[0] = (unsigned char)tag;
    sop_varint_put(w + 1, v);
}

static void put_tag_blob(sop_docbuf *d, unsigned tag, const void *p, size_t n)
{
    if (d->err == SOP_OK && n && !p) {
        doc_fail(d, sop_report(SOP_INVALID, "document encoder: NULL pointer with length %zu", n));
        return;
    }
    size_t hdr = 1 + sop_varint_len(n);
    if (n > SIZE_MAX - hdr) {
        doc_fail(d, sop_report(SOP_VALUE_TOO_LARGE, "document too large"));
        return;
    }
    unsigned char *w = doc_room(d, hdr + n);
    if (!w)
        return;
    w[0] = (unsigned char)tag;
    w += 1 + sop_varint_put(w + 1, n);
    if (n)
        memcpy(w, p, n);
}

void sop_doc_null(sop_docbuf *d)
{
    unsigned char *w = doc_room(d, 1);
    if (w)
        *w = T_NULL;
}

void sop_doc_bool(sop_docbuf *d, int v)
{
    unsigned char *w = doc_room(d, 1);
    if (w)
        *w = v ? T_TRUE : T_FALSE;
}

void sop_doc_int(sop_docbuf *d, int64_t v)
{
    if (v >= -32 && v <= 127) {
        unsigned char *w = doc_room(d, 1);
        if (w)
            *w = (unsigned char)(v & 0xFF);
        return;
    }
    uint64_t zz = ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
    put_tag_varint(d, T_INT, zz);
}

void sop_doc_uint(sop_docbuf *d, uint64_t v)
{
    put_tag_varint(d, T_UINT, v);
}

void sop_doc_bigint(sop_docbuf *d, const void *be_twos_complement, size_t n)
{
    if (d->err == SOP_OK && (n == 0 || n > DOC_MAX_BIGINT)) {
        doc_fail(d, sop_report(SOP_INVALID, "document encoder: bigint of %zu bytes (1..%d)", n,
                               DOC_MAX_BIGINT));
        return;
    }
    put_tag_blob(d, T_BIGINT, be_twos_complement, n);
}

void sop_doc_double(sop_docbuf *d, double v)
{
    unsigned char *w = doc_room(d, 9);
    if (!w)
        return;
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    w[0] = T_DOUBLE;
    sop_put64(w + 1, u);
}

void sop_doc_str(sop_docbuf *d, const char *s, size_t n)
{
    if (d->err != SOP_OK)
        return;
    if (n && !s) {
        doc_fail(d, sop_report(SOP_INVALID, "document encoder: NULL pointer with length %zu", n));
        return;
    }
    if (!utf8_valid((const unsigned char *)s, n)) {
        doc_fail(d, sop_report(SOP_INVALID, "document encoder: string is not valid UTF-8"));
        return;
    }
    if (n <= 31) {
        unsigned char *w = doc_room(d, 1 + n);
        if (!w)
            return;
        w[0] = (unsigned char)(T_FIXSTR | n);
        if (n)
            memcpy(w + 1, s, n);
        return;
    }
    put_tag_blob(d, T_STR, s, n);
}

void sop_doc_bytes(sop_docbuf *d, const void *p, size_t n)
{
    put_tag_blob(d, T_BYTES, p, n);
}

void sop_doc_list(sop_docbuf *d, size_t count)
{
    if (count <= 15) {
        unsigned char *w = doc_room(d, 1);
        if (w)
            *w = (unsigned char)(T_FIXLIST | count);
        return;
    }
    put_tag_varint(d, T_LIST, count);
}

void sop_doc_map(sop_docbuf *d, size_t count)
{
    if (count <= 15) {
        unsigned char *w = doc_room(d, 1);
        if (w)
            *w = (unsigned char)(T_FIXMAP | count);
        return;
    }
    put_tag_varint(d, T_MAP, count);
}

/* ---- tokenizer -------------------------------------------------------- */

void sop_doc_reader_init(sop_doc_reader *r, const void *doc, size_t size)
{
    r->pos = (const unsigned char *)doc;
    r->end = r->pos ? r->pos + size : NULL;
    r->depth = 0;
}

/* Strict LEB128: at most 10 bytes, value fits 64 bits. 0 on error. */
static size_t get_varint(const unsigned char *p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        unsigned char b = p[i];
        if (i == 9 && b > 1)
            return 0;
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

int sop_doc_next(sop_doc_reader *r, sop_doc_item *it)
{
    memset(it, 0, sizeof *it);
    if (!r->pos || r->pos >= r->end)
        return 0;
    const unsigned char *p = r->pos, *end = r->end;
    unsigned tag = *p++;
    uint64_t v = 0;
    size_t left;

    if (tag < 0x80) {
        it->type = SOP_DT_INT;
        it->i = (int64_t)tag;
        it->u = tag;
        it->d = (double)tag;
        r->pos = p;
        return 1;
    }
    if (tag >= 0xE0) {
        it->type = SOP_DT_INT;
        it->i = (int64_t)tag - 256;
        it->d = (double)it->i;
        r->pos = p;
        return 1;
    }
    if (tag < T_NULL) {
        unsigned kind = tag & 0xE0u; /* 0x80 str, 0xA0 list/map */
        v = kind == T_FIXSTR ? (tag & 0x1Fu) : (tag & 0x0Fu);
        if (kind == T_FIXSTR)
            tag = T_STR;
        else
            tag = (tag & 0xF0u) == T_FIXLIST ? T_LIST : T_MAP;
    } else if (tag == T_INT || tag == T_UINT || tag == T_STR || tag == T_BYTES ||
               tag == T_LIST || tag == T_MAP || tag == T_BIGINT) {
        size_t k = get_varint(p, end, &v);
        if (!k)
            return -SOP_CORRUPT_AT("sopdoc: bad or truncated varint after tag 0x%02x", tag);
        p += k;
    }
    left = (size_t)(end - p);

    switch (tag) {
    case T_NULL:
        it->type = SOP_DT_NULL;
        break;
    case T_FALSE:
        it->type = SOP_DT_FALSE;
        break;
    case T_TRUE:
        it->type = SOP_DT_TRUE;
        it->i = 1;
        it->u = 1;
        break;
    case T_INT:
        it->type = SOP_DT_INT;
        it->u = (v >> 1) ^ (0 - (v & 1));
        it->i = (int64_t)it->u;
        if (it->i < 0)
            it->u = 0;
        it->d = (double)it->i;
        break;
    case T_UINT:
        it->type = SOP_DT_UINT;
        it->u = v;
        it->i = v <= (uint64_t)INT64_MAX ? (int64_t)v : 0;
        it->d = (double)v;
        break;
    case T_DOUBLE:
        if (left < 8)
            return -SOP_CORRUPT_AT("sopdoc: truncated double");
        it->type = SOP_DT_DOUBLE;
        v = sop_get64(p);
        memcpy(&it->d, &v, sizeof it->d);
        p += 8;
        break;
    case T_STR:
    case T_BYTES:
    case T_BIGINT:
        if (v > left)
            return -SOP_CORRUPT_AT("sopdoc: length %llu beyond the end (%zu bytes left)",
                                   (unsigned long long)v, left);
        if (tag == T_BIGINT && (v == 0 || v > DOC_MAX_BIGINT))
            return -SOP_CORRUPT_AT("sopdoc: bigint of %llu bytes", (unsigned long long)v);
        it->type = tag == T_STR ? SOP_DT_STR : tag == T_BYTES ? SOP_DT_BYTES : SOP_DT_BIGINT;
        it->p = p;
        it->n = (size_t)v;
        p += v;
        break;
    case T_LIST:
    case T_MAP:
        /* every item takes at least one byte, a map entry at least two */
        if (v > left || (tag == T_MAP && v > left / 2))
            return -SOP_CORRUPT_AT("sopdoc: count %llu beyond the end (%zu bytes left)",
                                   (unsigned long long)v, left);
        it->type = tag == T_LIST ? SOP_DT_LIST : SOP_DT_MAP;
        it->n = (size_t)v;
        break;
    default:
        return -SOP_CORRUPT_AT("sopdoc: unknown tag 0x%02x", tag);
    }
    r->pos = p;
    return 1;
}

/* ---- JSON output buffer ----------------------------------------------- */

typedef struct jbuf {
    char *p;
    size_t n, cap;
    int err;
} jbuf;

static int jb_grow(jbuf *j, size_t add)
{
    if (j->err)
        return 0;
    if (add > SIZE_MAX - j->n - 1) {
        j->err = SOP_NOMEM;
        return 0;
    }
    size_t need = j->n + add + 1;
    if (need <= j->cap)
        return 1;
    size_t cap = j->cap ? j->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = sop_realloc(j->p, cap);
    if (!p) {
        j->err = SOP_NOMEM;
        return 0;
    }
    j->p = p;
    j->cap = cap;
    return 1;
}

static void jb_put(jbuf *j, const char *s, size_t n)
{
    if (!jb_grow(j, n))
        return;
    memcpy(j->p + j->n, s, n);
    j->n += n;
}

static void jb_putc(jbuf *j, char c)
{
    if (!jb_grow(j, 1))
        return;
    j->p[j->n++] = c;
}

static void jb_str(jbuf *j, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jb_putc(j, '"');
    size_t run = 0; /* start of the current run of plain bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jb_put(j, (const char *)s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            elen = 6;
        }
        jb_put(j, e, elen);
    }
    jb_put(j, (const char *)s + run, n - run);
    jb_putc(j, '"');
}

static void jb_base64(jbuf *j, const unsigned char *s, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > (SIZE_MAX / 4) * 3 - 3 || !jb_grow(j, (n + 2) / 3 * 4))
        return;
    char *w = j->p + j->n;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        *w++ = b64[v >> 18];
        *w++ = b64[(v >> 12) & 63];
        *w++ = b64[(v >> 6) & 63];
        *w++ = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *w++ = b64[v >> 18];
        *w++ = b64[(v >> 12) & 63];
        *w++ = '=';
        *w++ = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        *w++ = b64[v >> 18];
        *w++ = b64[(v >> 12) & 63];
        *w++ = b64[(v >> 6) & 63];
        *w++ = '=';
    }
    j->n = (size_t)(w - j->p);
}

static void jb_double(jbuf *j, double v)
{
    if (!isfinite(v)) {
        jb_put(j, "null", 4);
        return;
    }
    char buf[40];
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    if (len < 0 || (size_t)len >= sizeof buf)
        len = 0;
    int plain = 1;
    for (int i = 0; i < len; i++) {
        char c = buf[i];
        if (c == 'e' || c == 'E')
            plain = 0;
        else if (!(c >= '0' && c <= '9') && c != '-' && c != '+') {
            buf[i] = '.'; /* the locale's decimal point */
            plain = 0;
        }
    }
    jb_put(j, buf, (size_t)len);
    if (plain)
        jb_put(j, ".0", 2);
}

static void jb_u64(jbuf *j, uint64_t v, int neg)
{
    char buf[24];
    char *w = buf + sizeof buf;
    do {
        *--w = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        *--w = '-';
    jb_put(j, w, (size_t)(buf + sizeof buf - w));
}

/* Two's complement big-endian bytes (1..DOC_MAX_BIGINT) to decimal. */
static void jb_bigint(jbuf *j, const unsigned char *s, size_t n)
{
    unsigned char mag[DOC_MAX_BIGINT];
    uint32_t chunks[DOC_MAX_BIGINT * 241 / 900 + 2]; /* base 1e9 digits */
    size_t nchunks = 0;
    int neg = (s[0] & 0x80) != 0;
    memcpy(mag, s, n);
    if (neg) { /* magnitude = ~x + 1 */
        unsigned carry = 1;
        for (size_t i = n; i-- > 0;) {
            unsigned t = (unsigned)(unsigned char)~mag[i] + carry;
            mag[i] = (unsigned char)t;
            carry = t >> 8;
        }
    }
    size_t start = 0;
    while (start < n && mag[start] == 0)
        start++;
    while (start < n) {
        uint64_t rem = 0;
        for (size_t i = start; i < n; i++) {
            uint64_t cur = (rem << 8) | mag[i];
            mag[i] = (unsigned char)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        chunks[nchunks++] = (uint32_t)rem;
        while (start < n && mag[start] == 0)
            start++;
    }
    if (nchunks == 0) {
        jb_putc(j, '0');
        return;
    }
    if (neg)
        jb_putc(j, '-');
    char buf[16];
    int len = snprintf(buf, sizeof buf, "%u", (unsigned)chunks[nchunks - 1]);
    jb_put(j, buf, (size_t)len);
    for (size_t k = nchunks - 1; k-- > 0;) {
        len = snprintf(buf, sizeof buf, "%09u", (unsigned)chunks[k]);
        jb_put(j, buf, (size_t)len);
    }
}

/* ---- structural walk: validation and JSON ----------------------------- */

typedef struct frame {
    uint64_t left; /* items still to read (a map entry counts two) */
    int is_map;
} frame;

/* Walk [doc, size) as exactly one document; render JSON into j if given. */
static int doc_walk(const void *doc, size_t size, jbuf *j)
{
    frame st[DOC_MAX_DEPTH + 1];
    int depth = 0;
    int first = 1; /* first item of the innermost container */
    sop_doc_reader r;
    sop_doc_item it;
    sop_doc_reader_init(&r, doc, size);
    if (size == 0 || !doc)
        return SOP_CORRUPT_AT("sopdoc: empty document");
    for (;;) {
        const unsigned char *at = r.pos;
        int rc = sop_doc_next(&r, &it);
        if (rc < 0)
            return -rc;
        if (rc == 0)
            return SOP_CORRUPT_AT("sopdoc: truncated document (%d containers open)", depth);
        size_t off = (size_t)(at - (const unsigned char *)doc);
        int is_key = depth > 0 && st[depth - 1].is_map && st[depth - 1].left % 2 == 0;
        if (is_key && it.type != SOP_DT_STR)
            return SOP_CORRUPT_AT("sopdoc: map key at offset %zu is not a string", off);
        if (it.type == SOP_DT_STR && !utf8_valid(it.p, it.n))
            return SOP_CORRUPT_AT("sopdoc: invalid UTF-8 in string at offset %zu", off);
        if (depth > 0)
            st[depth - 1].left--;
        if (j && depth > 0) {
            if (is_key || !st[depth - 1].is_map) {
                if (!first)
                    jb_putc(j, ',');
            } else {
                jb_putc(j, ':');
            }
        }
        first = 0;
        if (j) {
            switch (it.type) {
            case SOP_DT_NULL: jb_put(j, "null", 4); break;
            case SOP_DT_FALSE: jb_put(j, "false", 5); break;
            case SOP_DT_TRUE: jb_put(j, "true", 4); break;
            case SOP_DT_INT:
                jb_u64(j, it.i < 0 ? (uint64_t)0 - (uint64_t)it.i : (uint64_t)it.i, it.i < 0);
                break;
            case SOP_DT_UINT: jb_u64(j, it.u, 0); break;
            case SOP_DT_DOUBLE: jb_double(j, it.d); break;
            case SOP_DT_STR: jb_str(j, it.p, it.n); break;
            case SOP_DT_BYTES:
                jb_put(j, "{\"$bytes\":\"", 11);
                jb_base64(j, it.p, it.n);
                jb_put(j, "\"}", 2);
                break;
            case SOP_DT_BIGINT: jb_bigint(j, it.p, it.n); break;
            case SOP_DT_LIST: jb_putc(j, '['); break;
            case SOP_DT_MAP: jb_putc(j, '{'); break;
            default: break;
            }
        }
        if (it.type == SOP_DT_LIST || it.type == SOP_DT_MAP) {
            if (depth >= DOC_MAX_DEPTH)
                return SOP_CORRUPT_AT("sopdoc: nesting deeper than %d at offset %zu",
                                      DOC_MAX_DEPTH, off);
            st[depth].is_map = it.type == SOP_DT_MAP;
            st[depth].left = (uint64_t)it.n * (st[depth].is_map ? 2 : 1);
            depth++;
            first = 1;
        }
        /* close every finished container */
        while (depth > 0 && st[depth - 1].left == 0) {
            depth--;
            first = 0;
            if (j)
                jb_putc(j, st[depth].is_map ? '}' : ']');
        }
        if (depth == 0)
            break;
    }
    if (r.pos != r.end)
        return SOP_CORRUPT_AT("sopdoc: %zu trailing bytes after the document",
                              (size_t)(r.end - r.pos));
    return SOP_OK;
}

int sop_doc_validate(const void *doc, size_t size)
{
    return doc_walk(doc, size, NULL);
}

int sop_doc_to_json(const void *doc, size_t size, char **json, size_t *json_len)
{
    jbuf j = {NULL, 0, 0, 0};
    *json = NULL;
    if (json_len)
        *json_len = 0;
    int rc = doc_walk(doc, size, &j);
    if (rc == SOP_OK && j.err)
        rc = sop_report(j.err, "sop_doc_to_json: out of memory");
    if (rc == SOP_OK && !jb_grow(&j, 0))
        rc = sop_report(SOP_NOMEM, "sop_doc_to_json: out of memory");
    if (rc != SOP_OK) {
        sop_free(j.p);
        return rc;
    }
    j.p[j.n] = 0;
    *json = j.p;
    if (json_len)
        *json_len = j.n;
    return SOP_OK;
}
