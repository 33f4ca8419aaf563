/* fuzz_node.c - libFuzzer target: node_decode on arbitrary bytes must fail
 * cleanly or give a node that re-encodes to exactly the same bytes. */
#include <stdlib.h>

#include "node.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    node *n;
    if (node_decode(data, size, 7, &n) != SOP_OK)
        return 0;
    size_t sz = node_encoded_size(n);
    unsigned char *out = malloc(sz ? sz : 1);
    node_encode(n, out, NULL, NULL);
    if (sz != size || memcmp(out, data, size) != 0)
        abort(); /* decode accepted a non-canonical encoding */
    for (uint32_t i = 0; i < n->count; i++) {
        node_item it;
        node_get(n, i, &it);
        int eq;
        if (node_lower_bound(n, it.key, it.klen, it.id, &eq) != i)
            abort();
    }
    free(out);
    node_unref(n);
    return 0;
}
