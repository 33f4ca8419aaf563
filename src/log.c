/*
 * log.c - commit log encoding, blob reads and recovery scans (see log.h for
 * the byte layouts).
 */
#include <stdio.h>

#include "log.h"

#define MAGIC_BATCH 0x43504F53u /* "SOPC" */
#define MAGIC_BLOB 0x42504F53u  /* "SOPB" */
#define MAGIC_TRAIL 0x54504F53u /* "SOPT" */
static const unsigned char file_magic[8] = {'S', 'O', 'P', 'L', 'O', 'G', '1', 0};

/* ---------------------------------------------------------------- sbuf */
void sbuf_free(sbuf *b)
{
    sop_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

unsigned char *sbuf_reserve(sbuf *b, size_t n)
{
    if (b->err)
        return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = sop_realloc(b->p, cap);
        if (!p) {
            b->err = SOP_NOMEM;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

void sbuf_put(sbuf *b, const void *p, size_t n)
{
    unsigned char *d = sbuf_reserve(b, n);
    if (d) {
        if (n)
            memcpy(d, p, n);
        b->len += n;
    }
}
void sbuf_u8(sbuf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    sbuf_put(b, &c, 1);
}
void sbuf_u32(sbuf *b, uint32_t v)
{
    unsigned char t[4];
    sop_put32(t, v);
    sbuf_put(b, t, 4);
}
void sbuf_u64(sbuf *b, uint64_t v)
{
    unsigned char t[8];
    sop_put64(t, v);
    sbuf_put(b, t, 8);
}

void log_commit_free(log_commit *c)
{
    sop_free(c->blobs);
    sop_free(c->freed);
    c->blobs = NULL;
    c->freed = NULL;
}

/* ---------------------------------------------------------- file header */
void log_file_header(unsigned char out[LOG_FILE_HEADER], uint32_t file_no, const unsigned char dbid[16])
{
    memset(out, 0, LOG_FILE_HEADER);
    memcpy(out, file_magic, 8);
    sop_put32(out + 8, LOG_FORMAT_VERSION);
    sop_put32(out + 12, file_no);
    memcpy(out + 16, dbid, 16);
    sop_put32(out + 60, sop_crc32c(0, out, 60));
}

int log_file_header_check(const unsigned char *h, size_t n, uint32_t file_no, unsigned char dbid[16],
                          const char *path)
{
    if (n < LOG_FILE_HEADER)
        return SOP_CORRUPT_AT("%s: file header truncated (%zu bytes)", path, n);
    if (memcmp(h, file_magic, 8) != 0)
        return SOP_CORRUPT_AT("%s: not a SOP log file (bad magic)", path);
    if (sop_get32(h + 60) != sop_crc32c(0, h, 60))
        return SOP_CORRUPT_AT("%s: file header checksum mismatch", path);
    if (sop_get32(h + 8) != LOG_FORMAT_VERSION)
        return sop_report(SOP_VERSION, "%s: log format version %u, this build reads %u", path,
                          sop_get32(h + 8), LOG_FORMAT_VERSION);
    if (sop_get32(h + 12) != file_no)
        return SOP_CORRUPT_AT("%s: file number %u in header, expected %u", path, sop_get32(h + 12),
                              file_no);
    memcpy(dbid, h + 16, 16);
    return SOP_OK;
}

/* ---------------------------------------------------------------- blobs */
size_t log_put_blob(sbuf *b, int kind, uint64_t lid, uint32_t store_id, const void *payload, size_t len)
{
    size_t at = b->len;
    size_t padded = (len + 7) & ~(size_t)7;
    unsigned char *h = sbuf_reserve(b, LOG_BLOB_HEADER + padded);
    if (!h)
        return at;
    sop_put32(h, MAGIC_BLOB);
    h[4] = LOG_FORMAT_VERSION;
    h[5] = (unsigned char)kind;
    h[6] = h[7] = 0;
    sop_put64(h + 8, lid);
    sop_put32(h + 16, (uint32_t)len);
    sop_put32(h + 20, sop_crc32c(0, payload, len));
    sop_put32(h + 24, store_id);
    sop_put32(h + 28, sop_crc32c(0, h, 28));
    memcpy(h + LOG_BLOB_HEADER, payload, len);
    memset(h + LOG_BLOB_HEADER + len, 0, padded - len);
    b->len += LOG_BLOB_HEADER + padded;
    return at;
}

static int check_blob_header(const unsigned char *h, uint64_t lid, uint32_t len, const char *path,
                             uint64_t off)
{
    if (sop_get32(h) != MAGIC_BLOB || sop_get32(h + 28) != sop_crc32c(0, h, 28))
        return SOP_CORRUPT_AT("%s offset %llu: blob record header of object %llu is damaged", path,
                              (unsigned long long)off, (unsigned long long)lid);
    if (h[4] != LOG_FORMAT_VERSION)
        return sop_report(SOP_VERSION, "%s offset %llu: blob format version %u", path,
                          (unsigned long long)off, h[4]);
    if (sop_get64(h + 8) != lid || sop_get32(h + 16) != len)
        return SOP_CORRUPT_AT("%s offset %llu: expected object %llu (%u bytes), found object %llu (%u bytes)",
                              path, (unsigned long long)off, (unsigned long long)lid, len,
                              (unsigned long long)sop_get64(h + 8), sop_get32(h + 16));
    return SOP_OK;
}

int log_read_blob(sop_file *f, uint64_t off, uint64_t lid, uint32_t len, unsigned char **payload)
{
    return log_read_blob_kind(f, off, lid, len, payload, NULL);
}

int log_read_blob_kind(sop_file *f, uint64_t off, uint64_t lid, uint32_t len, unsigned char **payload,
                       int *kind)
{
    *payload = NULL;
    unsigned char *buf = sop_malloc((size_t)len + LOG_BLOB_HEADER);
    if (!buf)
        return sop_report(SOP_NOMEM, "reading object %llu", (unsigned long long)lid);
    size_t got = 0;
    int rc = f->io->pread(f, buf, (size_t)len + LOG_BLOB_HEADER, off, &got);
    if (rc == SOP_OK && got < (size_t)len + LOG_BLOB_HEADER)
        rc = SOP_CORRUPT_AT("%s offset %llu: object %llu is truncated", f->path,
                            (unsigned long long)off, (unsigned long long)lid);
    if (rc == SOP_OK)
        rc = check_blob_header(buf, lid, len, f->path, off);
    if (rc == SOP_OK && sop_get32(buf + 20) != sop_crc32c(0, buf + LOG_BLOB_HEADER, len))
        rc = SOP_CORRUPT_AT("%s offset %llu: object %llu checksum mismatch", f->path,
                            (unsigned long long)off, (unsigned long long)lid);
    if (rc != SOP_OK) {
        sop_free(buf);
        return rc;
    }
    if (kind)
        *kind = buf[5];
    memmove(buf, buf + LOG_BLOB_HEADER, len);
    *payload = buf;
    return SOP_OK;
}

/* -------------------------------------------------------------- trailer */
int log_parse_trailer(const unsigned char *t, size_t n, log_commit *c, const char *path, uint64_t off)
{
    memset(c, 0, sizeof *c);
    const unsigned char *p = t, *end = t + n;
#define NEED(k)                                                                           \
    do {                                                                                  \
        if ((size_t)(end - p) < (size_t)(k))                                              \
            goto bad;                                                                     \
    } while (0)
    NEED(4 + 4 + 8 + 8 + 8 + 4 + 4 + 4);
    if (sop_get32(end - 4) != sop_crc32c(0, t, n - 4))
        return SOP_CORRUPT_AT("%s offset %llu: commit record checksum mismatch", path,
                              (unsigned long long)off);
    end -= 4;
    if (sop_get32(p) != MAGIC_TRAIL)
        goto bad;
    if (p[4] != LOG_FORMAT_VERSION)
        return sop_report(SOP_VERSION, "%s offset %llu: commit record version %u", path,
                          (unsigned long long)off, p[4]);
    p += 8;
    c->seq = sop_get64(p);
    p += 8;
    c->durable_seq = sop_get64(p);
    p += 8;
    c->next_lid = sop_get64(p);
    p += 8;
    c->next_store_id = sop_get32(p);
    p += 4;
    c->n_blobs = sop_get32(p);
    p += 4;
    if ((size_t)(end - p) / 20 < c->n_blobs)
        goto bad;
    c->blobs = sop_calloc(c->n_blobs ? c->n_blobs : 1, sizeof *c->blobs);
    if (!c->blobs)
        return sop_report(SOP_NOMEM, "parsing commit record");
    for (uint32_t i = 0; i < c->n_blobs; i++) {
        c->blobs[i].lid = sop_get64(p);
        c->blobs[i].off = sop_get64(p + 8);
        c->blobs[i].len = sop_get32(p + 16);
        p += 20;
    }
    NEED(4);
    c->n_freed = sop_get32(p);
    p += 4;
    if ((size_t)(end - p) / 8 < c->n_freed)
        goto bad;
    c->freed = sop_calloc(c->n_freed ? c->n_freed : 1, sizeof *c->freed);
    if (!c->freed)
        return sop_report(SOP_NOMEM, "parsing commit record");
    for (uint32_t i = 0; i < c->n_freed; i++, p += 8)
        c->freed[i] = sop_get64(p);
    NEED(4);
    c->cat_ops_len = sop_get32(p);
    p += 4;
    NEED(c->cat_ops_len);
    c->cat_ops = p;
    p += c->cat_ops_len;
    if (p != end)
        goto bad;
    return SOP_OK;
bad:
    log_commit_free(c);
    return SOP_CORRUPT_AT("%s offset %llu: malformed commit record", path, (unsigned long long)off);
#undef NEED
}

/* ----------------------------------------------------------------- scan */
static int batch_header_ok(const unsigned char *h, uint64_t *seq, uint64_t *len, uint32_t *tlen)
{
    if (sop_get32(h) != MAGIC_BATCH || sop_get32(h + 28) != sop_crc32c(0, h, 28) ||
        h[4] != LOG_FORMAT_VERSION || h[5] != 1)
        return 0;
    *seq = sop_get64(h + 8);
    *len = sop_get64(h + 16);
    *tlen = sop_get32(h + 24);
    return *len >= (uint64_t)LOG_BATCH_HEADER + *tlen && *tlen >= 48;
}

/* Read and verify the batch at off: SOP_OK and *c parsed (caller frees)
 * when it is whole; SOP_NOTFOUND when it is not a valid batch. */
static int read_batch(sop_file *f, uint64_t off, uint64_t size, unsigned char **buf, size_t *cap,
                      log_commit *c, uint64_t *len_out)
{
    unsigned char h[LOG_BATCH_HEADER];
    size_t got;
    uint64_t seq, len;
    uint32_t tlen;
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = f->io->pread(f, h, sizeof h, off, &got)) != SOP_OK)
        return rc;
    if (got < sizeof h || !batch_header_ok(h, &seq, &len, &tlen) || len > size - off)
        return SOP_NOTFOUND;
    if (len > *cap) {
        unsigned char *nb = sop_realloc(*buf, (size_t)len);
        if (!nb)
            return sop_report(SOP_NOMEM, "reading %s", f->path);
        *buf = nb;
        *cap = (size_t)len;
    }
    unsigned char *b = *buf;
    if ((rc = f->io->pread(f, b, (size_t)len, off, &got)) != SOP_OK)
        return rc;
    if (got < len)
        return SOP_NOTFOUND;
    if (log_parse_trailer(b + len - tlen, tlen, c, f->path, off) != SOP_OK || c->seq != seq) {
        log_commit_free(c);
        sop_clear_errmsg();
        return SOP_NOTFOUND;
    }
    /* every blob of the batch must verify, or the batch never completed */
    for (uint32_t i = 0; i < c->n_blobs; i++) {
        const log_blob_ref *r = &c->blobs[i];
        int ok = r->off >= off + LOG_BATCH_HEADER && r->off + LOG_BLOB_HEADER + r->len <= off + len - tlen;
        const unsigned char *bh = ok ? b + (r->off - off) : NULL;
        if (ok && (check_blob_header(bh, r->lid, r->len, f->path, r->off) != SOP_OK ||
                   sop_get32(bh + 20) != sop_crc32c(0, bh + LOG_BLOB_HEADER, r->len)))
            ok = 0;
        /* the padding after a payload is zero (so every byte is checked) */
        size_t pad = ((r->len + 7) & ~(size_t)7) - r->len;
        for (size_t k = 0; ok && k < pad; k++) {
            const unsigned char *pp = bh + LOG_BLOB_HEADER + r->len + k;
            if (pp < b + len - tlen && *pp)
                ok = 0;
        }
        if (!ok) {
            log_commit_free(c);
            sop_clear_errmsg();
            return SOP_NOTFOUND;
        }
    }
    *len_out = len;
    return SOP_OK;
}

/* ------------------------------------------------------------ damage
 * A batch that does not verify is either a torn write (a commit that never
 * completed: nothing after it was acknowledged either, since an
 * acknowledgement needs an fsync that covers every earlier batch) or damage
 * to data that had been written whole (bit rot, a bad sector, a stray
 * write).  The first is cut off at open; the second must never be, since
 * commits after it may have been acknowledged.  The evidence:
 *  - torn: some 512-byte sector of the batch's extent reads as zeros where
 *    the batch has data (the log is zero-filled ahead of its end, so a block
 *    that never reached the disk reads as zeros; a write interrupted by a
 *    kill leaves the zeros of the preallocated tail, or a short file), or
 *    its header is all zeros (a large batch writes its header last), or the
 *    batch runs past the end of the file;
 *  - written whole: the header verifies and every sector of the extent holds
 *    data, yet a checksum fails; or the header holds bytes that are not a
 *    header (a torn write leaves zeros, not other bytes);
 *  - durable: a later valid batch records (durable_seq) that this commit
 *    had been fsynced before it was written.
 * Verdict: damaged (SOP_CORRUPT, nothing cut) when a later batch says it was
 * durable, or when valid batches follow a batch with no sign of tearing,
 * or when the last batch was written whole; torn otherwise.  What cannot be
 * told apart: a sector of the last commits zeroed by the device after they
 * were synced, when no commit written after their acknowledgement follows;
 * that reads as a torn write and is cut. */
#define SECTOR 512u

typedef struct damage {
    uint64_t end;          /* end of the batch's extent, 0 when its header is unreadable */
    int torn_sign;         /* evidence of a write that never completed */
    uint64_t next_valid;   /* offset of the first valid batch after it (0: none) */
    uint64_t durable_off;  /* a later batch that says it was durable (0: none) */
    uint64_t durable_seq;  /* ... and its sequence number */
} damage;

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Is some 512-byte sector's share of [from, to) all zeros?  A device
 * writes a sector whole or not at all, and a page the kernel never wrote
 * back reads as the zeros the log was filled with; a share that the batch
 * fills is all zeros in a whole write only if the data is (the head share
 * starts with the header's magic, the tail share ends with the trailer's
 * checksum). */
static int has_zero_sector(sop_file *f, uint64_t from, uint64_t to)
{
    unsigned char buf[SECTOR];
    for (uint64_t s = from - from % SECTOR; s < to; s += SECTOR) {
        uint64_t lo = s > from ? s : from, hi = s + SECTOR < to ? s + SECTOR : to;
        size_t got = 0;
        if (f->io->pread(f, buf, (size_t)(hi - lo), lo, &got) != SOP_OK) {
            sop_clear_errmsg();
            return 1; /* unreadable: not evidence of a whole write */
        }
        if (got < hi - lo || all_zero(buf, got))
            return 1;
    }
    return 0;
}

/* Does some all-zero sector share of the batch at `off` (bytes b, len n)
 * intersect [a, e)?  zero[i] is set for the i-th share. */
static int overlaps_zero(const unsigned char *zero, uint64_t off, uint64_t a, uint64_t e)
{
    uint64_t first = off - off % SECTOR;
    for (uint64_t s = a - a % SECTOR; s < e; s += SECTOR)
        if (zero[(s - first) / SECTOR])
            return 1;
    return 0;
}

/* A batch whose header verifies has all-zero sector shares: is every
 * record that fails to verify one that such a share touches?  Then the
 * zeros explain the failure (a torn write); a failing record no zero share
 * touches is damage to data written whole, even though the batch also
 * holds zeros of its own (a value of zero bytes, say). */
static int zeros_explain_damage(const unsigned char *b, uint64_t off, uint64_t n, uint32_t tlen,
                                int header_bad)
{
    uint64_t first = off - off % SECTOR, nshares = (off + n - first + SECTOR - 1) / SECTOR;
    unsigned char *zero = sop_calloc(nshares ? nshares : 1, 1);
    if (!zero)
        return 1; /* cannot tell: keep the coarse verdict */
    int any = 0;
    for (uint64_t i = 0; i < nshares; i++) {
        uint64_t lo = first + i * SECTOR, hi = lo + SECTOR;
        if (lo < off)
            lo = off;
        if (hi > off + n)
            hi = off + n;
        zero[i] = (unsigned char)all_zero(b + (lo - off), (size_t)(hi - lo));
        any |= zero[i];
    }
    int explained = any;
    if (header_bad && !overlaps_zero(zero, off, off, off + LOG_BATCH_HEADER))
        explained = 0; /* a header that fails with no zeros on it */
    uint64_t tstart = off + n - tlen;
    log_commit c;
    if (explained && log_parse_trailer(b + n - tlen, tlen, &c, "", tstart) == SOP_OK) {
        /* the commit record says where every blob is: check each */
        for (uint32_t i = 0; i < c.n_blobs && explained; i++) {
            const log_blob_ref *r = &c.blobs[i];
            uint64_t rend = r->off + LOG_BLOB_HEADER + ((r->len + 7) & ~(uint64_t)7);
            if (r->off < off + LOG_BATCH_HEADER || rend > tstart)
                explained = 0; /* a record that verifies cannot say this */
            else {
                const unsigned char *h = b + (r->off - off);
                int ok = sop_get32(h) == MAGIC_BLOB && sop_get32(h + 28) == sop_crc32c(0, h, 28) &&
                         sop_get64(h + 8) == r->lid && sop_get32(h + 16) == r->len &&
                         sop_get32(h + 20) == sop_crc32c(0, h + LOG_BLOB_HEADER, r->len) &&
                         all_zero(h + LOG_BLOB_HEADER + r->len, (size_t)(rend - r->off - LOG_BLOB_HEADER - r->len));
                if (!ok && !overlaps_zero(zero, off, r->off, rend))
                    explained = 0;
            }
        }
        log_commit_free(&c);
    } else if (explained) {
        sop_clear_errmsg();
        if (!overlaps_zero(zero, off, tstart, off + n)) {
            explained = 0; /* the record failed with no zeros on it */
        } else {
            /* walk the blob records from the start while they can be read */
            uint64_t p = off + LOG_BATCH_HEADER;
            while (p + LOG_BLOB_HEADER <= tstart) {
                const unsigned char *h = b + (p - off);
                if (sop_get32(h) != MAGIC_BLOB || sop_get32(h + 28) != sop_crc32c(0, h, 28)) {
                    explained = overlaps_zero(zero, off, p, p + LOG_BLOB_HEADER);
                    break; /* the rest cannot be found without this header */
                }
                uint64_t len = sop_get32(h + 16), rend = p + LOG_BLOB_HEADER + ((len + 7) & ~(uint64_t)7);
                if (rend > tstart)
                    break;
                if (sop_get32(h + 20) != sop_crc32c(0, h + LOG_BLOB_HEADER, (size_t)len) &&
                    !overlaps_zero(zero, off, p, rend)) {
                    explained = 0;
                    break;
                }
                p = rend;
            }
        }
    }
    sop_free(zero);
    return explained;
}

/* Every valid batch after `from` (at any byte offset: the damaged batch's
 * length cannot be trusted): the first one, and whether any of them says
 * commit `seq` had been made durable. */
static void find_later_batches(sop_file *f, uint64_t from, uint64_t size, uint64_t seq, unsigned char **buf,
                               size_t *cap, damage *d)
{
    unsigned char win[4096];
    for (uint64_t pos = from; pos + LOG_BATCH_HEADER <= size;) {
        size_t got;
        if (f->io->pread(f, win, sizeof win, pos, &got) != SOP_OK) {
            sop_clear_errmsg();
            return;
        }
        if (got < 4)
            return;
        uint64_t next = pos + (got > 3 ? got - 3 : got);
        for (size_t i = 0; i + 4 <= got; i++) {
            if (sop_get32(win + i) != MAGIC_BATCH)
                continue;
            log_commit c;
            uint64_t len;
            if (read_batch(f, pos + i, size, buf, cap, &c, &len) != SOP_OK) {
                sop_clear_errmsg();
                continue;
            }
            if (c.seq <= seq) {
                /* not a later commit: an older image (say, inside a stored
                 * value, or the remains of an abandoned write) */
                log_commit_free(&c);
                continue;
            }
            if (!d->next_valid)
                d->next_valid = pos + i;
            if (c.durable_seq >= seq && !d->durable_off) {
                d->durable_off = pos + i;
                d->durable_seq = c.seq;
            }
            log_commit_free(&c);
            next = pos + i + len; /* go on after this batch */
            break;
        }
        pos = next;
    }
}

/* Is there, in [from, limit), a complete commit record (trailer) of commit
 * `seq` whose checksum verifies?  Returns the end of the batch it closes
 * (0: none): that batch was written, whatever happened to its header. */
static uint64_t trailer_of(sop_file *f, uint64_t from, uint64_t limit, uint64_t seq, unsigned char **buf,
                           size_t *cap, uint64_t *start)
{
    unsigned char win[4096];
    for (uint64_t pos = from; pos + 48 <= limit;) {
        size_t got;
        if (f->io->pread(f, win, sizeof win, pos, &got) != SOP_OK) {
            sop_clear_errmsg();
            return 0;
        }
        if (got < 4)
            return 0;
        for (size_t i = 0; i + 4 <= got; i++) {
            if (sop_get32(win + i) != MAGIC_TRAIL)
                continue;
            uint64_t at = pos + i;
            unsigned char fx[44], w4[4];
            size_t g = 0;
            /* fixed part, then the counts that give the record's length */
            if (f->io->pread(f, fx, sizeof fx, at, &g) != SOP_OK || g < sizeof fx || sop_get64(fx + 8) != seq)
                continue;
            uint64_t n_blobs = sop_get32(fx + 40 - 4), len = 40 + 20 * n_blobs;
            if (f->io->pread(f, w4, 4, at + len, &g) != SOP_OK || g < 4)
                continue;
            len += 4 + 8 * (uint64_t)sop_get32(w4);
            if (f->io->pread(f, w4, 4, at + len, &g) != SOP_OK || g < 4)
                continue;
            len += 4 + (uint64_t)sop_get32(w4) + 4;
            if (len > limit - at || len > ((uint64_t)1 << 30))
                continue;
            if (len > *cap) {
                unsigned char *nb = sop_realloc(*buf, (size_t)len);
                if (!nb)
                    continue;
                *buf = nb;
                *cap = (size_t)len;
            }
            log_commit c;
            if (f->io->pread(f, *buf, (size_t)len, at, &g) == SOP_OK && g == len &&
                log_parse_trailer(*buf, (size_t)len, &c, f->path, at) == SOP_OK) {
                int match = c.seq == seq;
                log_commit_free(&c);
                if (match) {
                    *start = at;
                    return at + len; /* the end of the batch it closes */
                }
            }
            sop_clear_errmsg();
        }
        pos += got > 3 ? got - 3 : got;
    }
    return 0;
}

static void judge_damage(sop_file *f, uint64_t off, uint64_t size, uint64_t seq, unsigned char **buf,
                         size_t *cap, damage *d)
{
    unsigned char h[LOG_BATCH_HEADER];
    size_t got = 0;
    uint64_t hseq, len;
    uint32_t tlen;
    memset(d, 0, sizeof *d);
    if (f->io->pread(f, h, sizeof h, off, &got) != SOP_OK) {
        sop_clear_errmsg();
        got = 0;
    }
    if (got < sizeof h || all_zero(h, sizeof h)) {
        d->torn_sign = 1; /* nothing was written here, or the header (written last) was not */
    } else if (batch_header_ok(h, &hseq, &len, &tlen)) {
        if (len > size - off) {
            d->torn_sign = 1; /* the file ends inside the batch */
            d->end = size;
        } else {
            d->end = off + len;
            d->torn_sign = has_zero_sector(f, off, d->end);
            if (d->torn_sign && len <= ((uint64_t)64 << 20)) {
                /* zeros in it: do they explain every record that fails? */
                unsigned char *b = sop_malloc((size_t)len);
                size_t g = 0;
                if (b && f->io->pread(f, b, (size_t)len, off, &g) == SOP_OK && g == len)
                    d->torn_sign = zeros_explain_damage(b, off, len, tlen, 0);
                sop_clear_errmsg();
                sop_free(b);
            }
        }
    }
    find_later_batches(f, off + 1, size, seq, buf, cap, d);
    if (!d->torn_sign && !d->end) {
        /* bytes that are not a batch header: a damaged header of a batch
         * written whole (its commit record, further on, is intact), or the
         * remains of a large batch whose writer died before writing its
         * header (written last), partly overwritten by the commits that
         * followed: no commit record of this commit */
        uint64_t limit = d->next_valid ? d->next_valid : size;
        uint64_t tstart = 0, tend = trailer_of(f, off + LOG_BATCH_HEADER, limit, seq, buf, cap, &tstart);
        if (!tend) {
            d->torn_sign = 1;
        } else {
            /* the batch's extent is known from its commit record: a
             * header that straddles a sector boundary may be torn in half
             * (then zeros explain it and every other failing record) */
            uint64_t len = tend - off;
            size_t g = 0;
            d->end = tend;
            if (has_zero_sector(f, off, tend) && len <= ((uint64_t)64 << 20)) {
                unsigned char *b = sop_malloc((size_t)len);
                uint32_t tlen = (uint32_t)(tend - tstart);
                if (b && tlen && f->io->pread(f, b, (size_t)len, off, &g) == SOP_OK && g == len)
                    d->torn_sign = zeros_explain_damage(b, off, len, tlen, 1);
                sop_clear_errmsg();
                sop_free(b);
            }
        }
    }
}

/* Is the batch header at off all zeros (the preallocated, never written
 * part of the file)? */
static int zero_header_at(sop_file *f, uint64_t off)
{
    unsigned char h[LOG_BATCH_HEADER];
    size_t got;
    if (f->io->pread(f, h, sizeof h, off, &got) != SOP_OK) {
        sop_clear_errmsg();
        return 0;
    }
    if (!got)
        return 2; /* the end of the file itself */
    for (size_t i = 0; i < got; i++)
        if (h[i])
            return 0;
    return 1;
}

int log_scan(sop_file *f, uint64_t start, uint64_t prev_seq, int flags,
             int (*fn)(void *, const log_commit *, uint64_t, uint64_t), void *arg, uint64_t *end,
             int *torn)
{
    /* LOG_SCAN_ZERO_END (following the log while processes run) reads on
     * until a header that is not a batch, without asking the file's size:
     * an fstat marks the inode's times as seen, and the kernel (multigrain
     * timestamps) then gives the next write a fine-grained mtime, whose inode
     * update every fdatasync must also write (measured: 10.8k -> 7.6k
     * durable commits/s) */
    uint64_t size = (uint64_t)1 << 40; /* LOC_OFF's range */
    int rc = (flags & LOG_SCAN_ZERO_END) ? SOP_OK : f->io->size(f, &size);
    if (rc)
        return rc;
    /* prev_seq UINT64_MAX: the caller may not judge damage (another process
     * may be writing the tail right now): just stop there */
    int judge = prev_seq != UINT64_MAX;
    uint64_t off = start, last_seq = judge ? prev_seq : 0;
    unsigned char *buf = NULL;
    size_t cap = 0;
    *torn = 0;
    while (off < size) {
        log_commit c;
        uint64_t len;
        rc = read_batch(f, off, size, &buf, &cap, &c, &len);
        if (rc == SOP_NOTFOUND) {
            rc = SOP_OK;
            int z = (flags & LOG_SCAN_ZERO_END) ? zero_header_at(f, off) : 0;
            if (z) {
                if (z == 2)
                    *torn = -1; /* clean, and the file ends here (no zeros ahead) */
                break; /* the clean end: nothing was ever written here */
            }
            if (judge) {
                damage d;
                uint64_t want = last_seq + 1;
                if (flags & LOG_SCAN_ZERO_END) {
                    /* the file's size was not asked for; ask now (damage is rare) */
                    if ((rc = f->io->size(f, &size)) != SOP_OK)
                        break;
                }
                judge_damage(f, off, size, want, &buf, &cap, &d);
                if (d.durable_off)
                    rc = SOP_CORRUPT_AT("%s offset %llu: commit %llu is damaged; commit %llu at offset %llu, "
                                        "written after it, records that it had been made durable",
                                        f->path, (unsigned long long)off, (unsigned long long)want,
                                        (unsigned long long)d.durable_seq, (unsigned long long)d.durable_off);
                else if (d.next_valid && !d.torn_sign)
                    rc = SOP_CORRUPT_AT("%s offset %llu: commit %llu is damaged, and valid commits follow it "
                                        "(from offset %llu): this is not a torn write",
                                        f->path, (unsigned long long)off, (unsigned long long)want,
                                        (unsigned long long)d.next_valid);
                else if (!d.torn_sign)
                    rc = SOP_CORRUPT_AT("%s offset %llu: commit %llu was written whole but fails its "
                                        "checksum (damage, not a torn write)",
                                        f->path, (unsigned long long)off, (unsigned long long)want);
            }
            *torn = 1;
            break;
        }
        if (rc != SOP_OK)
            break;
        last_seq = c.seq;
        rc = fn(arg, &c, off, len);
        log_commit_free(&c);
        if (rc != SOP_OK)
            break;
        off += len;
    }
    sop_free(buf);
    *end = off;
    return rc;
}
/* ---------------------------------------------------------------- batch */
void log_batch_begin(sbuf *b)
{
    b->len = 0;
    b->err = 0;
    unsigned char *h = sbuf_reserve(b, LOG_BATCH_HEADER);
    if (h) {
        memset(h, 0, LOG_BATCH_HEADER);
        b->len = LOG_BATCH_HEADER;
    }
}

void log_batch_finish(sbuf *b, uint64_t base, uint64_t before, const log_commit *c,
                      unsigned char hdr[LOG_BATCH_HEADER])
{
    size_t tstart = b->len;
    sbuf_u32(b, MAGIC_TRAIL);
    sbuf_u8(b, LOG_FORMAT_VERSION);
    sbuf_u8(b, 0);
    sbuf_u8(b, 0);
    sbuf_u8(b, 0);
    sbuf_u64(b, c->seq);
    sbuf_u64(b, c->durable_seq);
    sbuf_u64(b, c->next_lid);
    sbuf_u32(b, c->next_store_id);
    sbuf_u32(b, c->n_blobs);
    for (uint32_t i = 0; i < c->n_blobs; i++) {
        sbuf_u64(b, c->blobs[i].lid);
        sbuf_u64(b, base + c->blobs[i].off);
        sbuf_u32(b, c->blobs[i].len);
    }
    sbuf_u32(b, c->n_freed);
    for (uint32_t i = 0; i < c->n_freed; i++)
        sbuf_u64(b, c->freed[i]);
    sbuf_u32(b, c->cat_ops_len);
    sbuf_put(b, c->cat_ops, c->cat_ops_len);
    if (b->err)
        return;
    sbuf_u32(b, sop_crc32c(0, b->p + tstart, b->len - tstart));
    if (b->err)
        return;
    unsigned char *h = hdr;
    memset(h, 0, LOG_BATCH_HEADER);
    sop_put32(h, MAGIC_BATCH);
    h[4] = LOG_FORMAT_VERSION;
    h[5] = 1;
    sop_put64(h + 8, c->seq);
    sop_put64(h + 16, before + b->len);
    sop_put32(h + 24, (uint32_t)(b->len - tstart));
    sop_put32(h + 28, sop_crc32c(0, h, 28));
    if (!before)
        memcpy(b->p, h, LOG_BATCH_HEADER);
}
