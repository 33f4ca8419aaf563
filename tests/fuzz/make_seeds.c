/* make_seeds.c - writes the seed corpus of the fuzz targets (valid inputs of
 * each decoder).  Run once; the corpus is checked in under corpus/. */
#include <stdio.h>
#include <sys/stat.h>

#include "catalog.h"
#include "node.h"

static void put(const char *dir, int n, const void *p, size_t len)
{
    char path[256];
    mkdir("corpus", 0755);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/seed-%02d", dir, n);
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, len, f);
    fclose(f);
}

int main(void)
{
    /* nodes */
    for (int kind = NODE_LEAF; kind <= NODE_INTERNAL; kind++) {
        node *n = node_new(7, kind);
        for (int i = 0; i < 5; i++) {
            unsigned char key[8], id[16] = {0};
            snprintf((char *)key, sizeof key, "k%03d", i);
            id[15] = (unsigned char)i;
            if (kind == NODE_LEAF) {
                node_item it = {key, 4, id, i == 2 ? ITEM_HAS_DOC : 0, (const unsigned char *)"d", i == 2, (const unsigned char *)"value", 5};
                node_leaf_insert(n, (uint32_t)i, &it);
            } else {
                node_internal_insert(n, (uint32_t)i, key, 4, id, (uint64_t)(100 + i));
            }
        }
        size_t sz = node_encoded_size(n);
        unsigned char buf[4096];
        node_encode(n, buf, NULL, NULL);
        put("corpus/node", kind, buf, sz);
        node_unref(n);
    }
    /* commit records with catalog ops */
    sbuf b = {0}, ops = {0};
    sop_store_options o = {8, 1, 0, 0, 1, "desc", {0, NULL}, {2, "{}"}};
    store_def *d = def_new(3, "users", 42, &o);
    cat_op_create(&ops, d);
    cat_op_touch(&ops, 3, 5);
    log_blob_ref refs[1] = {{42, 96, 10}};
    log_commit c = {0};
    c.seq = 9;
    c.next_lid = 43;
    c.next_store_id = 4;
    c.n_blobs = 1;
    c.blobs = refs;
    c.cat_ops = ops.p;
    c.cat_ops_len = (uint32_t)ops.len;
    log_batch_begin(&b);
    size_t start = b.len;
    { unsigned char hdr[LOG_BATCH_HEADER]; log_batch_finish(&b, 64, 0, &c, hdr); }
    put("corpus/log", 1, b.p + start, b.len - start);
    put("corpus/log", 2, ops.p, ops.len);
    def_unref(d);
    /* keys */
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_key_str(&kb, "US", 2, 0);
    sop_key_int(&kb, -42, 1);
    sop_key_double(&kb, 2.5, 0);
    sop_key_null(&kb, 0);
    sop_key_bytes(&kb, "\0x", 2, 1);
    put("corpus/key", 1, kb.data, kb.size);
    /* documents */
    sop_docbuf db;
    sop_doc_init(&db);
    sop_doc_map(&db, 3);
    sop_doc_str(&db, "name", 4);
    sop_doc_str(&db, "Alice", 5);
    sop_doc_str(&db, "tags", 4);
    sop_doc_list(&db, 2);
    sop_doc_int(&db, -7);
    sop_doc_double(&db, 1.5);
    sop_doc_str(&db, "raw", 3);
    sop_doc_bytes(&db, "\1\2", 2);
    put("corpus/doc", 1, db.data, db.size);
    return 0;
}
