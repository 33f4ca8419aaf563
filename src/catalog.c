/*
 * catalog.c - versioned catalog of stores and the encoding of catalog ops
 * carried by commit records (see catalog.h).
 */
#include <stdlib.h>

#include "catalog.h"

catalog *cat_empty(void)
{
    catalog *c = sop_calloc(1, sizeof *c);
    if (c)
        c->refs = 1;
    return c;
}

void cat_ref(catalog *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void cat_unref(catalog *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < c->n; i++)
        def_unref(c->e[i].def);
    sop_free(c->e);
    sop_free(c);
}

const cat_entry *cat_find(const catalog *c, const char *name)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(c->e[mid].def->name, name);
        if (cmp == 0)
            return &c->e[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const cat_entry *cat_find_id(const catalog *c, uint32_t id)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].def->id == id)
            return &c->e[i];
    return NULL;
}

static int dup_bytes(unsigned char **dst, uint32_t *dlen, const void *src, size_t n)
{
    *dst = NULL;
    *dlen = (uint32_t)n;
    if (!n)
        return 1;
    *dst = sop_malloc(n);
    if (!*dst)
        return 0;
    memcpy(*dst, src, n);
    return 1;
}

store_def *def_new(uint32_t id, const char *name, uint64_t root, const sop_store_options *o)
{
    store_def *d = sop_calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->refs = 1;
    d->id = id;
    d->root = root;
    d->slot_length = o->slot_length;
    d->unique = (uint8_t)(o->is_unique != 0);
    d->placement = (uint8_t)o->value_placement;
    d->llb = (uint8_t)(o->leaf_load_balancing != 0);
    d->primitive = (uint8_t)(o->is_primitive_key != 0);
    d->name = sop_strdup(name);
    d->description = sop_strdup(o->description ? o->description : "");
    if (!d->name || !d->description ||
        !dup_bytes(&d->index_spec, &d->index_spec_len, o->index_spec.data, o->index_spec.size) ||
        !dup_bytes(&d->metadata, &d->metadata_len, o->metadata.data, o->metadata.size)) {
        def_unref(d);
        return NULL;
    }
    return d;
}

void def_ref(store_def *d)
{
    __atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
}

void def_unref(store_def *d)
{
    if (!d || __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    sop_free(d->name);
    sop_free(d->description);
    sop_free(d->index_spec);
    sop_free(d->metadata);
    sop_free(d);
}

void def_options(const store_def *d, sop_store_options *o)
{
    memset(o, 0, sizeof *o);
    o->slot_length = d->slot_length;
    o->is_unique = d->unique;
    o->value_placement = d->placement;
    o->leaf_load_balancing = d->llb;
    o->is_primitive_key = d->primitive;
    o->description = d->description;
    o->index_spec = (sop_val){d->index_spec_len, d->index_spec};
    o->metadata = (sop_val){d->metadata_len, d->metadata};
}

int def_compatible(const store_def *d, const sop_store_options *o)
{
    return d->slot_length == o->slot_length && d->unique == (o->is_unique != 0) &&
           d->placement == o->value_placement && d->llb == (o->leaf_load_balancing != 0) &&
           d->primitive == (o->is_primitive_key != 0) && d->index_spec_len == o->index_spec.size &&
           (!d->index_spec_len || !memcmp(d->index_spec, o->index_spec.data, d->index_spec_len));
}

int store_name_check(const char *name)
{
    if (!name)
        return sop_report(SOP_BAD_NAME, "store name is missing");
    size_t n = strlen(name);
    if (n == 0 || n > SOP_MAX_STORE_NAME)
        return sop_report(SOP_BAD_NAME, "store name must be 1..%d bytes (got %zu)", SOP_MAX_STORE_NAME, n);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return sop_report(SOP_BAD_NAME, "store name '%s' is reserved", name);
    for (size_t i = 0; i < n; i++)
        if (name[i] == '/' || name[i] == '\\')
            return sop_report(SOP_BAD_NAME, "store name '%s' contains a path separator", name);
    if (strstr(name, ".."))
        return sop_report(SOP_BAD_NAME, "store name '%s' contains '..'", name);
    return SOP_OK;
}

/* ------------------------------------------------------------ encoding */
void cat_op_create(sbuf *b, const store_def *d)
{
    size_t nl = strlen(d->name), dl = strlen(d->description);
    sbuf_u8(b, 1);
    sbuf_u32(b, d->id);
    sbuf_u64(b, d->root);
    sbuf_u32(b, d->slot_length);
    sbuf_u8(b, d->unique);
    sbuf_u8(b, d->placement);
    sbuf_u8(b, d->llb);
    sbuf_u8(b, d->primitive);
    unsigned char t[2];
    sop_put16(t, (uint16_t)nl);
    sbuf_put(b, t, 2);
    sbuf_put(b, d->name, nl);
    sbuf_u32(b, (uint32_t)dl);
    sbuf_put(b, d->description, dl);
    sbuf_u32(b, d->index_spec_len);
    sbuf_put(b, d->index_spec, d->index_spec_len);
    sbuf_u32(b, d->metadata_len);
    sbuf_put(b, d->metadata, d->metadata_len);
}

void cat_op_drop(sbuf *b, uint32_t id)
{
    sbuf_u8(b, 2);
    sbuf_u32(b, id);
}

void cat_op_touch(sbuf *b, uint32_t id, int64_t delta)
{
    sbuf_u8(b, 3);
    sbuf_u32(b, id);
    sbuf_u64(b, (uint64_t)delta);
}

/* ------------------------------------------------------------- applying */
typedef struct rd {
    const unsigned char *p, *end;
    int bad;
} rd;
static uint64_t rd_n(rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}
static const unsigned char *rd_bytes(rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    return p;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const cat_entry *)a)->def->name, ((const cat_entry *)b)->def->name);
}

int cat_apply(const catalog *old, uint64_t seq, const unsigned char *ops, size_t len, catalog **out)
{
    *out = NULL;
    catalog *c = sop_calloc(1, sizeof *c);
    size_t cap = old->n + 8;
    if (c)
        c->e = sop_calloc(cap, sizeof *c->e);
    if (!c || !c->e) {
        sop_free(c);
        return sop_report(SOP_NOMEM, "catalog");
    }
    c->refs = 1;
    c->seq = seq;
    c->n = old->n;
    for (size_t i = 0; i < old->n; i++) {
        c->e[i] = old->e[i];
        def_ref(c->e[i].def);
    }
    rd r = {ops, ops + len, 0};
    int rc = SOP_OK, sorted = 1;
    while (r.p < r.end && !r.bad) {
        unsigned op = (unsigned)rd_n(&r, 1);
        if (op == 1) {
            sop_store_options o;
            memset(&o, 0, sizeof o);
            uint32_t id = (uint32_t)rd_n(&r, 4);
            uint64_t root = rd_n(&r, 8);
            o.slot_length = (uint32_t)rd_n(&r, 4);
            o.is_unique = (int)rd_n(&r, 1);
            o.value_placement = (int)rd_n(&r, 1);
            o.leaf_load_balancing = (int)rd_n(&r, 1);
            o.is_primitive_key = (int)rd_n(&r, 1);
            size_t nl = (size_t)rd_n(&r, 2);
            const unsigned char *name = rd_bytes(&r, nl);
            size_t dl = (size_t)rd_n(&r, 4);
            const unsigned char *desc = rd_bytes(&r, dl);
            o.index_spec.size = (size_t)rd_n(&r, 4);
            o.index_spec.data = rd_bytes(&r, o.index_spec.size);
            o.metadata.size = (size_t)rd_n(&r, 4);
            o.metadata.data = rd_bytes(&r, o.metadata.size);
            if (r.bad)
                break;
            char nbuf[SOP_MAX_STORE_NAME + 1];
            if (nl == 0 || nl > SOP_MAX_STORE_NAME || memchr(name, 0, nl) || o.slot_length < 2 ||
                o.value_placement > 2 || !root) {
                r.bad = 1;
                break;
            }
            memcpy(nbuf, name, nl);
            nbuf[nl] = 0;
            char *d = sop_malloc(dl + 1);
            if (!d) {
                rc = sop_report(SOP_NOMEM, "catalog");
                break;
            }
            memcpy(d, desc, dl);
            d[dl] = 0;
            o.description = d;
            store_def *def = def_new(id, nbuf, root, &o);
            sop_free(d);
            if (!def) {
                rc = sop_report(SOP_NOMEM, "catalog");
                break;
            }
            for (size_t i = 0; i < c->n; i++)
                if (c->e[i].def->id == id || !strcmp(c->e[i].def->name, nbuf))
                    r.bad = 1;
            if (r.bad) {
                def_unref(def);
                break;
            }
            if (c->n == cap) {
                cap *= 2;
                cat_entry *ne = sop_realloc(c->e, cap * sizeof *ne);
                if (!ne) {
                    def_unref(def);
                    rc = sop_report(SOP_NOMEM, "catalog");
                    break;
                }
                c->e = ne;
            }
            c->e[c->n++] = (cat_entry){def, 0, seq};
            sorted = 0;
        } else if (op == 2) {
            uint32_t id = (uint32_t)rd_n(&r, 4);
            size_t i = 0;
            while (i < c->n && c->e[i].def->id != id)
                i++;
            if (r.bad || i == c->n) {
                r.bad = 1;
                break;
            }
            def_unref(c->e[i].def);
            memmove(&c->e[i], &c->e[i + 1], (c->n - i - 1) * sizeof *c->e);
            c->n--;
        } else if (op == 3) {
            uint32_t id = (uint32_t)rd_n(&r, 4);
            int64_t delta = (int64_t)rd_n(&r, 8);
            size_t i = 0;
            while (i < c->n && c->e[i].def->id != id)
                i++;
            /* unsigned arithmetic: damaged input must not overflow */
            uint64_t mag = delta < 0 ? (uint64_t)0 - (uint64_t)delta : (uint64_t)delta;
            if (r.bad || i == c->n || (delta < 0 && mag > c->e[i].count) ||
                (delta > 0 && c->e[i].count > UINT64_MAX - mag)) {
                r.bad = 1;
                break;
            }
            c->e[i].count = delta < 0 ? c->e[i].count - mag : c->e[i].count + mag;
            c->e[i].last_mod = seq;
        } else {
            r.bad = 1;
        }
    }
    if (rc == SOP_OK && r.bad)
        rc = SOP_CORRUPT_AT("commit %llu: malformed catalog changes", (unsigned long long)seq);
    if (rc != SOP_OK) {
        cat_unref(c);
        return rc;
    }
    if (!sorted)
        qsort(c->e, c->n, sizeof *c->e, entry_cmp);
    *out = c;
    return SOP_OK;
}
