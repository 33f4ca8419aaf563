/*
 * id.c - text form of item ids: sop_id_format (canonical lowercase
 * 8-4-4-4-12 UUID text) and sop_id_parse (36-char dashed or 32 hex digits,
 * case-insensitive).
 */
#include "sop_int.h"

void sop_id_format(const sop_id *id, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *w = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *w++ = '-';
        *w++ = hex[id->bytes[i] >> 4];
        *w++ = hex[id->bytes[i] & 15];
    }
    *w = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sop_id_parse(const char *text, size_t n, sop_id *id)
{
    sop_id tmp;
    memset(id, 0, sizeof *id);
    if (!text || (n != 36 && n != 32))
        return sop_report(SOP_INVALID, "item id: expected 36 or 32 characters, got %zu", n);
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (n == 36 && (i == 4 || i == 6 || i == 8 || i == 10)) {
            if (text[k] != '-')
                return sop_report(SOP_INVALID, "item id: expected '-' at position %zu", k);
            k++;
        }
        int hi = hexval(text[k]), lo = hexval(text[k + 1]);
        if (hi < 0 || lo < 0)
            return sop_report(SOP_INVALID, "item id: invalid hex digit near position %zu", k);
        tmp.bytes[i] = (unsigned char)(hi << 4 | lo);
        k += 2;
    }
    *id = tmp;
    return SOP_OK;
}
