/*
 * lidtab.h - a hash table keyed by logical id (a nonzero uint64_t): open
 * addressing with linear probing and backward-shift deletion, over entries
 * of one fixed size whose first field is the uint64_t key.  A transaction
 * keeps its private nodes and its new value blobs in two of these (txn.c).
 */
#ifndef SOP_LIDTAB_H
#define SOP_LIDTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct lidtab {
    unsigned char *slots; /* (mask + 1) entries; a zero key marks a free slot */
    size_t esize;         /* entry size, a multiple of 8 */
    size_t mask;          /* capacity - 1 (a power of two); slots NULL: empty */
    size_t n;             /* entries in use */
} lidtab;

void lidtab_init(lidtab *t, size_t esize);
void lidtab_free(lidtab *t);
/* The entry for key, or NULL. */
void *lidtab_find(const lidtab *t, uint64_t key);
/* A new entry for key (which must be absent), zeroed but for the key; NULL
 * when memory ran out (reported as SOP_NOMEM).  Entry pointers stay valid
 * until the next add or delete. */
void *lidtab_add(lidtab *t, uint64_t key);
/* Remove an entry (a pointer from find, add or at). */
void lidtab_del(lidtab *t, void *entry);
/* The entry in slot i (0 <= i < lidtab_slots(t)), or NULL when the slot is free. */
void *lidtab_at(const lidtab *t, size_t i);
size_t lidtab_slots(const lidtab *t);

#endif
