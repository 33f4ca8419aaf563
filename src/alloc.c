/*
 * alloc.c - the library's allocator entry points.  Every heap allocation of
 * libsop goes through here, so tests can count or fail allocations and
 * memory can be accounted for in one place.
 */
#include <stdlib.h>
#include <string.h>

#include "sop_int.h"

void *sop_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *sop_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *sop_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

char *sop_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sop_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void sop_free(void *p)
{
    free(p);
}
