/*
 * keydoc.c - order keys from key documents (sop_key_from_doc) and index
 * specifications (sop_index_spec_check).
 *
 * A key document is a sopdoc map (field name -> value).  An index
 * specification is a sopdoc list of [field_name (str), ascending (bool)]
 * pairs; it chooses which fields make the order key and in which order and
 * direction.  Fields of the document that the specification does not name
 * "ride along": they are stored in the key document but take no part in the
 * order key.  With an empty specification (no bytes, or an empty list) every
 * top-level field is a key field, ascending, in the order of the field names
 * (bytewise, a shorter name first).
 *
 * The document is walked once: its top-level entries are collected (name and
 * value item; nested ride-on values are skipped without recursion), then the
 * key is built field by field with the sop_key_* encoder.
 */
#include <math.h>
#include <stdlib.h>

#include "sop_int.h"

/* Bounds for messages. */
#define NAME_SHOWN 100

typedef struct spec_field {
    const unsigned char *name;
    size_t nlen;
    int ascending;
} spec_field;

typedef struct doc_entry {
    const unsigned char *name;
    size_t nlen;
    sop_doc_item val;
} doc_entry;

/* Small arrays live on the stack; larger ones are allocated. */
#define INLINE_FIELDS 16
#define INLINE_ENTRIES 32

static int names_equal(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int cmp_names(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int cmp_entries(const void *x, const void *y)
{
    const doc_entry *a = x, *b = y;
    return cmp_names(a->name, a->nlen, b->name, b->nlen);
}

/* Skip the children of container item `it` (already read).  Iterative: a
 * counter of items still to read.  Counts are bounded by the bytes left
 * (sop_doc_next checks that), so the counter cannot overflow. */
static int skip_children(sop_doc_reader *r, const sop_doc_item *it)
{
    size_t left = 0;
    if (it->type == SOP_DT_LIST)
        left = it->n;
    else if (it->type == SOP_DT_MAP)
        left = 2 * it->n;
    while (left > 0) {
        sop_doc_item c;
        int rc = sop_doc_next(r, &c);
        if (rc <= 0)
            return rc < 0 ? -rc : SOP_CORRUPT;
        left--;
        if (c.type == SOP_DT_LIST)
            left += c.n;
        else if (c.type == SOP_DT_MAP)
            left += 2 * c.n;
    }
    return SOP_OK;
}

/* ---- index specifications ------------------------------------------------ */

/* Parse spec into *fields (inline or allocated; the caller frees when
 * *fields != inline_buf).  An empty spec gives 0 fields. */
static int parse_spec(const void *spec, size_t n, spec_field *inline_buf, spec_field **fields,
                      size_t *count)
{
    *fields = inline_buf;
    *count = 0;
    if (n == 0)
        return SOP_OK;
    if (!spec)
        return sop_report(SOP_INVALID, "index spec: NULL data with %zu bytes", n);
    sop_doc_reader r;
    sop_doc_item it;
    sop_doc_reader_init(&r, spec, n);
    int rc = sop_doc_next(&r, &it);
    if (rc <= 0 || it.type != SOP_DT_LIST)
        return sop_report(SOP_INVALID,
                          "index spec must be a sopdoc list of [field_name, ascending] pairs");
    size_t k = it.n;
    spec_field *f = inline_buf;
    if (k > INLINE_FIELDS) {
        f = sop_calloc(k, sizeof *f);
        if (!f)
            return sop_report(SOP_NOMEM, "index spec of %zu fields: out of memory", k);
    }
    rc = SOP_OK;
    for (size_t i = 0; i < k && rc == SOP_OK; i++) {
        sop_doc_item pair, name, asc;
        if (sop_doc_next(&r, &pair) <= 0 || pair.type != SOP_DT_LIST || pair.n != 2 ||
            sop_doc_next(&r, &name) <= 0 || name.type != SOP_DT_STR ||
            sop_doc_next(&r, &asc) <= 0 ||
            (asc.type != SOP_DT_TRUE && asc.type != SOP_DT_FALSE)) {
            rc = sop_report(SOP_INVALID,
                            "index spec: entry %zu is not a [field_name (str), ascending (bool)] "
                            "pair",
                            i);
            break;
        }
        if (name.n == 0) {
            rc = sop_report(SOP_INVALID, "index spec: entry %zu has an empty field name", i);
            break;
        }
        f[i].name = name.p;
        f[i].nlen = name.n;
        f[i].ascending = asc.type == SOP_DT_TRUE;
        for (size_t j = 0; j < i; j++) {
            if (names_equal(f[j].name, f[j].nlen, name.p, name.n)) {
                rc = sop_report(SOP_INVALID, "index spec: field '%.*s' is listed twice",
                                (int)SOP_MIN(name.n, NAME_SHOWN), (const char *)name.p);
                break;
            }
        }
    }
    if (rc == SOP_OK && sop_doc_next(&r, &it) != 0)
        rc = sop_report(SOP_INVALID, "index spec: trailing bytes after the list");
    if (rc != SOP_OK) {
        if (f != inline_buf)
            sop_free(f);
        return rc;
    }
    *fields = f;
    *count = k;
    return SOP_OK;
}

int sop_index_spec_check(const void *spec, size_t n, size_t *nfields)
{
    spec_field inl[INLINE_FIELDS], *f;
    size_t k = 0;
    int rc = parse_spec(spec, n, inl, &f, &k);
    if (f != inl)
        sop_free(f);
    if (nfields)
        *nfields = rc == SOP_OK ? k : 0;
    return rc;
}

/* ---- key documents --------------------------------------------------------- */

/* A bigint item whose two's complement value fits 64 bits: 1 and *i or *u
 * set (*is_u for values above INT64_MAX); 0 otherwise. */
static int small_bigint(const sop_doc_item *it, int64_t *i, uint64_t *u, int *is_u)
{
    const unsigned char *p = it->p;
    size_t n = it->n;
    if (n == 0)
        return 0;
    int neg = p[0] & 0x80;
    /* drop sign-extension bytes */
    while (n > 1 && p[0] == (neg ? 0xFF : 0x00) && ((p[1] & 0x80) != 0) == (neg != 0)) {
        p++;
        n--;
    }
    if (!neg && n == 9 && p[0] == 0) { /* 2^63 .. 2^64-1 */
        p++;
        n--;
        uint64_t v = 0;
        for (size_t k = 0; k < n; k++)
            v = (v << 8) | p[k];
        *u = v;
        *is_u = 1;
        return 1;
    }
    if (n > 8)
        return 0;
    uint64_t v = neg ? UINT64_MAX : 0;
    for (size_t k = 0; k < n; k++)
        v = (v << 8) | p[k];
    *i = (int64_t)v;
    *is_u = 0;
    return 1;
}

static const char *type_name(int t)
{
    switch (t) {
    case SOP_DT_LIST: return "a list";
    case SOP_DT_MAP: return "a map";
    case SOP_DT_BIGINT: return "an integer beyond 64 bits";
    default: return "of an unsupported type";
    }
}

/* Append one field value to kb. */
static int encode_field(sop_keybuf *kb, const doc_entry *e, int descending)
{
    const sop_doc_item *v = &e->val;
    int nl = (int)SOP_MIN(e->nlen, NAME_SHOWN);
    const char *nm = (const char *)e->name;
    switch (v->type) {
    case SOP_DT_NULL:
        sop_key_null(kb, descending);
        break;
    case SOP_DT_FALSE:
    case SOP_DT_TRUE:
        sop_key_bool(kb, v->type == SOP_DT_TRUE, descending);
        break;
    case SOP_DT_INT:
        sop_key_int(kb, v->i, descending);
        break;
    case SOP_DT_UINT:
        sop_key_uint(kb, v->u, descending);
        break;
    case SOP_DT_DOUBLE:
        if (isnan(v->d))
            return sop_report(SOP_BAD_KEY, "key field '%.*s' is NaN, which has no order", nl, nm);
        sop_key_double(kb, v->d, descending);
        break;
    case SOP_DT_STR:
        sop_key_str(kb, (const char *)v->p, v->n, descending);
        break;
    case SOP_DT_BYTES:
        sop_key_bytes(kb, v->p, v->n, descending);
        break;
    case SOP_DT_BIGINT: {
        int64_t i;
        uint64_t u;
        int is_u;
        if (small_bigint(v, &i, &u, &is_u)) {
            if (is_u)
                sop_key_uint(kb, u, descending);
            else
                sop_key_int(kb, i, descending);
            break;
        }
    }
    /* fall through */
    default:
        return sop_report(SOP_BAD_KEY,
                          "key field '%.*s' is %s; key fields must be null, bool, int (64-bit), "
                          "float, str or bytes",
                          nl, nm, type_name(v->type));
    }
    if (kb->err != SOP_OK)
        return kb->err; /* the message was reported by the encoder */
    return SOP_OK;
}

int sop_key_from_doc(const sop_val *index_spec, const void *doc, size_t n, sop_keybuf *kb,
                     size_t *fields_used)
{
    if (fields_used)
        *fields_used = 0;
    if (!kb)
        return sop_report(SOP_MISUSE, "sop_key_from_doc: NULL key buffer");
    if (kb->data == NULL)
        sop_key_init(kb);
    if (kb->err != SOP_OK)
        return kb->err;
    if (!doc && n)
        return sop_report(SOP_MISUSE, "sop_key_from_doc: NULL document with %zu bytes", n);

    spec_field finl[INLINE_FIELDS], *spec = finl;
    size_t nspec = 0;
    doc_entry einl[INLINE_ENTRIES], *ents = einl;
    size_t nents = 0, used = 0;
    size_t start = kb->size;
    int rc = parse_spec(index_spec ? index_spec->data : NULL, index_spec ? index_spec->size : 0,
                        finl, &spec, &nspec);
    if (rc != SOP_OK)
        return rc;

    /* collect the top-level entries */
    sop_doc_reader r;
    sop_doc_item top;
    sop_doc_reader_init(&r, doc, n);
    int got = sop_doc_next(&r, &top);
    if (got < 0) {
        rc = sop_report(SOP_INVALID, "key document is malformed");
        goto out;
    }
    if (got == 0 || top.type != SOP_DT_MAP) {
        rc = sop_report(SOP_BAD_KEY, "a key document must be a map of field names to values");
        goto out;
    }
    if (top.n > INLINE_ENTRIES) {
        ents = sop_calloc(top.n, sizeof *ents);
        if (!ents) {
            ents = einl;
            rc = sop_report(SOP_NOMEM, "key document of %zu fields: out of memory", top.n);
            goto out;
        }
    }
    for (size_t i = 0; i < top.n; i++) {
        sop_doc_item name;
        doc_entry *e = &ents[nents];
        if (sop_doc_next(&r, &name) <= 0 || name.type != SOP_DT_STR ||
            sop_doc_next(&r, &e->val) <= 0) {
            rc = sop_report(SOP_INVALID, "key document is malformed (entry %zu)", i);
            goto out;
        }
        e->name = name.p;
        e->nlen = name.n;
        if ((e->val.type == SOP_DT_LIST || e->val.type == SOP_DT_MAP) &&
            (rc = skip_children(&r, &e->val)) != SOP_OK) {
            rc = sop_report(SOP_INVALID, "key document is malformed (field '%.*s')",
                            (int)SOP_MIN(e->nlen, NAME_SHOWN), (const char *)e->name);
            goto out;
        }
        nents++;
    }
    if (sop_doc_next(&r, &top) != 0) {
        rc = sop_report(SOP_INVALID, "key document has trailing bytes");
        goto out;
    }

    if (nspec == 0) {
        /* every field, by name */
        if (nents > 1)
            qsort(ents, nents, sizeof *ents, cmp_entries);
        for (size_t i = 0; i < nents; i++) {
            if (i > 0 && cmp_entries(&ents[i - 1], &ents[i]) == 0) {
                rc = sop_report(SOP_BAD_KEY, "key document has field '%.*s' twice",
                                (int)SOP_MIN(ents[i].nlen, NAME_SHOWN),
                                (const char *)ents[i].name);
                goto out;
            }
            if ((rc = encode_field(kb, &ents[i], 0)) != SOP_OK)
                goto out;
            used++;
        }
    } else {
        for (size_t f = 0; f < nspec; f++) {
            const doc_entry *hit = NULL;
            for (size_t i = 0; i < nents; i++) {
                if (names_equal(ents[i].name, ents[i].nlen, spec[f].name, spec[f].nlen)) {
                    hit = &ents[i];
                    break;
                }
            }
            if (!hit)
                break; /* a prefix key */
            if ((rc = encode_field(kb, hit, !spec[f].ascending)) != SOP_OK)
                goto out;
            used++;
        }
    }
    if (kb->size > SOP_MAX_KEY)
        rc = sop_report(SOP_KEY_TOO_LARGE, "encoded key longer than %d bytes", SOP_MAX_KEY);

out:
    if (spec != finl)
        sop_free(spec);
    if (ents != einl)
        sop_free(ents);
    if (rc != SOP_OK) {
        /* leave kb as it was (without a sticky error) */
        kb->size = start;
        kb->err = SOP_OK;
        return rc;
    }
    if (fields_used)
        *fields_used = used;
    return SOP_OK;
}
