/*
 * test_readonly.c - opening without the right to change anything.
 *  - SOP_ENV_RDONLY and SOP_ENV_NOCREATE on a missing path, an empty folder
 *    or a plain file: SOP_NOTFOUND, and nothing is created;
 *  - SOP_ENV_RDONLY on a database: reads, store lists and the integrity
 *    check work, writes and compaction fail with SOP_READONLY, and every
 *    file is byte for byte what it was (also with a torn tail in the log,
 *    which a read-only open leaves in place);
 *  - a read-only handle follows commits another process makes later;
 *  - a database whose files cannot be written (a user without permission)
 *    opens read-only by itself (run as user nobody in a child when the test
 *    runs as root, else skipped with a message).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[64];

static void new_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_ro_XXXXXX");
    if (!mkdtemp(dir))
        abort();
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* FNV-1a over the names, sizes and bytes of every file in dir. */
static uint64_t folder_hash(const char *path)
{
    uint64_t h = 1469598103934665603ull;
    struct dirent **list = NULL;
    int n = scandir(path, &list, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        for (const char *c = name; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", path, name);
        FILE *f = name[0] == '.' ? NULL : fopen(p, "rb");
        if (f) {
            int c;
            uint64_t size = 0;
            while ((c = fgetc(f)) != EOF) {
                h = (h ^ (unsigned)c) * 1099511628211ull;
                size++;
            }
            h = (h ^ size) * 1099511628211ull;
            fclose(f);
        }
        free(list[i]);
    }
    free(list);
    return n < 0 ? 0 : h;
}

static int put(sop_env *env, const char *key, const char *val)
{
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_store_options o = {.slot_length = 8, .is_unique = 1};
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc == SOP_OK)
        rc = sop_store_open(t, "kv", &o, &s);
    if (rc == SOP_OK) {
        sop_val k = {strlen(key), key}, v = {strlen(val), val};
        rc = sop_upsert(s, &k, NULL, &v);
    }
    if (rc == SOP_OK) {
        rc = sop_txn_commit(t);
        t = NULL;
    }
    sop_txn_abort(t);
    return rc;
}

/* The value of key, compared with want (NULL: absent). */
static int has(sop_env *env, const char *key, const char *want)
{
    sop_txn *t = NULL;
    sop_store *s = NULL;
    int ok = 0;
    if (sop_txn_begin(env, SOP_TXN_READ, 0, &t) == SOP_OK && sop_store_open(t, "kv", NULL, &s) == SOP_OK) {
        sop_val k = {strlen(key), key}, v;
        int rc = sop_get(s, &k, NULL, &v, NULL);
        ok = want ? rc == SOP_OK && v.size == strlen(want) && !memcmp(v.data, want, v.size) : rc == SOP_NOTFOUND;
    }
    sop_txn_abort(t);
    return ok;
}

static void make_db(int items)
{
    sop_env *env = NULL;
    if (sop_env_open(dir, NULL, &env) != SOP_OK)
        abort();
    for (int i = 0; i < items; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "k%04d", i);
        snprintf(v, sizeof v, "v%04d", i);
        if (put(env, k, v) != SOP_OK)
            abort();
    }
    sop_env_close(env);
}

TEST(nothing_created)
{
    new_dir();
    const unsigned modes[2] = {SOP_ENV_RDONLY, SOP_ENV_NOCREATE};
    for (int m = 0; m < 2; m++) {
        sop_env_options o = {.flags = modes[m]};
        sop_env *env = NULL;
        char p[400];
        struct stat st;
        /* a missing folder */
        snprintf(p, sizeof p, "%s/missing", dir);
        CHECK_RC(sop_env_open(p, &o, &env), SOP_NOTFOUND);
        CHECK(env == NULL);
        CHECK(stat(p, &st) != 0);
        /* an empty folder: stays empty */
        snprintf(p, sizeof p, "%s/empty", dir);
        mkdir(p, 0755);
        uint64_t before = folder_hash(p);
        CHECK_RC(sop_env_open(p, &o, &env), SOP_NOTFOUND);
        CHECK(strstr(sop_errmsg(), "no SOP database") != NULL);
        CHECK(folder_hash(p) == before);
        /* a plain file */
        snprintf(p, sizeof p, "%s/file", dir);
        FILE *f = fopen(p, "w");
        fputs("not a database", f);
        fclose(f);
        CHECK_RC(sop_env_open(p, &o, &env), SOP_NOTFOUND);
        CHECK(strstr(sop_errmsg(), "not a database folder") != NULL);
    }
    remove_dir();
}

TEST(reads_only_and_changes_nothing)
{
    new_dir();
    make_db(50);
    /* a torn tail: half a batch of garbage-free zeros and a partial header
     * would be cut by a writable open; a read-only one leaves it */
    char logp[400];
    snprintf(logp, sizeof logp, "%s/log-00000001.sop", dir);
    struct stat st;
    REQUIRE(stat(logp, &st) == 0);
    int fd = open(logp, O_WRONLY);
    REQUIRE(fd >= 0);
    const char partial[8] = {'S', 'O', 'P', 'C', 1, 1, 0, 0};
    REQUIRE(pwrite(fd, partial, sizeof partial, st.st_size) == (ssize_t)sizeof partial);
    close(fd);
    uint64_t before = folder_hash(dir);
    sop_env_options o = {.flags = SOP_ENV_RDONLY};
    sop_env *env = NULL;
    REQUIRE(sop_env_open(dir, &o, &env) == SOP_OK);
    CHECK(sop_env_readonly(env) == 1);
    CHECK(has(env, "k0000", "v0000"));
    CHECK(has(env, "k0049", "v0049"));
    CHECK(has(env, "k0050", NULL));
    char **names = NULL;
    size_t n = 0;
    CHECK_RC(sop_env_list_stores(env, &names, &n), SOP_OK);
    CHECK(n == 1 && names && !strcmp(names[0], "kv"));
    sop_free(names);
    char *report = NULL;
    CHECK_RC(sop_env_check(env, &report), SOP_OK);
    sop_free(report);
    sop_txn *t = NULL;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_READONLY);
    CHECK(t == NULL);
    CHECK(strstr(sop_errmsg(), "read-only") != NULL);
    CHECK_RC(sop_env_compact(env), SOP_READONLY);
    CHECK_RC(sop_env_remove_store(env, "kv"), SOP_READONLY);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_NOCHECK, 0, &t), SOP_OK);
    sop_txn_abort(t);
    CHECK_RC(sop_env_close(env), SOP_OK);
    CHECK(folder_hash(dir) == before);
    /* a writable open cuts the torn tail, and all is there */
    REQUIRE(sop_env_open(dir, NULL, &env) == SOP_OK);
    CHECK(sop_env_readonly(env) == 0);
    CHECK(has(env, "k0049", "v0049"));
    sop_env_close(env);
    remove_dir();
}

TEST(follows_other_writers)
{
    new_dir();
    make_db(3);
    sop_env_options o = {.flags = SOP_ENV_RDONLY};
    sop_env *ro = NULL;
    REQUIRE(sop_env_open(dir, &o, &ro) == SOP_OK);
    CHECK(has(ro, "k0002", "v0002"));
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        sop_env *w = NULL;
        int ok = sop_env_open(dir, NULL, &w) == SOP_OK && put(w, "new", "after") == SOP_OK &&
                 put(w, "k0000", "changed") == SOP_OK && sop_env_close(w) == SOP_OK;
        _exit(ok ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(has(ro, "new", "after"));
    CHECK(has(ro, "k0000", "changed"));
    sop_env_close(ro);
    remove_dir();
}

/* A read-only handle has no readers slot, so a writer may delete log files
 * it has not read yet: it must then say so (SOP_POISONED, reopen), never
 * answer from a stale state as if nothing had been committed. */
TEST(readonly_falls_behind_loudly)
{
    new_dir();
    sop_env_options small = {.flags = SOP_ENV_NOSYNC, .log_file_bytes = 64u << 10};
    sop_env *w = NULL;
    REQUIRE(sop_env_open(dir, &small, &w) == SOP_OK);
    REQUIRE(put(w, "k", "v0") == SOP_OK);
    sop_env_close(w);
    sop_env_options ro = small;
    ro.flags |= SOP_ENV_RDONLY;
    sop_env *r = NULL;
    REQUIRE(sop_env_open(dir, &ro, &r) == SOP_OK);
    CHECK(has(r, "k", "v0"));
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        static char big[1000];
        memset(big, 'b', sizeof big - 1);
        sop_env *e = NULL;
        int ok = sop_env_open(dir, &small, &e) == SOP_OK;
        for (int i = 0; ok && i < 400; i++) {
            char k[16];
            snprintf(k, sizeof k, "x%03d", i);
            ok = put(e, k, big) == SOP_OK;
        }
        ok = ok && put(e, "k", "v1") == SOP_OK && sop_env_compact(e) == SOP_OK;
        sop_env_close(e);
        _exit(ok ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sop_txn *t = NULL;
    int rc = sop_txn_begin(r, SOP_TXN_READ, 0, &t);
    if (rc == SOP_OK) {
        /* it could still follow: then it must see the new value */
        sop_txn_abort(t);
        CHECK(has(r, "k", "v1"));
    } else {
        CHECK_RC(rc, SOP_POISONED);
        CHECK(strstr(sop_errmsg(), "reopen") != NULL);
    }
    sop_env_close(r);
    REQUIRE(sop_env_open(dir, &ro, &r) == SOP_OK);
    CHECK(has(r, "k", "v1"));
    sop_env_close(r);
    remove_dir();
}

/* A user who may read but not write the folder opens it read-only without
 * asking: needs root to become another user. */
TEST(not_writable_opens_readonly)
{
    if (geteuid() != 0) {
        fprintf(stderr, "not_writable_opens_readonly: skipped (needs root to run as nobody)\n");
        return;
    }
    new_dir();
    make_db(10);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod 0755 %s && chmod 0444 %s/* && chmod 0555 %s", dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    uint64_t before = folder_hash(dir);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        sop_env *env = NULL;
        int rc = sop_env_open(dir, NULL, &env);
        if (rc != SOP_OK) {
            fprintf(stderr, "open as nobody: %s: %s\n", sop_errname(rc), sop_errmsg());
            _exit(4);
        }
        int bad = 0;
        if (sop_env_readonly(env) != 1)
            bad |= 1;
        if (!has(env, "k0009", "v0009"))
            bad |= 2;
        if (put(env, "x", "y") != SOP_READONLY || !strstr(sop_errmsg(), "read-only"))
            bad |= 4;
        sop_env_close(env);
        _exit(bad ? 10 + bad : 0);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFEXITED(status) && WEXITSTATUS(status))
        fprintf(stderr, "child exit %d\n", WEXITSTATUS(status));
    CHECK(folder_hash(dir) == before);
    remove_dir();
}

int main(void)
{
    RUN(nothing_created);
    RUN(reads_only_and_changes_nothing);
    RUN(follows_other_writers);
    RUN(readonly_falls_behind_loudly);
    RUN(not_writable_opens_readonly);
    TEST_EXIT();
}
