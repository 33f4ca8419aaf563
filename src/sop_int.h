/*
 * sop_int.h - small shared internal header: allocation, error reporting and
 * defensive macros used by every module of libsop.  Keep it small: module
 * interfaces live in their own x.h files.
 */
#ifndef SOP_INT_H
#define SOP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sop.h"

/* ---- allocation: every heap allocation of the library goes through these */
void *sop_malloc(size_t n);
void *sop_calloc(size_t count, size_t size); /* overflow-checked */
void *sop_realloc(void *p, size_t n);
char *sop_strdup(const char *s);
/* sop_free() is public (sop.h). */

/* ---- error reporting.
 * sop_report(rc, fmt, ...) records a detail message for the calling thread
 * (read back with sop_errmsg()) and returns rc, so callers write
 *     return sop_report(SOP_CORRUPT, "node %llu: bad checksum", lid);
 * SOP_CORRUPT_AT(fmt, ...) does the same for corruption and is the single
 * breakpoint for every corruption found by the library. */
int sop_report(int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int sop_corrupt_at(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#define SOP_CORRUPT_AT(...) sop_corrupt_at(__FILE__, __LINE__, __VA_ARGS__)
/* Keep the current detail message but return rc (the message was set deeper). */
void sop_clear_errmsg(void);

/* ---- control flow: rc + one cleanup label ("fail").
 * SOP_CHECK(x): evaluate x into rc; on error goto fail.
 * SOP_KEEP_FIRST(rc, x): run cleanup x, keep the first error in rc. */
#define SOP_CHECK(x)              \
    do {                          \
        if ((rc = (x)) != SOP_OK) \
            goto fail;            \
    } while (0)
#define SOP_KEEP_FIRST(rc, x)           \
    do {                                \
        int rc2_ = (x);                 \
        if ((rc) == SOP_OK)             \
            (rc) = rc2_;                \
    } while (0)

/* ---- defensive macros.
 * SOP_ASSERT(x): an invariant; aborts in debug builds, nothing in release.
 * SOP_ALWAYS(x) / SOP_NEVER(x): a condition believed always true / never
 *   true, handled anyway (the code heals rather than breaks); asserts in
 *   debug builds. */
#ifdef NDEBUG
#define SOP_ASSERT(x) ((void)0)
#define SOP_ALWAYS(x) (x)
#define SOP_NEVER(x) (x)
#else
#include <assert.h>
#define SOP_ASSERT(x) assert(x)
#define SOP_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define SOP_NEVER(x) ((x) ? (assert(0 && #x), 1) : 0)
#endif

#define SOP_UNUSED(x) ((void)(x))
#define SOP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SOP_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- little-endian fixed-width access (the on-disk byte order) */
static inline void sop_put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static inline void sop_put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static inline void sop_put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static inline uint16_t sop_get16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sop_get32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static inline uint64_t sop_get64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }

/* ---- unsigned LEB128 varints. sop_varint_get returns bytes consumed, or 0
 * when the input is truncated or longer than 10 bytes. */
static inline size_t sop_varint_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (unsigned char)(v | 0x80); v >>= 7; }
    p[n++] = (unsigned char)v;
    return n;
}
static inline size_t sop_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}
static inline size_t sop_varint_get(const unsigned char *p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) { *out = v; return i + 1; }
    }
    return 0;
}

/* ---- checksums (crc.c): CRC-32C (Castagnoli). */
uint32_t sop_crc32c(uint32_t crc, const void *data, size_t n);

/* ---- ids (util.c) */
void sop_id_generate(sop_id *id); /* time-ordered (UUIDv7-like), unique */
uint64_t sop_now_ms(void);        /* wall clock ms */
uint64_t sop_mono_ns(void);       /* monotonic ns */

#endif /* SOP_INT_H */
