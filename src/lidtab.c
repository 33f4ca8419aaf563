/*
 * lidtab.c - the logical-id hash table (see lidtab.h).
 */
#include <string.h>

#include "lidtab.h"
#include "sop_int.h"

static size_t hash(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static uint64_t key_at(const lidtab *t, size_t i)
{
    uint64_t k;
    memcpy(&k, t->slots + i * t->esize, sizeof k);
    return k;
}

void lidtab_init(lidtab *t, size_t esize)
{
    memset(t, 0, sizeof *t);
    t->esize = esize;
}

void lidtab_free(lidtab *t)
{
    sop_free(t->slots);
    lidtab_init(t, t->esize);
}

size_t lidtab_slots(const lidtab *t)
{
    return t->slots ? t->mask + 1 : 0;
}

void *lidtab_at(const lidtab *t, size_t i)
{
    return key_at(t, i) ? t->slots + i * t->esize : NULL;
}

void *lidtab_find(const lidtab *t, uint64_t key)
{
    if (!t->slots)
        return NULL;
    for (size_t i = hash(key) & t->mask;; i = (i + 1) & t->mask) {
        uint64_t k = key_at(t, i);
        if (k == key)
            return t->slots + i * t->esize;
        if (!k)
            return NULL;
    }
}

/* the free slot where key goes */
static size_t home_slot(const lidtab *t, uint64_t key)
{
    size_t i = hash(key) & t->mask;
    while (key_at(t, i))
        i = (i + 1) & t->mask;
    return i;
}

void *lidtab_add(lidtab *t, uint64_t key)
{
    if (!t->slots || (t->n + 1) * 2 > t->mask + 1) {
        size_t ncap = t->slots ? (t->mask + 1) * 2 : 64;
        lidtab g = {sop_calloc(ncap, t->esize), t->esize, ncap - 1, t->n};
        if (!g.slots) {
            sop_report(SOP_NOMEM, "transaction table of %zu entries", ncap);
            return NULL;
        }
        for (size_t i = 0; i < lidtab_slots(t); i++) {
            uint64_t k = key_at(t, i);
            if (k)
                memcpy(g.slots + home_slot(&g, k) * t->esize, t->slots + i * t->esize, t->esize);
        }
        sop_free(t->slots);
        *t = g;
    }
    unsigned char *e = t->slots + home_slot(t, key) * t->esize;
    memset(e, 0, t->esize);
    memcpy(e, &key, sizeof key);
    t->n++;
    return e;
}

void lidtab_del(lidtab *t, void *entry)
{
    size_t i = (size_t)((unsigned char *)entry - t->slots) / t->esize, j = i;
    for (;;) { /* backward-shift: move later entries of the probe run back */
        j = (j + 1) & t->mask;
        uint64_t k = key_at(t, j);
        if (!k)
            break;
        size_t home = hash(k) & t->mask;
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            memcpy(t->slots + i * t->esize, t->slots + j * t->esize, t->esize);
            i = j;
        }
    }
    memset(t->slots + i * t->esize, 0, t->esize);
    t->n--;
}
