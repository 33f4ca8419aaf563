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
    return 0;
}
