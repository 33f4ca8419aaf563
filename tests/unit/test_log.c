/*
 * test_log.c - the commit log format: batches round-trip through log_scan,
 * every blob verifies, a torn tail stops the scan at the last whole batch,
 * and any damaged byte of a batch makes it invalid (never a crash).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "test.h"

static char path[256];

typedef struct seen {
    int batches;
    uint64_t last_seq;
    uint32_t blobs;
} seen;

static int on_batch(void *arg, const log_commit *c, uint64_t off, uint64_t len)
{
    seen *s = arg;
    (void)off;
    (void)len;
    s->batches++;
    s->last_seq = c->seq;
    s->blobs += c->n_blobs;
    return SOP_OK;
}

/* Write n batches of 3 blobs each; returns the end offset. */
static int durable_marks; /* batches record that the earlier ones were synced */

static int last_pad; /* extra payload bytes in the last batch's blobs (to span sectors) */

static uint64_t write_batches(sop_file *f, int n, uint64_t *ends)
{
    unsigned char dbid[16] = {1, 2, 3};
    unsigned char h[LOG_FILE_HEADER];
    log_file_header(h, 1, dbid);
    f->io->pwrite(f, h, sizeof h, 0);
    uint64_t off = LOG_FILE_HEADER;
    for (int i = 0; i < n; i++) {
        sbuf b = {0};
        log_batch_begin(&b);
        log_blob_ref refs[3];
        for (int k = 0; k < 3; k++) {
            char payload[1200];
            int len = snprintf(payload, 100, "batch %d blob %d %.*s", i, k, k * 20,
                               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
            if (i == n - 1 && last_pad) {
                memset(payload + len, 'y', (size_t)last_pad);
                len += last_pad;
            }
            size_t at = log_put_blob(&b, LOG_KIND_NODE, (uint64_t)(i * 3 + k + 1), 0, payload, (size_t)len);
            refs[k] = (log_blob_ref){(uint64_t)(i * 3 + k + 1), at, (uint32_t)len};
        }
        unsigned char ops[3] = {9, 9, 9};
        log_commit c = {0};
        c.seq = (uint64_t)i + 1;
        c.durable_seq = durable_marks ? (uint64_t)i : 0;
        c.next_lid = 1000;
        c.n_blobs = 3;
        c.blobs = refs;
        c.cat_ops = ops;
        c.cat_ops_len = 3;
        { unsigned char hdr[LOG_BATCH_HEADER]; log_batch_finish(&b, off, 0, &c, hdr); }
        f->io->pwrite(f, b.p, b.len, off);
        off += b.len;
        if (ends)
            ends[i] = off;
        sbuf_free(&b);
    }
    return off;
}

static void zero_range(sop_file *f, uint64_t from, uint64_t to)
{
    unsigned char z[4096] = {0};
    for (uint64_t at = from; at < to;) {
        size_t n = to - at < sizeof z ? (size_t)(to - at) : sizeof z;
        f->io->pwrite(f, z, n, at);
        at += n;
    }
}

TEST(round_trip_and_blob_reads)
{
    sop_file *f;
    REQUIRE(sop_io_posix()->open(sop_io_posix(), path, SOP_IO_CREATE, &f) == SOP_OK);
    f->io->truncate(f, 0);
    uint64_t end = write_batches(f, 5, NULL);
    seen s = {0, 0, 0};
    uint64_t stop;
    int torn;
    CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_OK);
    CHECK(s.batches == 5 && s.last_seq == 5 && s.blobs == 15 && stop == end && !torn);
    f->io->close(f);
}

TEST(torn_tail_and_damaged_bytes)
{
    sop_file *f;
    REQUIRE(sop_io_posix()->open(sop_io_posix(), path, SOP_IO_CREATE, &f) == SOP_OK);
    f->io->truncate(f, 0);
    uint64_t ends[4];
    uint64_t end = write_batches(f, 4, ends);
    unsigned char *all = malloc(end);
    size_t got;
    f->io->pread(f, all, end, 0, &got);
    REQUIRE(got == end);
    /* every truncation point: the scan keeps exactly the whole batches */
    for (uint64_t cut = ends[2] + 1; cut < end; cut += 7) {
        f->io->pwrite(f, all, end, 0);
        f->io->truncate(f, cut);
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_OK);
        CHECK(s.batches == 3 && stop == ends[2] && torn);
    }
    f->io->truncate(f, 0);
    f->io->pwrite(f, all, end, 0);
    /* flip each byte of the last batch: a batch written whole whose
     * checksum fails is damage, never a torn write: SOP_CORRUPT, and the
     * scan reports where valid data ends without anything being cut */
    int bad = 0;
    for (uint64_t i = ends[2]; i < end; i++) {
        unsigned char b = all[i] ^ 0x40;
        f->io->pwrite(f, &b, 1, i);
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        int rc = log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn);
        if (rc != SOP_CORRUPT || s.batches != 3 || stop != ends[2] || !strstr(sop_errmsg(), "written whole")) {
            if (bad < 5)
                fprintf(stderr, "byte %llu (batch offset %llu): rc %d batches %d stop %llu torn %d: %s\n",
                        (unsigned long long)i, (unsigned long long)(i - ends[2]), rc, s.batches,
                        (unsigned long long)stop, torn, sop_errmsg());
            bad++;
        }
        f->io->pwrite(f, &all[i], 1, i);
    }
    CHECK(bad == 0);
    /* the last batch torn: it spans sectors, and one after its first
     * never reached the disk (zeros): a torn write, cut */
    f->io->truncate(f, 0);
    last_pad = 1000;
    end = write_batches(f, 4, ends);
    last_pad = 0;
    REQUIRE(end - ends[2] > 1200);
    for (int which = 1; which <= 2; which++) {
        unsigned char *copy = malloc(end);
        f->io->pread(f, copy, end, 0, &got);
        uint64_t sec = (ends[2] / 512 + which) * 512; /* a sector inside the batch */
        zero_range(f, sec, sec + 512 < end ? sec + 512 : end);
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_OK);
        CHECK(s.batches == 3 && stop == ends[2] && torn);
        f->io->pwrite(f, copy, end, 0);
        free(copy);
    }
    /* the same batch written whole with one byte flipped: damage */
    {
        unsigned char b;
        f->io->pread(f, &b, 1, ends[2] + 700, &got);
        b ^= 1;
        f->io->pwrite(f, &b, 1, ends[2] + 700);
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_CORRUPT);
        CHECK(s.batches == 3 && stop == ends[2]);
    }
    f->io->truncate(f, 0);
    end = write_batches(f, 4, ends);
    /* only its header missing (a large batch writes it last) */
    f->io->pwrite(f, all, end, 0);
    zero_range(f, ends[2], ends[2] + LOG_BATCH_HEADER);
    {
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_OK);
        CHECK(s.batches == 3 && stop == ends[2] && torn);
    }
    /* the remains of a batch whose writer died before writing its header
     * and trailer (blob records only), after the last whole batch: torn */
    f->io->truncate(f, 0);
    end = write_batches(f, 4, ends);
    {
        unsigned char junk[200];
        f->io->pread(f, junk, sizeof junk, ends[0] + LOG_BATCH_HEADER, &got);
        f->io->pwrite(f, junk, sizeof junk, ends[2]); /* over batch 4's header */
        zero_range(f, ends[2] + sizeof junk, end + 512);
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_OK);
        CHECK(s.batches == 3 && stop == ends[2] && torn);
    }
    free(all);
    f->io->close(f);
}

/* A header that straddles a sector boundary: a power loss may write one
 * sector and not the other.  Half of it zeros (its commit record further on
 * intact): torn, cut.  A flipped byte in it instead: damage. */
TEST(header_across_sectors)
{
    sop_file *f;
    REQUIRE(sop_io_posix()->open(sop_io_posix(), path, SOP_IO_CREATE, &f) == SOP_OK);
    f->io->truncate(f, 0);
    uint64_t ends[40];
    uint64_t end = write_batches(f, 40, ends);
    int k = -1;
    for (int i = 1; i < 40 && k < 0; i++)
        if (ends[i - 1] % 512 > 512 - LOG_BATCH_HEADER)
            k = i; /* batch i's header crosses a sector boundary */
    REQUIRE(k > 0);
    f->io->truncate(f, ends[k]); /* make it the last batch */
    end = ends[k];
    uint64_t at = ends[k - 1], boundary = (at / 512 + 1) * 512;
    unsigned char *all = malloc(end);
    size_t got;
    f->io->pread(f, all, end, 0, &got);
    for (int half = 0; half < 2; half++) {
        /* the first or the second sector of the header never written */
        if (half == 0)
            zero_range(f, at, boundary);
        else
            zero_range(f, boundary, SOP_MIN(end, boundary + 512));
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_OK);
        CHECK(s.batches == k && stop == at && torn);
        f->io->pwrite(f, all, end, 0);
    }
    unsigned char b = all[at + 2] ^ 0x20;
    f->io->pwrite(f, &b, 1, at + 2);
    seen s = {0, 0, 0};
    uint64_t stop;
    int torn;
    CHECK_RC(log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn), SOP_CORRUPT);
    CHECK(s.batches == k && stop == at);
    free(all);
    f->io->close(f);
}

/* Damage in the middle, valid batches after it (written by several threads
 * or processes: the durable marks of the batches right after it may lag). */
TEST(damage_before_valid_commits_is_corruption)
{
    sop_file *f;
    REQUIRE(sop_io_posix()->open(sop_io_posix(), path, SOP_IO_CREATE, &f) == SOP_OK);
    uint64_t ends[4];
    for (int marks = 0; marks <= 1; marks++) {
        f->io->truncate(f, 0);
        durable_marks = marks;
        write_batches(f, 4, ends);
        /* a flipped byte in the second batch; the third and fourth are intact */
        unsigned char b;
        size_t got;
        uint64_t at = ends[0] + 40;
        f->io->pread(f, &b, 1, at, &got);
        b ^= 0x10;
        f->io->pwrite(f, &b, 1, at);
        seen s = {0, 0, 0};
        uint64_t stop;
        int torn;
        int rc = log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn);
        CHECK(s.batches == 1 && stop == ends[0]);
        /* whatever the marks say: damage followed by valid commits */
        CHECK(rc == SOP_CORRUPT);
        CHECK(strstr(sop_errmsg(), marks ? "records that it had been made durable" : "valid commits follow") != NULL);
        /* the second batch torn instead (zeros after its header): the
         * later batches cannot have been acknowledged, unless one of them
         * says the torn one was durable */
        write_batches(f, 4, ends);
        zero_range(f, (ends[0] + LOG_BATCH_HEADER + 511) / 512 * 512, ends[1]); /* whole sectors after its header */
        memset(&s, 0, sizeof s);
        rc = log_scan(f, LOG_FILE_HEADER, 0, 0, on_batch, &s, &stop, &torn);
        CHECK(s.batches == 1 && stop == ends[0] && torn);
        CHECK(rc == (marks ? SOP_CORRUPT : SOP_OK));
    }
    durable_marks = 0;
    f->io->close(f);
}

TEST(file_header_checks)
{
    unsigned char dbid[16] = {9}, out[16];
    unsigned char h[LOG_FILE_HEADER];
    log_file_header(h, 3, dbid);
    CHECK_RC(log_file_header_check(h, sizeof h, 3, out, "x"), SOP_OK);
    CHECK(!memcmp(out, dbid, 16));
    CHECK_RC(log_file_header_check(h, sizeof h, 4, out, "x"), SOP_CORRUPT);
    CHECK_RC(log_file_header_check(h, 10, 3, out, "x"), SOP_CORRUPT);
    h[20] ^= 1;
    CHECK_RC(log_file_header_check(h, sizeof h, 3, out, "x"), SOP_CORRUPT);
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/sop_test_log_%d.sop", (int)getpid());
    RUN(round_trip_and_blob_reads);
    RUN(torn_tail_and_damaged_bytes);
    RUN(damage_before_valid_commits_is_corruption);
    RUN(header_across_sectors);
    RUN(file_header_checks);
    unlink(path);
    TEST_EXIT();
}
