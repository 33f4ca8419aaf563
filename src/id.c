/*
 * id.c - text form of item ids: sop_id_format (canonical lowercase
 * 8-4-4-4-12 UUID text) and sop_id_parse (36-char dashed or 32 hex digits,
 * case-insensitive).
 */
#include "sop_int.h"

/* the two lowercase hex digits of every byte value */
#define HEXC(n) ((char)((n) < 10 ? '0' + (n) : 'a' - 10 + (n)))
#define HEXP(b) {HEXC((b) >> 4), HEXC((b)&15)}
#define HEXP4(b) HEXP(b), HEXP((b) + 1), HEXP((b) + 2), HEXP((b) + 3)
#define HEXP16(b) HEXP4(b), HEXP4((b) + 4), HEXP4((b) + 8), HEXP4((b) + 12)
#define HEXP64(b) HEXP16(b), HEXP16((b) + 16), HEXP16((b) + 32), HEXP16((b) + 48)
static const char hex_pairs[256][2] = {HEXP64(0), HEXP64(64), HEXP64(128), HEXP64(192)};

void sop_id_format(const sop_id *id, char out[37])
{
    /* bytes 0-3, 4-5, 6-7, 8-9, 10-15, a dash after each group but the last */
    char *w = out;
    for (int i = 0; i < 16; i++) {
        memcpy(w, hex_pairs[id->bytes[i]], 2);
        w += 2;
        if (i == 3 || i == 5 || i == 7 || i == 9)
            *w++ = '-';
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
