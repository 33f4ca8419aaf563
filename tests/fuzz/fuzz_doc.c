/* fuzz_doc.c - libFuzzer target: sopdoc validation, tokenizing and JSON
 * rendering on arbitrary bytes must agree and never read out of bounds. */
#include <stdlib.h>

#include "sop_int.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int valid = sop_doc_validate(data, size) == SOP_OK;
    char *json = NULL;
    size_t len = 0;
    int rendered = sop_doc_to_json(data, size, &json, &len) == SOP_OK;
    if (valid != rendered)
        abort();
    sop_free(json);
    sop_doc_reader r;
    sop_doc_item it;
    sop_doc_reader_init(&r, data, size);
    for (int i = 0; i < 100000 && sop_doc_next(&r, &it) == 1; i++)
        ;
    /* the same bytes as a key document, with the default order and as a
     * one-field index specification */
    sop_keybuf kb;
    sop_key_init(&kb);
    size_t used = 0;
    sop_val none = {0, NULL};
    sop_key_from_doc(&none, data, size, &kb, &used);
    sop_key_reset(&kb);
    if (size > 2) {
        sop_val spec = {size / 2, data};
        sop_key_from_doc(&spec, data + size / 2, size - size / 2, &kb, &used);
    }
    sop_key_free(&kb);
    return 0;
}
