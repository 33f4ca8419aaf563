/*
 * log.h - the commit log: append-only log files holding every blob (node
 * images, value blobs) and the commit records that make them live.
 *
 * Files are named log-NNNNNNNN.sop (N = file number from 1) in the database
 * folder.  Each starts with a file header, then batches.  A batch is one
 * committed transaction: a batch header, the transaction's blob records, and
 * a trailer (the commit record).  The commit point is the batch reaching
 * disk completely (one write + one fdatasync); recovery accepts a batch only
 * if its header, every blob and its trailer verify, and stops at the first
 * batch that does not (a torn tail, which it truncates).
 *
 * The current file is kept zero-filled some way beyond its last batch
 * (env.c, "preallocation"), so that a commit overwrites blocks the file
 * already has and its fdatasync does not also have to commit a size change
 * to the file system journal.  An all-zero batch header therefore marks the
 * clean end of the log while processes run; recovery at open still treats
 * it like any other stop point (judges damage, cuts the file there).
 *
 * File header (64 bytes):
 *   0  8  magic "SOPLOG1\0"
 *   8  4  format version (LOG_FORMAT_VERSION)
 *  12  4  file number
 *  16 16  database id (random, same in every file of a database)
 *  32 28  reserved (zero)
 *  60  4  CRC-32C of bytes 0..59
 *
 * Batch header (32 bytes):          Blob record header (32 bytes) + payload:
 *   0 4 magic 'SOPC'                  0 4 magic 'SOPB'
 *   4 1 version                       4 1 version
 *   5 1 type (1 = commit)             5 1 kind (1 node, 2 value)
 *   6 2 reserved                      6 2 reserved
 *   8 8 commit sequence number        8 8 logical id
 *  16 8 batch length (all bytes)     16 4 payload length
 *  24 4 trailer length               20 4 payload CRC-32C
 *  28 4 CRC-32C of bytes 0..27       24 4 store id
 *                                    28 4 CRC-32C of bytes 0..27
 *                                    32 . payload, zero-padded to 8 bytes
 * Trailer (commit record), all little-endian:
 *   magic 'SOPT' u32, version u8, 3 reserved, seq u64, durable seq u64 (every
 *   commit up to it was fsynced before this batch was written), next_lid u64,
 *   next_store_id u32, n_blobs u32, {lid u64, file offset u64, payload len u32}*,
 *   n_freed u32, {lid u64}*, catalog ops length u32, catalog ops bytes,
 *   CRC-32C u32 of all trailer bytes before it.
 */
#ifndef SOP_LOG_H
#define SOP_LOG_H

#include "io.h"

#define LOG_FORMAT_VERSION 1
#define LOG_FILE_HEADER 64
#define LOG_BATCH_HEADER 32
#define LOG_BLOB_HEADER 32
#define LOG_KIND_NODE 1
#define LOG_KIND_VALUE 2

/* A location in the log: file number << 40 | byte offset of the blob record. */
#define LOC_MAKE(file, off) (((uint64_t)(file) << 40) | (uint64_t)(off))
#define LOC_FILE(loc) ((uint32_t)((loc) >> 40))
#define LOC_OFF(loc) ((loc) & ((1ull << 40) - 1))

/* A growable byte buffer. */
typedef struct sbuf {
    unsigned char *p;
    size_t len, cap;
    int err; /* sticky SOP_NOMEM */
} sbuf;
void sbuf_free(sbuf *b);
unsigned char *sbuf_reserve(sbuf *b, size_t n); /* space for n more bytes, or NULL */
void sbuf_put(sbuf *b, const void *p, size_t n);
void sbuf_u8(sbuf *b, unsigned v);
void sbuf_u32(sbuf *b, uint32_t v);
void sbuf_u64(sbuf *b, uint64_t v);

typedef struct log_blob_ref {
    uint64_t lid;
    uint64_t off; /* offset of the blob record in its file */
    uint32_t len; /* payload length */
} log_blob_ref;

/* A parsed commit record (arrays point into the trailer bytes' owner). */
typedef struct log_commit {
    uint64_t seq;
    uint64_t durable_seq;
    uint64_t next_lid;
    uint32_t next_store_id;
    uint32_t n_blobs;
    log_blob_ref *blobs; /* malloc'd */
    uint32_t n_freed;
    uint64_t *freed;     /* malloc'd */
    const unsigned char *cat_ops;
    uint32_t cat_ops_len;
} log_commit;
void log_commit_free(log_commit *c);

/* ---- writing */
void log_file_header(unsigned char out[LOG_FILE_HEADER], uint32_t file_no, const unsigned char dbid[16]);
int log_file_header_check(const unsigned char *h, size_t n, uint32_t file_no, unsigned char dbid[16],
                          const char *path);

/* Append one blob record to b; returns its offset within b. */
size_t log_put_blob(sbuf *b, int kind, uint64_t lid, uint32_t store_id, const void *payload, size_t len);

/* ---- reading */
/* Read and verify the blob record at off of file f: payload into a malloc'd
 * buffer.  Errors name the file, offset and lid. */
int log_read_blob(sop_file *f, uint64_t off, uint64_t lid, uint32_t len, unsigned char **payload);
/* The same, also reporting the blob's kind (LOG_KIND_*). */
int log_read_blob_kind(sop_file *f, uint64_t off, uint64_t lid, uint32_t len, unsigned char **payload,
                       int *kind);

/* Scan a file from `start` (prev_seq: the last commit before it, or UINT64_MAX
 * when damage must not be judged because another process may be appending): for each valid batch call fn(arg, commit, batch_off, batch_len).
 * Stops at the first invalid or incomplete batch and returns its offset in *end
 * (the end of valid data).  *torn is set when bytes follow that are not a valid batch:
 * a write that never completed.  If a valid batch further on says the damaged one
 * had already been made durable, it is corruption instead: SOP_CORRUPT. */
#define LOG_SCAN_ZERO_END 1 /* flags: an all-zero batch header is a clean end (not torn, not judged);
                               *torn is then -1 when the clean end is the end of the file itself */
int log_scan(sop_file *f, uint64_t start, uint64_t prev_seq, int flags,
             int (*fn)(void *arg, const log_commit *c, uint64_t off, uint64_t len), void *arg,
             uint64_t *end, int *torn);

/* Parse a trailer (crc verified). */
int log_parse_trailer(const unsigned char *t, size_t n, log_commit *c, const char *path, uint64_t off);

#endif

#ifndef SOP_LOG_BATCH_API
#define SOP_LOG_BATCH_API
/* Build a batch: begin (reserves the header), add blobs with log_put_blob,
 * then finish with the commit record c whose blobs[].off are offsets within
 * the batch; base is the file offset where the batch is written.  A large
 * batch may be written in pieces: `before` bytes of it were already written
 * (the zero header first) and b holds the rest; finish appends the trailer
 * to b and puts the header in hdr (also at the start of b when before is
 * 0), to be written after everything else. */
void log_batch_begin(sbuf *b);
void log_batch_finish(sbuf *b, uint64_t base, uint64_t before, const log_commit *c,
                      unsigned char hdr[LOG_BATCH_HEADER]);
#endif
