/*
 * test_utf8.c - the UTF-8 check of sop_doc_str (doc.c), whose ASCII fast
 * path tests 8 bytes at a time: every placement of valid and invalid
 * multi-byte sequences around the 8-byte steps, and random strings, against
 * a byte-wise reference validator.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sop.h"
#include "test.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Reference: RFC 3629 well-formed UTF-8, byte by byte. */
static int ref_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], len, lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else
            return 0;
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (unsigned k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += len;
    }
    return 1;
}

/* Whether sop_doc_str accepts s. */
static int doc_accepts(const unsigned char *s, size_t n)
{
    sop_docbuf d;
    int ok;
    sop_doc_init(&d);
    sop_doc_str(&d, (const char *)s, n);
    ok = d.err == SOP_OK;
    sop_doc_free(&d);
    return ok;
}

static const struct {
    const char *b;
    size_t n;
} seqs[] = {
    {"\xC3\xA9", 2},         {"\xE2\x82\xAC", 3},     {"\xF0\x9F\x98\x80", 4},
    {"\xF4\x8F\xBF\xBF", 4}, {"\x80", 1},             {"\xC0\x80", 2},
    {"\xC3", 1},             {"\xE2\x82", 2},         {"\xED\xA0\x80", 3},
    {"\xE0\x80\x80", 3},     {"\xF4\x90\x80\x80", 4}, {"\xF0\x8F\xBF\xBF", 4},
    {"\xFF", 1},             {"\xC3\x28", 2},         {"\x00", 1},
};

TEST(utf8_placements)
{
    unsigned char buf[80];
    int bad = 0;
    for (size_t s = 0; s < sizeof seqs / sizeof seqs[0]; s++) {
        for (size_t len = 0; len <= 40; len++) {
            for (size_t at = 0; at + seqs[s].n <= len; at++) {
                memset(buf, 'a', len);
                memcpy(buf + at, seqs[s].b, seqs[s].n);
                if (doc_accepts(buf, len) != ref_valid(buf, len))
                    bad++;
            }
            /* cut at every length: truncated sequences at the end */
            memset(buf, 'a', len);
            if (len >= seqs[s].n)
                memcpy(buf + len - seqs[s].n, seqs[s].b, seqs[s].n);
            for (size_t cut = 0; cut <= len; cut++)
                if (doc_accepts(buf, cut) != ref_valid(buf, cut))
                    bad++;
        }
    }
    CHECK(bad == 0);
}

TEST(utf8_random)
{
    unsigned char buf[80];
    int bad = 0, valid = 0;
    for (int r = 0; r < 200000; r++) {
        size_t len = rnd() % sizeof buf;
        for (size_t j = 0; j < len;) {
            if (rnd() % 8) { /* mostly ASCII */
                buf[j++] = (unsigned char)(rnd() % 0x80);
            } else {
                size_t s = rnd() % (sizeof seqs / sizeof seqs[0]);
                if (rnd() % 4 == 0) {
                    buf[j++] = (unsigned char)rnd();
                    continue;
                }
                for (size_t k = 0; k < seqs[s].n && j < len; k++)
                    buf[j++] = (unsigned char)seqs[s].b[k];
            }
        }
        valid += ref_valid(buf, len);
        if (doc_accepts(buf, len) != ref_valid(buf, len))
            bad++;
    }
    CHECK(bad == 0);
    CHECK(valid > 1000); /* both outcomes exercised */
}

int main(void)
{
    RUN(utf8_placements);
    RUN(utf8_random);
    TEST_EXIT();
}
