/*
 * test_attack_readonly.c - odd files in a database folder (helper h5).
 *
 * fifo_named_like_database_file: a FIFO named like a log file, the
 * checkpoint or the lock file.  Opening the database (writable, read-only,
 * and through the `sop check` path, which opens read-only) must fail with a
 * clear error, never hang: open(2) of a FIFO waits for a writer forever.
 * Each open runs in a child process that is killed after 3 s.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[64];

static void new_db(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_atkr_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    sop_env *env = NULL;
    if (sop_env_open(dir, NULL, &env) != SOP_OK || sop_env_close(env) != SOP_OK)
        abort();
}

static void remove_dir(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* Open in a child: 0 = returned an error, 1 = opened, 2 = hung (killed). */
static int open_in_child(unsigned flags)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sop_env_options o = {.flags = flags};
        sop_env *env = NULL;
        int rc = sop_env_open(dir, &o, &env);
        if (rc != SOP_OK)
            fprintf(stderr, "  open refused: %s: %s\n", sop_errname(rc), sop_errmsg());
        _exit(rc == SOP_OK ? 1 : 0);
    }
    for (int i = 0; i < 300; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 2;
}

static void fifo_case(const char *name, int replace)
{
    new_db();
    char p[200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (replace)
        unlink(p);
    REQUIRE(mkfifo(p, 0644) == 0);
    for (int ro = 0; ro <= 1; ro++) {
        int r = open_in_child(ro ? SOP_ENV_RDONLY : 0);
        if (r == 2)
            fprintf(stderr, "  %s open hangs on the FIFO %s\n", ro ? "read-only" : "writable", name);
        CHECK(r != 2);
    }
    remove_dir();
}

TEST(fifo_named_like_database_file)
{
    fifo_case("log-00000002.sop", 0);
    fifo_case("log-00000001.sop", 1);
    fifo_case("sop.ckpt", 0);
    fifo_case("sop.lock", 1);
}

int main(void)
{
    RUN(fifo_named_like_database_file);
    TEST_EXIT();
}
