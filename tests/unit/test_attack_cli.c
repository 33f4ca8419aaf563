/*
 * test_attack_cli.c - hostile round h7 on the `sop` command-line tool (path
 * in SOP_CLI, set by ctest).  Each test names the defect it shows:
 *
 *  - dump_infinite_key_is_json: a store keyed by doubles holding +inf / -inf
 *    (both valid keys; the Python package accepts float("inf")) is dumped as
 *    {"key":[inf],...}: not JSON, though the usage text promises JSON lines;
 *  - dump_bytes_key_keeps_bytes: a bytes key is dumped as {"$bytes_len":N}:
 *    the key's content is lost (a bytes value is dumped as base64 in
 *    {"$bytes":...}), so two items with different bytes keys look the same;
 *  - stores_name_with_newline: a store named "a\nb" (the engine accepts it)
 *    is listed by `sop stores` raw, so its one line becomes two and a line
 *    "b  1 items" appears for a store that does not exist;
 *  - create_race_one_winner: `sop create PATH` promises to fail when PATH
 *    already holds a database, but it looks (read-only open) and then
 *    creates, so several concurrent creates of one new PATH all exit 0 and
 *    all report that they created it (seen in about half of the rounds of
 *    4 concurrent creates).  Expected: exactly one exits 0, the others 2.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char base[256];
static char out_path[300], err_path[300];
static char out_buf[65536], err_buf[65536];

static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

static int cli(const char *a1, const char *a2, const char *a3)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        char *argv[] = {getenv("SOP_CLI"), (char *)a1, (char *)a2, (char *)a3, NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    slurp(out_path, out_buf, sizeof out_buf);
    slurp(err_path, err_buf, sizeof err_buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- a minimal strict JSON checker (RFC 8259 grammar, no semantics) */
static const char *js_value(const char *p);
static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}
static const char *js_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"')
            return p;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            c = (unsigned char)*p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", *p++) || !p[-1])
                        return NULL;
            } else if (!c || !strchr("\"\\/bfnrt", c)) {
                return NULL;
            }
        }
    }
}
static const char *js_number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p;
}
static const char *js_value(const char *p)
{
    p = js_ws(p);
    if (*p == '"')
        return js_string(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = js_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (!(p = js_string(js_ws(p))))
                    return NULL;
                p = js_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = js_value(p)))
                return NULL;
            p = js_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    return js_number(p);
}
/* Every line of buf is one JSON value; returns the number of lines, -1 if a
 * line is not JSON. */
static int json_lines(const char *buf)
{
    int n = 0;
    while (*buf) {
        const char *nl = strchr(buf, '\n');
        if (!nl)
            return -1;
        char line[4096];
        size_t len = (size_t)(nl - buf);
        if (len >= sizeof line)
            return -1;
        memcpy(line, buf, len);
        line[len] = 0;
        const char *end = js_value(line);
        if (!end || *js_ws(end)) {
            fprintf(stderr, "not JSON: %s\n", line);
            return -1;
        }
        n++;
        buf = nl + 1;
    }
    return n;
}

static void put(sop_store *s, sop_keybuf *kb, const char *value)
{
    sop_docbuf db;
    sop_doc_init(&db);
    sop_doc_str(&db, value, strlen(value));
    sop_val k = {kb->size, kb->data}, v = {db.size, db.data};
    CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
    sop_doc_free(&db);
}

static void make(const char *dir, const char *store, int kind)
{
    sop_env *env;
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    sop_keybuf kb;
    sop_key_init(&kb);
    CHECK_RC(sop_env_open(dir, NULL, &env), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, store, &o, &s), SOP_OK);
    if (kind == 0) { /* doubles with infinities */
        const double ks[] = {-INFINITY, 1.5, INFINITY};
        for (int i = 0; i < 3; i++) {
            sop_key_reset(&kb);
            sop_key_double(&kb, ks[i], 0);
            put(s, &kb, "v");
        }
    } else if (kind == 1) { /* bytes keys */
        sop_key_reset(&kb);
        sop_key_bytes(&kb, "\x00\xff" "bin", 5, 0); /* base64 AP9iaW4= */
        put(s, &kb, "one");
        sop_key_reset(&kb);
        sop_key_bytes(&kb, "\x01\xfe" "bin", 5, 0); /* base64 Af5iaW4= */
        put(s, &kb, "two");
    } else {
        sop_key_reset(&kb);
        sop_key_int(&kb, 1, 0);
        put(s, &kb, "x");
    }
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    sop_key_free(&kb);
}

TEST(dump_infinite_key_is_json)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/inf", base);
    make(dir, "d", 0);
    CHECK(cli("dump", dir, "d") == 0);
    CHECK(json_lines(out_buf) == 3);
}

TEST(dump_bytes_key_keeps_bytes)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/bytes", base);
    make(dir, "b", 1);
    CHECK(cli("dump", dir, "b") == 0);
    CHECK(json_lines(out_buf) == 2);
    /* the keys' bytes, base64 like a bytes value */
    CHECK(strstr(out_buf, "AP9iaW4=") != NULL);
    CHECK(strstr(out_buf, "Af5iaW4=") != NULL);
}

TEST(stores_name_with_newline)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/nl", base);
    make(dir, "a\nb", 2);
    CHECK(cli("stores", dir, NULL) == 0);
    int lines = 0;
    for (const char *p = out_buf; *p; p++)
        lines += *p == '\n';
    CHECK(lines == 1); /* one store, one line */
}

TEST(create_race_one_winner)
{
    int bad_rounds = 0;
    for (int round = 0; round < 30; round++) {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/race%d", base, round);
        pid_t kids[4];
        for (int i = 0; i < 4; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                int nul = open("/dev/null", O_WRONLY);
                if (nul >= 0) {
                    dup2(nul, 1);
                    dup2(nul, 2);
                }
                char *argv[] = {getenv("SOP_CLI"), "create", dir, NULL};
                execv(argv[0], argv);
                _exit(127);
            }
        }
        int ok = 0, refused = 0;
        for (int i = 0; i < 4; i++) {
            int st;
            if (kids[i] > 0 && waitpid(kids[i], &st, 0) == kids[i] && WIFEXITED(st)) {
                ok += WEXITSTATUS(st) == 0;
                refused += WEXITSTATUS(st) == 2;
            }
        }
        if (ok != 1 || refused != 3) {
            if (!bad_rounds)
                fprintf(stderr, "round %d: %d creates exited 0, %d exited 2\n", round, ok, refused);
            bad_rounds++;
        }
    }
    if (bad_rounds)
        fprintf(stderr, "%d of 30 rounds: not exactly one create succeeded\n", bad_rounds);
    CHECK(bad_rounds == 0);
}

int main(void)
{
    if (!getenv("SOP_CLI")) {
        fprintf(stderr, "SOP_CLI is not set (run through ctest)\n");
        return 1;
    }
    snprintf(base, sizeof base, "%s/sop_acli_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(out_path, sizeof out_path, "%s.out", base);
    snprintf(err_path, sizeof err_path, "%s.err", base);
    RUN(dump_infinite_key_is_json);
    RUN(dump_bytes_key_keeps_bytes);
    RUN(stores_name_with_newline);
    RUN(create_race_one_winner);
    if (!getenv("SOP_KEEP")) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", base, out_path, err_path);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup failed\n");
    }
    TEST_EXIT();
}
