/*
 * test_cli.c - the `sop` command-line tool (path in SOP_CLI, set by ctest).
 *
 *  - check reports a clean database as ok, stores and dump print what is there;
 *  - --help / --version print to stdout and exit 0;
 *  - bad arguments and unknown commands exit 2 before anything is opened (the
 *    folder named is not created);
 *  - check (and stores, dump, stats, compact) on a missing path, an empty
 *    folder or a plain file exit 2 and create nothing;
 *  - check changes no byte of a database with a torn tail (exit 0) or a
 *    damaged log (exit 1, report on stdout);
 *  - check, stores, dump and stats work as user nobody on a folder it cannot
 *    write (0555/0444), and as root on a read-only bind mount; compact there
 *    is an error; no file changes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char base[256];          /* scratch folder of this run */
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

/* Run argv (argv[0] is looked up in PATH); stdout and stderr go to out_buf
 * and err_buf.  Returns the exit status, or -1 if it did not exit. */
static int run_argv(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    slurp(out_path, out_buf, sizeof out_buf);
    slurp(err_path, err_buf, sizeof err_buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* sop ARGS... (NULL-terminated) */
static int cli(const char *first, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = getenv("SOP_CLI");
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 15; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return run_argv(argv);
}

/* the same as user nobody (setpriv) */
static const char *cli_copy; /* a copy of the CLI that nobody can run */
static int cli_nobody(const char *first, ...)
{
    char *argv[20];
    int n = 0;
    argv[n++] = "setpriv";
    argv[n++] = "--reuid=nobody";
    argv[n++] = "--regid=nogroup";
    argv[n++] = "--clear-groups";
    argv[n++] = (char *)cli_copy;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 19; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return run_argv(argv);
}

static int has(const char *buf, const char *needle)
{
    return strstr(buf, needle) != NULL;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fprintf(stderr, "command failed: %s\n", cmd);
}

/* A fingerprint of a folder: every name, mode, size and a hash of every
 * byte of every file, in name order. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static uint64_t folder_hash(const char *dir)
{
    uint64_t h = 14695981039346656037ull;
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, by_name);
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, ents[i]->d_name);
        h = fnv(h, ents[i]->d_name, strlen(ents[i]->d_name) + 1);
        struct stat st;
        if (lstat(p, &st) == 0) {
            h = fnv(h, &st.st_mode, sizeof st.st_mode);
            h = fnv(h, &st.st_size, sizeof st.st_size);
            if (S_ISREG(st.st_mode)) {
                FILE *f = fopen(p, "rb");
                char buf[8192];
                size_t k;
                while (f && (k = fread(buf, 1, sizeof buf, f)) > 0)
                    h = fnv(h, buf, k);
                if (f)
                    fclose(f);
            } else if (S_ISDIR(st.st_mode) && strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
                uint64_t sub = folder_hash(p);
                h = fnv(h, &sub, sizeof sub);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return h;
}

static size_t folder_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return (size_t)-1;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* A database in `dir` with store "people": 100 items in one commit, then
 * `more` commits of one item each. */
static void make_db(const char *dir, int more)
{
    sop_env *env;
    CHECK_RC(sop_env_open(dir, NULL, &env), SOP_OK);
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 8;
    o.is_unique = 1;
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_docbuf db;
    sop_doc_init(&db);
    for (int c = 0; c <= more; c++) {
        sop_txn *t;
        sop_store *s;
        CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
        CHECK_RC(sop_store_open(t, "people", &o, &s), SOP_OK);
        int from = c ? 99 + c : 0, to = c ? 100 + c : 100;
        for (int i = from; i < to; i++) {
            sop_key_reset(&kb);
            sop_key_str(&kb, "user", 4, 0);
            sop_key_int(&kb, i, 0);
            sop_doc_reset(&db);
            sop_doc_map(&db, 1);
            sop_doc_str(&db, "age", 3);
            sop_doc_int(&db, 20 + i);
            sop_val k = {kb.size, kb.data}, v = {db.size, db.data};
            CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
        }
        CHECK_RC(sop_txn_commit(t), SOP_OK);
    }
    CHECK_RC(sop_env_close(env), SOP_OK);
    sop_key_free(&kb);
    sop_doc_free(&db);
}

/* Where the data of a log file ends: log files are preallocated with zeros,
 * so this is just past the last non-zero byte. */
static long data_end(const char *log)
{
    FILE *f = fopen(log, "rb");
    if (!f)
        return -1;
    long end = 0, pos = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        pos++;
        if (c)
            end = pos;
    }
    fclose(f);
    return end;
}

/* Offset of the last batch header (magic "SOPC") that starts before end. */
static long last_batch_start(const char *log, long end)
{
    FILE *f = fopen(log, "rb");
    if (!f)
        return -1;
    long found = -1, pos = 0;
    int c, m = 0;
    while (pos < end && (c = fgetc(f)) != EOF) {
        pos++;
        m = c == "SOPC"[m] ? m + 1 : (c == 'S' ? 1 : 0);
        if (m == 4) {
            found = pos - 4;
            m = 0;
        }
    }
    fclose(f);
    return found;
}

static void poke(const char *log, long at, int xor_with, int zero)
{
    FILE *f = fopen(log, "r+b");
    if (!f)
        return;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(zero ? 0 : c ^ xor_with, f);
    fclose(f);
}

/* The newest log file of a database folder. */
static int last_log(const char *dir, char *path, size_t cap)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, by_name), found = 0;
    for (int i = 0; i < n; i++) {
        if (!strncmp(ents[i]->d_name, "log-", 4) && strstr(ents[i]->d_name, ".sop")) {
            snprintf(path, cap, "%s/%s", dir, ents[i]->d_name);
            found = 1;
        }
        free(ents[i]);
    }
    if (n >= 0)
        free(ents);
    return found;
}

static void sub(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", base, name);
}

TEST(check_stores_dump)
{
    char dir[400];
    sub(dir, sizeof dir, "db");
    make_db(dir, 0);
    CHECK(cli("check", dir, NULL) == 0 && has(out_buf, ": ok"));
    CHECK(cli("stores", dir, NULL) == 0 && has(out_buf, "people") && has(out_buf, "100 items"));
    CHECK(cli("dump", dir, "people", "2", NULL) == 0 &&
          has(out_buf, "{\"key\":[\"user\",1],\"value\":{\"age\":21}") && !has(out_buf, "[\"user\",2]"));
    CHECK(cli("dump", dir, "people", NULL) == 0 && has(out_buf, "[\"user\",99]"));
    CHECK(cli("dump", dir, "people", "0", NULL) == 0 && out_buf[0] == 0);
    CHECK(cli("dump", dir, "nobody_here", NULL) == 2 && has(err_buf, "nobody_here"));
    CHECK(cli("stats", dir, NULL) == 0 && has(out_buf, "stores 1"));
    CHECK(cli("compact", dir, NULL) == 0 && has(out_buf, "compacted"));
    CHECK(cli("check", dir, NULL) == 0 && has(out_buf, ": ok"));
}

TEST(help_and_version)
{
    CHECK(cli("--help", NULL) == 0 && has(out_buf, "usage: sop") && has(out_buf, "sop check PATH") && !err_buf[0]);
    CHECK(cli("-h", NULL) == 0 && has(out_buf, "usage: sop"));
    CHECK(cli("check", "--help", NULL) == 0 && has(out_buf, "usage: sop"));
    CHECK(cli("--version", NULL) == 0 && has(out_buf, SOP_VERSION_STRING) && !err_buf[0]);
    /* no arguments at all: usage on stderr, exit 2 */
    CHECK(cli(NULL) == 2 && has(err_buf, "usage: sop") && !out_buf[0]);
}

TEST(bad_arguments_open_nothing)
{
    char p[400];
    sub(p, sizeof p, "not_created");
    CHECK(cli("dump", p, "people", "abc", NULL) == 2 && has(err_buf, "abc"));
    CHECK(cli("dump", p, "people", "-5", NULL) == 2);
    CHECK(cli("dump", "--", p, "people", "-5", NULL) == 2 && has(err_buf, "-5"));
    CHECK(cli("dump", p, "people", "99999999999999999999", NULL) == 2);
    CHECK(cli("dump", p, "people", "12x", NULL) == 2);
    CHECK(cli("dump", p, "people", " 1", NULL) == 2);
    CHECK(cli("dump", p, "people", "+1", NULL) == 2);
    CHECK(cli("dump", p, "people", "", NULL) == 2);
    CHECK(cli("dump", p, "", NULL) == 2);
    CHECK(cli("dump", p, NULL) == 2);
    CHECK(cli("dump", p, "people", "1", "2", NULL) == 2);
    CHECK(cli("-5", NULL) == 2);
    CHECK(cli("check", p, "--frobnicate", NULL) == 2 && has(err_buf, "--frobnicate"));
    CHECK(cli("check", p, "extra", NULL) == 2);
    CHECK(cli("check", NULL) == 2);
    CHECK(cli("check", "", NULL) == 2);
    CHECK(cli("bogus", p, NULL) == 2 && has(err_buf, "bogus"));
    CHECK(cli("create", p, "extra", NULL) == 2);
    CHECK(!exists(p));
}

TEST(nothing_but_create_creates)
{
    char missing[400], empty[400], file[400];
    sub(missing, sizeof missing, "missing");
    sub(empty, sizeof empty, "empty");
    sub(file, sizeof file, "plain_file");
    REQUIRE(mkdir(empty, 0755) == 0);
    FILE *f = fopen(file, "w");
    REQUIRE(f);
    fputs("not a database\n", f);
    fclose(f);
    uint64_t file_hash = folder_hash(base);
    const char *cmds[] = {"check", "stores", "stats", "compact", "dump"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *targets[] = {missing, empty, file};
        for (size_t j = 0; j < 3; j++) {
            int rc = !strcmp(cmds[i], "dump") ? cli(cmds[i], targets[j], "people", NULL)
                                              : cli(cmds[i], targets[j], NULL);
            if (rc != 2 || !err_buf[0] || out_buf[0])
                fprintf(stderr, "  sop %s %s: exit %d, stderr '%s'\n", cmds[i], targets[j], rc, err_buf);
            CHECK(rc == 2 && err_buf[0] && !out_buf[0]);
        }
        CHECK(!exists(missing));
        CHECK(folder_entries(empty) == 0);
        CHECK(folder_hash(base) == file_hash);
    }
    /* create makes one, once; then check finds it clean */
    CHECK(cli("create", missing, NULL) == 0 && has(out_buf, "created"));
    CHECK(exists(missing) && folder_entries(missing) > 0);
    CHECK(cli("create", missing, NULL) == 2 && has(err_buf, "already"));
    CHECK(cli("check", missing, NULL) == 0 && has(out_buf, ": ok"));
    CHECK(cli("stores", missing, NULL) == 0 && !out_buf[0]);
    CHECK(cli("create", empty, NULL) == 0 && folder_entries(empty) > 0);
    CHECK(cli("create", file, NULL) == 2);
}

TEST(check_changes_no_byte)
{
    /* a torn tail: the last sector of the last commit never reached the
     * disk (the preallocated zeros are still there), as a crash leaves it */
    char torn[400], log[600];
    sub(torn, sizeof torn, "torn");
    make_db(torn, 3);
    REQUIRE(last_log(torn, log, sizeof log));
    long end = data_end(log);
    REQUIRE(end > 64);
    long start = last_batch_start(log, end), sector = (end - 1) / 512 * 512;
    REQUIRE(start > 0);
    for (long i = start > sector ? start : sector; i < end; i++)
        poke(log, i, 0, 1);
    uint64_t before = folder_hash(torn);
    int rc = cli("check", torn, NULL);
    CHECK(rc == 0 && has(out_buf, ": ok"));
    if (rc != 0)
        fprintf(stderr, "  check (torn tail): exit %d\n%s%s", rc, out_buf, err_buf);
    CHECK(folder_hash(torn) == before);
    /* the torn commit (the last item) is not there, the others are */
    CHECK(cli("stores", torn, NULL) == 0 && has(out_buf, "people") && has(out_buf, " 102 items"));
    CHECK(cli("dump", torn, "people", NULL) == 0 && has(out_buf, "[\"user\",101]") && !has(out_buf, "[\"user\",102]"));
    CHECK(cli("stats", torn, NULL) == 0);
    CHECK(folder_hash(torn) == before);

    /* a damaged log: a byte flipped in the first, big commit, with good
     * commits after it.  That is damage, not a torn tail: exit 1 and a report
     * on stdout, and nothing is cut. */
    char bad[400];
    sub(bad, sizeof bad, "damaged");
    make_db(bad, 3);
    REQUIRE(last_log(bad, log, sizeof log));
    end = data_end(log);
    REQUIRE(end > 64);
    poke(log, end / 3, 0x5a, 0);
    before = folder_hash(bad);
    rc = cli("check", bad, NULL);
    CHECK(rc == 1 && has(out_buf, "CORRUPT"));
    if (rc != 1)
        fprintf(stderr, "  check (damaged): exit %d\n%s%s", rc, out_buf, err_buf);
    CHECK(folder_hash(bad) == before);
    CHECK(cli("stores", bad, NULL) != 0);
    CHECK(cli("stats", bad, NULL) != 0);
    CHECK(folder_hash(bad) == before);
}

/* Read-only use: the commands that only read work without write permission
 * (as nobody) and on a read-only mount (as root); compact is refused. */
static void readonly_commands(int (*run)(const char *, ...), const char *dir, const char *how)
{
    uint64_t before = folder_hash(dir);
    int rc;
    CHECK((rc = run("check", dir, NULL)) == 0 && has(out_buf, ": ok"));
    if (rc)
        fprintf(stderr, "  %s: check: exit %d: %s%s", how, rc, out_buf, err_buf);
    CHECK((rc = run("stores", dir, NULL)) == 0 && has(out_buf, "people") && has(out_buf, "102 items"));
    if (rc)
        fprintf(stderr, "  %s: stores: exit %d: %s", how, rc, err_buf);
    CHECK(run("dump", dir, "people", "3", NULL) == 0 && has(out_buf, "[\"user\",2]"));
    CHECK(run("dump", dir, "people", NULL) == 0 && has(out_buf, "[\"user\",101]"));
    CHECK(run("stats", dir, NULL) == 0 && has(out_buf, "stores 1") && has(out_buf, "read_only 1"));
    CHECK(run("compact", dir, NULL) == 2 && err_buf[0]);
    CHECK(folder_hash(dir) == before);
}

TEST(read_only_as_nobody)
{
    if (access("/usr/bin/setpriv", X_OK) != 0 && access("/bin/setpriv", X_OK) != 0) {
        fprintf(stderr, "  SKIP read_only_as_nobody: setpriv (util-linux) is not installed\n");
        return;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "  SKIP read_only_as_nobody: needs root to switch to user nobody\n");
        return;
    }
    char dir[400], copy[400];
    sub(dir, sizeof dir, "ro_nobody");
    sub(copy, sizeof copy, "sop_copy");
    make_db(dir, 2);
    sh("cp '%s' '%s' && chmod 0755 '%s' '%s'", getenv("SOP_CLI"), copy, copy, base);
    cli_copy = copy;
    char *probe[] = {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "test", "-x", copy, NULL};
    if (run_argv(probe) != 0) {
        fprintf(stderr, "  SKIP read_only_as_nobody: nobody cannot run %s (parent folders?): %s\n", copy, err_buf);
        return;
    }
    sh("chmod 0444 '%s'/* && chmod 0555 '%s'", dir, dir);
    readonly_commands(cli_nobody, dir, "nobody");
    /* nobody cannot create either, and says so */
    char nc[400];
    sub(nc, sizeof nc, "ro_nobody/new");
    CHECK(cli_nobody("create", nc, NULL) == 2 && !exists(nc));
    sh("chmod 0755 '%s' && chmod 0644 '%s'/*", dir, dir);
}

TEST(read_only_mount)
{
    if (geteuid() != 0) {
        fprintf(stderr, "  SKIP read_only_mount: needs root for mount --bind\n");
        return;
    }
    char dir[400], mnt[400];
    sub(dir, sizeof dir, "ro_src");
    sub(mnt, sizeof mnt, "ro_mnt");
    make_db(dir, 2);
    REQUIRE(mkdir(mnt, 0755) == 0);
    if (mount(dir, mnt, NULL, MS_BIND, NULL) != 0) {
        fprintf(stderr, "  SKIP read_only_mount: mount --bind refused here (%s)\n", strerror(errno));
        return;
    }
    if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
        fprintf(stderr, "  SKIP read_only_mount: read-only remount refused here (%s)\n", strerror(errno));
        umount(mnt);
        return;
    }
    readonly_commands(cli, mnt, "read-only mount");
    CHECK(umount(mnt) == 0);
}

int main(void)
{
    if (!getenv("SOP_CLI")) {
        fprintf(stderr, "SOP_CLI (the path of the sop tool) is not set; ctest sets it\n");
        return 1;
    }
    snprintf(base, sizeof base, "%s/sop_cli_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(out_path, sizeof out_path, "%s.out", base);
    snprintf(err_path, sizeof err_path, "%s.err", base);
    RUN(check_stores_dump);
    RUN(help_and_version);
    RUN(bad_arguments_open_nothing);
    RUN(nothing_but_create_creates);
    RUN(check_changes_no_byte);
    RUN(read_only_as_nobody);
    RUN(read_only_mount);
    if (!getenv("SOP_KEEP"))
        sh("chmod -R u+w '%s'; rm -rf '%s' '%s' '%s'", base, base, out_path, err_path);
    TEST_EXIT();
}
