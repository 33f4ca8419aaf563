/*
 * catalog.h - the catalog of stores: for each store its definition (name,
 * id, root lid, options) and its state (item count, sequence number of the
 * last commit that changed it).  A catalog is immutable and versioned: each
 * commit that touches stores produces a new one; transactions keep a
 * reference to the version of their snapshot.
 *
 * Changes travel in commit records as "catalog ops" (encoded here):
 *   op 1 CREATE: u32 id, u64 root lid, u32 slot_length, u8 unique,
 *                u8 value placement, u8 leaf_load_balancing, u8 primitive key,
 *                u16 name length + name, u32 length + description,
 *                u32 length + index spec, u32 length + metadata
 *   op 2 DROP:   u32 id
 *   op 3 TOUCH:  u32 id, i64 count delta   (the store changed in this commit)
 */
#ifndef SOP_CATALOG_H
#define SOP_CATALOG_H

#include "log.h"

typedef struct store_def {
    int refs;
    uint32_t id;
    char *name;
    uint64_t root;
    uint32_t slot_length;
    uint8_t unique, placement, llb, primitive;
    char *description;
    unsigned char *index_spec;
    uint32_t index_spec_len;
    unsigned char *metadata;
    uint32_t metadata_len;
} store_def;

typedef struct cat_entry {
    store_def *def;
    uint64_t count;
    uint64_t last_mod; /* seq of the last commit that changed the store */
} cat_entry;

typedef struct catalog {
    int refs;
    uint64_t seq;
    size_t n;
    cat_entry *e; /* sorted by name */
} catalog;

catalog *cat_empty(void);
void cat_ref(catalog *c);
void cat_unref(catalog *c);
const cat_entry *cat_find(const catalog *c, const char *name);
const cat_entry *cat_find_id(const catalog *c, uint32_t id);

/* Store definitions */
store_def *def_new(uint32_t id, const char *name, uint64_t root, const sop_store_options *o);
void def_ref(store_def *d);
void def_unref(store_def *d);
/* The options a definition was created with (pointers borrow from d). */
void def_options(const store_def *d, sop_store_options *o);
/* 1 if an existing store is compatible with requested options. */
int def_compatible(const store_def *d, const sop_store_options *o);

/* Encoding of ops */
void cat_op_create(sbuf *b, const store_def *d);
void cat_op_drop(sbuf *b, uint32_t id);
void cat_op_touch(sbuf *b, uint32_t id, int64_t delta);

/* Apply ops to old producing a new catalog at seq (SOP_CORRUPT on malformed ops). */
int cat_apply(const catalog *old, uint64_t seq, const unsigned char *ops, size_t len, catalog **out);

/* Store-name rule: 1..255 bytes, no '/', '\\', NUL, not "." or "..". */
int store_name_check(const char *name);

#endif
