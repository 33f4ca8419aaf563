/*
 * sop_cli.c - the `sop` command-line tool: inspect a database folder.
 *
 *   sop create PATH           create a new, empty database (the only command that creates one)
 *   sop check PATH            integrity check (exit 0 clean, 1 damage found, 2 error)
 *   sop stores PATH           list stores with their item counts
 *   sop dump PATH STORE [N]   print up to N items (default all) as JSON lines
 *   sop stats PATH            engine statistics
 *   sop compact PATH          checkpoint, compact the log, delete dead files
 *
 * check, stores, dump and stats open the database read-only (SOP_ENV_RDONLY):
 * they create, truncate and repair nothing, so they also work for a user
 * without write permission and on a read-only mount.  compact opens an
 * existing database only (SOP_ENV_NOCREATE).  Every argument is checked
 * before anything is opened.
 *
 * Exit status: 0 ok, 1 damage found (the report on stdout), 2 usage or open
 * error (a message on stderr).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sop.h"

enum { EXIT_OK = 0, EXIT_DAMAGE = 1, EXIT_ERROR = 2 };

static const char usage_text[] =
    "usage: sop COMMAND [ARGS]\n"
    "\n"
    "  sop create PATH            create a new, empty database in folder PATH\n"
    "                             (its parent must exist; fails if PATH already holds one)\n"
    "  sop check PATH             integrity check of the whole database\n"
    "  sop stores PATH            list the stores with their item counts and options\n"
    "  sop dump PATH STORE [N]    print the first N items of STORE (default all) as JSON lines\n"
    "  sop stats PATH             engine statistics\n"
    "  sop compact PATH           checkpoint, compact the log, delete dead files\n"
    "  sop --help | -h            this text\n"
    "  sop --version              the version\n"
    "\n"
    "check, stores, dump and stats only read: they never create, truncate or repair\n"
    "anything and work without write permission.  Only create makes a database; every\n"
    "other command fails on a folder that holds none.  Put -- before a PATH that\n"
    "starts with '-'.\n"
    "\n"
    "exit status: 0 ok, 1 damage found (report on stdout), 2 usage or open error\n"
    "(message on stderr)\n";

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sop: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'sop --help'.\n", stderr);
    return EXIT_ERROR;
}

/* A failed engine call: damage is exit 1, anything else exit 2. */
static int fail(int rc, const char *what)
{
    fprintf(stderr, "sop: %s: %s (%s)\n", what, sop_errmsg(), sop_errname(rc));
    return rc == SOP_CORRUPT ? EXIT_DAMAGE : EXIT_ERROR;
}

/* A count: decimal digits only (no sign, no blanks, no junk), within 64 bits. */
static int parse_count(const char *s, unsigned long long *out)
{
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end)
        return -1;
    *out = v;
    return 0;
}

static void print_json_string(const unsigned char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar((int)c);
    }
    putchar('"');
}

/* bytes as standard base64 with padding, in a JSON string */
static void print_base64(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    putchar('"');
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        putchar(tab[v >> 18 & 63]);
        putchar(tab[v >> 12 & 63]);
        putchar(i + 1 < n ? tab[v >> 6 & 63] : '=');
        putchar(i + 2 < n ? tab[v & 63] : '=');
    }
    putchar('"');
}

/* A double as JSON: JSON has no infinities or NaN, so those are tagged
 * objects ({"$double":"inf"}), like bytes are ({"$bytes":...}). */
static void print_double(double d)
{
    if (d != d)
        printf("{\"$double\":\"nan\"}");
    else if (d > 1.7976931348623157e308)
        printf("{\"$double\":\"inf\"}");
    else if (d < -1.7976931348623157e308)
        printf("{\"$double\":\"-inf\"}");
    else
        printf("%.17g", d);
}

/* A name for the table of `sop stores`: backslashes and control characters
 * escaped (\n, \xNN), so one store is one line. */
static void print_name(const char *name, int width)
{
    int n = 0;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        if (*c == '\\')
            n += printf("\\\\");
        else if (*c == '\n')
            n += printf("\\n");
        else if (*c == '\t')
            n += printf("\\t");
        else if (*c < 0x20 || *c == 0x7f)
            n += printf("\\x%02x", *c);
        else {
            putchar(*c);
            n++;
        }
    }
    for (; n < width; n++)
        putchar(' ');
}

/* An encoded key as JSON: a scalar, or an array for composite keys. */
static void print_key(const sop_val *k)
{
    sop_key_reader r;
    sop_key_field f;
    sop_key_reader_init(&r, k->data, k->size);
    int n = 0, rc;
    printf("[");
    while ((rc = sop_key_next(&r, &f)) == 1) {
        if (n++)
            printf(",");
        switch (f.type) {
        case SOP_KT_NULL: printf("null"); break;
        case SOP_KT_BOOL: printf(f.i ? "true" : "false"); break;
        case SOP_KT_INT: printf("%lld", (long long)f.i); break;
        case SOP_KT_UINT: printf("%llu", (unsigned long long)f.u); break;
        case SOP_KT_DOUBLE: print_double(f.d); break;
        case SOP_KT_STR: print_json_string(f.p, f.n); break;
        default:
            printf("{\"$bytes\":");
            print_base64(f.p, f.n);
            printf("}");
            break;
        }
    }
    printf("]");
    sop_key_reader_free(&r);
    if (rc < 0)
        printf(" /* undecodable key */");
}

static void print_doc(const sop_val *v)
{
    char *json = NULL;
    size_t len = 0;
    if (v->size && sop_doc_to_json(v->data, v->size, &json, &len) == SOP_OK) {
        fwrite(json, 1, len, stdout);
        sop_free(json);
    } else if (!v->size) {
        printf("null");
    } else {
        printf("{\"$raw_len\":%zu}", v->size);
    }
}

static int dump_item(void *arg, const sop_val *k, const sop_val *d, const sop_val *v, const sop_id *id)
{
    (void)arg;
    char ids[37];
    sop_id_format(id, ids);
    printf("{\"key\":");
    print_key(k);
    if (d->size) {
        printf(",\"key_doc\":");
        print_doc(d);
    }
    printf(",\"value\":");
    print_doc(v);
    printf(",\"id\":\"%s\"}\n", ids);
    return 0;
}

/* ------------------------------------------------------------ commands */
typedef struct command {
    const char *name;
    int min_args, max_args; /* after the command name, PATH included */
    unsigned open_flags;    /* SOP_ENV_* for sop_env_open */
} command;

static const command commands[] = {
    {"create", 1, 1, 0},
    {"check", 1, 1, SOP_ENV_RDONLY},
    {"stores", 1, 1, SOP_ENV_RDONLY},
    {"dump", 2, 3, SOP_ENV_RDONLY},
    {"stats", 1, 1, SOP_ENV_RDONLY},
    {"compact", 1, 1, SOP_ENV_NOCREATE},
};

static int open_env(const char *path, unsigned flags, sop_env **env)
{
    sop_env_options o = {.flags = flags};
    return sop_env_open(path, &o, env);
}

static int cmd_create(const char *path)
{
    sop_env *env;
    /* Look first, read-only: an existing database is left as it is. */
    int rc = open_env(path, SOP_ENV_RDONLY, &env);
    if (rc == SOP_OK) {
        sop_env_close(env);
        fprintf(stderr, "sop: %s: already holds a database; nothing created\n", path);
        return EXIT_ERROR;
    }
    if (rc != SOP_NOTFOUND)
        return fail(rc, path);
    /* create-new: decided under the database's lock, so of several
     * creators at once exactly one succeeds */
    if ((rc = open_env(path, SOP_ENV_CREATE_NEW, &env)) == SOP_KEYEXIST) {
        fprintf(stderr, "sop: %s: already holds a database; nothing created\n", path);
        return EXIT_ERROR;
    }
    if (rc != SOP_OK)
        return fail(rc, path);
    if (sop_env_readonly(env)) {
        sop_env_close(env);
        fprintf(stderr, "sop: %s: cannot be written; nothing created\n", path);
        return EXIT_ERROR;
    }
    rc = sop_env_close(env);
    if (rc != SOP_OK)
        return fail(rc, path);
    printf("%s: created\n", path);
    return EXIT_OK;
}

static int cmd_check(sop_env *env, const char *path)
{
    char *report = NULL;
    int rc = sop_env_check(env, &report), status = EXIT_OK;
    if (rc == SOP_OK) {
        printf("%s: ok\n", path);
    } else if (rc == SOP_CORRUPT) {
        const char *r = report ? report : sop_errmsg();
        printf("%s: CORRUPT\n%s%s", path, r, *r && r[strlen(r) - 1] == '\n' ? "" : "\n");
        status = EXIT_DAMAGE;
    } else {
        status = fail(rc, "check");
    }
    sop_free(report);
    return status;
}

static const char *placement_name(int p)
{
    return p == SOP_VALUE_SMALL ? "small values" : p == SOP_VALUE_MEDIUM ? "medium values" : "big values";
}

static int cmd_stores(sop_env *env)
{
    char **names;
    size_t n;
    int rc = sop_env_list_stores(env, &names, &n);
    if (rc != SOP_OK)
        return fail(rc, "stores");
    sop_txn *t;
    if ((rc = sop_txn_begin(env, SOP_TXN_NOCHECK, 0, &t)) != SOP_OK) {
        sop_free(names);
        return fail(rc, "stores");
    }
    int status = EXIT_OK;
    for (size_t i = 0; i < n && status == EXIT_OK; i++) {
        sop_store *s;
        sop_store_info info;
        if ((rc = sop_store_open(t, names[i], NULL, &s)) != SOP_OK ||
            (rc = sop_store_get_info(s, &info)) != SOP_OK) {
            status = fail(rc, names[i]);
            break;
        }
        print_name(names[i], 30);
        printf(" %12llu items  slot_length %u  %s  %s\n", (unsigned long long)info.count,
               info.options.slot_length, info.options.is_unique ? "unique" : "non-unique",
               placement_name(info.options.value_placement));
    }
    sop_txn_abort(t);
    sop_free(names);
    return status;
}

static int cmd_dump(sop_env *env, const char *store, int have_limit, unsigned long long limit)
{
    sop_txn *t;
    sop_store *s;
    sop_cursor *c;
    int rc = sop_txn_begin(env, SOP_TXN_NOCHECK, 0, &t);
    if (rc != SOP_OK)
        return fail(rc, "dump");
    int status = EXIT_OK;
    if ((rc = sop_store_open(t, store, NULL, &s)) != SOP_OK || (rc = sop_cursor_open(s, &c)) != SOP_OK) {
        status = fail(rc, store);
    } else if (!have_limit || limit) {
        sop_paging pg = {0, have_limit ? limit : UINT64_MAX, 0, SOP_FORWARD};
        if ((rc = sop_cursor_fetch(c, &pg, SOP_FETCH_VALUES, dump_item, NULL)) != SOP_OK)
            status = fail(rc, "dump");
    }
    sop_txn_abort(t);
    return status;
}

static int cmd_stats(sop_env *env)
{
    sop_env_stats st;
    int rc = sop_env_stat(env, &st);
    if (rc != SOP_OK)
        return fail(rc, "stats");
    printf("commit_seq %llu\nstores %llu\nlog_bytes %llu\nlive_bytes %llu\ncache_bytes %llu\nread_only %d\n",
           (unsigned long long)st.commit_seq, (unsigned long long)st.stores,
           (unsigned long long)st.log_bytes, (unsigned long long)st.live_bytes,
           (unsigned long long)st.cache_bytes, sop_env_readonly(env));
    return EXIT_OK;
}

static int cmd_compact(sop_env *env, const char *path)
{
    int rc = sop_env_compact(env);
    if (rc != SOP_OK)
        return fail(rc, "compact");
    printf("%s: compacted\n", path);
    return EXIT_OK;
}

static int run(const command *cmd, char **args)
{
    const char *path = args[0];
    int have_limit = 0;
    unsigned long long limit = 0;
    if (!*path)
        return usage_error("PATH is empty");
    if (!strcmp(cmd->name, "dump")) {
        size_t n = strlen(args[1]);
        if (n == 0 || n > SOP_MAX_STORE_NAME)
            return usage_error("dump: STORE must be 1..%d bytes", SOP_MAX_STORE_NAME);
        if (args[2]) {
            if (parse_count(args[2], &limit) != 0)
                return usage_error("dump: N must be a count of items (0..18446744073709551615), not '%s'",
                                   args[2]);
            have_limit = 1;
        }
    }
    if (!strcmp(cmd->name, "create"))
        return cmd_create(path);

    sop_env *env;
    int rc = open_env(path, cmd->open_flags, &env);
    if (rc == SOP_NOTFOUND) {
        fprintf(stderr, "sop: %s: no database there (%s); 'sop create' makes one\n", path, sop_errmsg());
        return EXIT_ERROR;
    }
    if (rc == SOP_CORRUPT && !strcmp(cmd->name, "check")) {
        /* damage found at open is reported like any other damage */
        printf("%s: CORRUPT\n%s\n", path, sop_errmsg());
        return EXIT_DAMAGE;
    }
    if (rc != SOP_OK)
        return fail(rc, path);
    int status;
    if (!strcmp(cmd->name, "check"))
        status = cmd_check(env, path);
    else if (!strcmp(cmd->name, "stores"))
        status = cmd_stores(env);
    else if (!strcmp(cmd->name, "dump"))
        status = cmd_dump(env, args[1], have_limit, limit);
    else if (!strcmp(cmd->name, "stats"))
        status = cmd_stats(env);
    else
        status = cmd_compact(env, path);
    rc = sop_env_close(env);
    if (rc != SOP_OK && status == EXIT_OK)
        status = fail(rc, path);
    return status;
}

int main(int argc, char **argv)
{
    /* Options first, wherever they stand (up to a "--"): --help and
     * --version win over everything else; any other option is an error. */
    char *pos[8];
    int npos = 0, help = 0, version = 0, dashdash = 0;
    const char *bad_option = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && a[0] == '-' && a[1]) {
            if (!strcmp(a, "--"))
                dashdash = 1;
            else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
                help = 1;
            else if (!strcmp(a, "--version"))
                version = 1;
            else if (!bad_option)
                bad_option = a;
            continue;
        }
        if (npos < (int)(sizeof pos / sizeof pos[0]))
            pos[npos] = argv[i];
        npos++;
    }
    if (help || (npos == 1 && !strcmp(pos[0], "help") && !bad_option && !version)) {
        fputs(usage_text, stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? EXIT_OK : EXIT_ERROR;
    }
    if (version) {
        printf("sop %s\n", SOP_VERSION_STRING);
        return fflush(stdout) == 0 && !ferror(stdout) ? EXIT_OK : EXIT_ERROR;
    }
    if (bad_option)
        return usage_error("unknown option '%s'", bad_option);
    if (npos == 0) {
        fputs(usage_text, stderr);
        return EXIT_ERROR;
    }
    const command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(pos[0], commands[i].name))
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command '%s'", pos[0]);
    int nargs = npos - 1;
    if (nargs < cmd->min_args || nargs > cmd->max_args)
        return usage_error(nargs < cmd->min_args ? "%s: missing arguments" : "%s: too many arguments",
                           cmd->name);
    char *args[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < nargs; i++)
        args[i] = pos[1 + i];
    int status = run(cmd, args);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sop: cannot write the output: %s\n", strerror(errno));
        return EXIT_ERROR;
    }
    return status;
}
