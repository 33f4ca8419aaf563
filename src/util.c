/*
 * util.c - clocks and item-id generation.  Item ids are time-ordered
 * (UUIDv7 layout: 48-bit milliseconds, then a counter and random bits), so
 * duplicates of a key iterate in insertion order; a random seed per process
 * (new in a fork() child) keeps processes from handing out the same ids.
 */
#define _GNU_SOURCE /* CLOCK_REALTIME_COARSE */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "sop_int.h"

uint64_t sop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sop_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Milliseconds for ids: a coarse clock is enough (the counter keeps ids
 * ordered and unique within a tick) and costs a third of a precise one. */
static uint64_t id_clock_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_REALTIME_COARSE
    if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0)
#endif
        clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_ms, id_counter, id_seed;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

/* Item ids must differ between processes too (a merge matches items by id
 * across every process's commits).  A fork() child inherits the parent's
 * generator state, so without this it would hand out the parent's next ids
 * (and every sibling the same ones): the child starts from a new seed.  The
 * lock is made anew, since another thread may have held it at the fork. */
static void id_after_fork(void)
{
    pthread_mutex_init(&id_lock, NULL);
    id_seed = 0;
    id_last_ms = 0;
}

static void id_fork_handler(void)
{
    pthread_atfork(NULL, NULL, id_after_fork);
}

static uint64_t id_new_seed(void)
{
    uint64_t r = 0;
#if defined(__linux__)
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = 0;
#endif
    return r ^ sop_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&id_seed;
}

/* Layout: bytes 0-5 ms timestamp (BE), byte 6 = 0x70 | counter bits 40..43,
 * byte 7 counter bits 32..39, byte 8 = 0x80 | counter bits 26..31,
 * bytes 9-11 counter bits 2..25 ... we simply keep a 42-bit monotonic
 * counter within the millisecond (random start) and 54 random bits, with the
 * version and variant nibbles of UUIDv7. */
void sop_id_generate(sop_id *id)
{
    pthread_once(&id_once, id_fork_handler);
    pthread_mutex_lock(&id_lock);
    if (!id_seed)
        id_seed = id_new_seed();
    uint64_t ms = id_clock_ms();
    if (ms > id_last_ms) {
        id_last_ms = ms;
        id_counter = splitmix(&id_seed) & 0xFFFFFFFFull; /* leaves room to count up */
    } else {
        ms = id_last_ms; /* clock went back or same ms: keep order */
        id_counter++;
        if (id_counter >> 42) { /* exhausted: borrow the next millisecond */
            id_last_ms = ++ms;
            id_counter = 0;
        }
    }
    uint64_t ctr = id_counter;
    uint64_t rnd = splitmix(&id_seed);
    pthread_mutex_unlock(&id_lock);

    unsigned char *b = id->bytes;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    /* 42 counter bits: 4 in byte 6, 8 in byte 7, 6 in byte 8, 24 in bytes 9-11 */
    b[6] = (unsigned char)(0x70 | ((ctr >> 38) & 0x0f));
    b[7] = (unsigned char)(ctr >> 30);
    b[8] = (unsigned char)(0x80 | ((ctr >> 24) & 0x3f));
    b[9] = (unsigned char)(ctr >> 16);
    b[10] = (unsigned char)(ctr >> 8);
    b[11] = (unsigned char)ctr;
    for (int i = 12; i < 16; i++)
        b[i] = (unsigned char)(rnd >> (8 * (i - 12)));
}
