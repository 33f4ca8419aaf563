/*
 * err.c - the error table (generated from SOP_ERRORS in sop.h), static
 * descriptions, and the per-thread detail message behind sop_errmsg().
 */
#include <stdarg.h>
#include <stdio.h>

#include "sop_int.h"

#define ROW_(name, code, pyname, pybase, desc) {code, #name, pyname, pybase, desc},
static const sop_error_info error_table[] = {SOP_ERRORS(ROW_)};
#undef ROW_
#define NAME_(name, code, pyname, pybase, desc) [code] = "SOP_" #name,
static const char *const error_names[] = {SOP_ERRORS(NAME_)};
#undef NAME_

static _Thread_local char last_msg[1024];

const sop_error_info *sop_error_table(size_t *count)
{
    *count = sizeof(error_table) / sizeof(error_table[0]);
    return error_table;
}

const char *sop_strerror(int rc)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == rc)
            return error_table[i].description;
    return "unknown error";
}

const char *sop_errname(int rc)
{
    if (rc >= 0 && rc < (int)(sizeof(error_names) / sizeof(error_names[0])) && error_names[rc])
        return error_names[rc];
    return "SOP_UNKNOWN";
}

const char *sop_errmsg(void)
{
    return last_msg[0] ? last_msg : "no error detail";
}

void sop_clear_errmsg(void)
{
    last_msg[0] = 0;
}

static void set_msg(int rc, const char *fmt, va_list ap)
{
    char detail[900];
    vsnprintf(detail, sizeof detail, fmt, ap);
    const char *desc = sop_strerror(rc);
    /* "<description>: <detail>", without saying the description twice when
     * the detail already starts with it */
    if (strncmp(detail, desc, strlen(desc)) == 0)
        snprintf(last_msg, sizeof last_msg, "%s", detail);
    else
        snprintf(last_msg, sizeof last_msg, "%s: %s", desc, detail);
}

int sop_report(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msg(rc, fmt, ap);
    va_end(ap);
    return rc;
}

int sop_corrupt_at(const char *file, int line, const char *fmt, ...)
{
    /* The single place every detected corruption passes through: a good
     * breakpoint when debugging. */
    va_list ap;
    va_start(ap, fmt);
    set_msg(SOP_CORRUPT, fmt, ap);
    va_end(ap);
    (void)file;
    (void)line;
    return SOP_CORRUPT;
}
