/* fuzz_key.c - libFuzzer target: the key decoder on arbitrary bytes; what it
 * accepts must re-encode to the same bytes. */
#include <stdlib.h>

#include "sop_int.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    sop_key_reader r;
    sop_key_field f;
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_key_reader_init(&r, data, size);
    int rc;
    while ((rc = sop_key_next(&r, &f)) == 1) {
        switch (f.type) {
        case SOP_KT_NULL: sop_key_null(&kb, f.descending); break;
        case SOP_KT_BOOL: sop_key_bool(&kb, (int)f.i, f.descending); break;
        case SOP_KT_INT: sop_key_int(&kb, f.i, f.descending); break;
        case SOP_KT_UINT: sop_key_uint(&kb, f.u, f.descending); break;
        case SOP_KT_DOUBLE: sop_key_double(&kb, f.d, f.descending); break;
        case SOP_KT_STR: sop_key_str(&kb, (const char *)f.p, f.n, f.descending); break;
        default: sop_key_bytes(&kb, f.p, f.n, f.descending); break;
        }
    }
    if (rc == 0 && !kb.err && (kb.size != size || memcmp(kb.data, data, size) != 0))
        abort();
    sop_key_reader_free(&r);
    sop_key_free(&kb);
    return 0;
}
