/*
 * test.h - a tiny unit-test harness for the C tests (one binary per module).
 * CHECK(cond) records a failure and continues; REQUIRE(cond) stops the test.
 * Each test binary defines tests with TEST(name) and lists them in main()
 * through RUN(name); it exits non-zero if anything failed.
 */
#ifndef SOP_TEST_H
#define SOP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_;
static int test_checks_;
static const char *test_current_;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        test_checks_++;                                                                     \
        if (!(cond)) {                                                                      \
            test_failures_++;                                                               \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__,            \
                    test_current_, #cond);                                                  \
        }                                                                                   \
    } while (0)

#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        test_checks_++;                                                                     \
        if (!(cond)) {                                                                      \
            test_failures_++;                                                               \
            fprintf(stderr, "%s:%d: %s: REQUIRE failed: %s\n", __FILE__, __LINE__,          \
                    test_current_, #cond);                                                  \
            return;                                                                         \
        }                                                                                   \
    } while (0)

#define CHECK_RC(expr, want)                                                                \
    do {                                                                                    \
        int rc_ = (expr);                                                                   \
        test_checks_++;                                                                     \
        if (rc_ != (want)) {                                                                \
            test_failures_++;                                                               \
            fprintf(stderr, "%s:%d: %s: %s returned %d (%s), want %d: %s\n", __FILE__,      \
                    __LINE__, test_current_, #expr, rc_, sop_errname(rc_), (int)(want),     \
                    sop_errmsg());                                                          \
        }                                                                                   \
    } while (0)

#define TEST(name) static void name(void)
#define RUN(name)                                                                           \
    do {                                                                                    \
        int before_ = test_failures_;                                                       \
        test_current_ = #name;                                                              \
        name();                                                                             \
        fprintf(stderr, "%s %s\n", test_failures_ == before_ ? "ok  " : "FAIL", #name);     \
    } while (0)
#define TEST_EXIT()                                                                         \
    do {                                                                                    \
        fprintf(stderr, "%d checks, %d failures\n", test_checks_, test_failures_);          \
        return test_failures_ ? 1 : 0;                                                      \
    } while (0)

#endif
