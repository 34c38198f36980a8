/*
 * What a sandboxed script sees of time, so that two runs on one input print the same bytes
 * (node/sandbox/bwrap.py, "Determinism"). The sandbox loads this library into every process
 * through its /etc/ld.so.preload, whatever the environment says.
 *
 * - The wall clock (clock_gettime's realtime clocks, gettimeofday, time, timespec_get) reads
 *   TRIGGERX_TIME, the input block's timestamp, and never moves.
 * - Every other clock (monotonic, boot time, CPU time) starts at 1,000 s and moves 1 ms at
 *   each reading: timers still fire, and the same program reads the same times.
 * - File times (the stat family and statx, also through syscall(2), which libuv uses) read 0:
 *   the kernel stamps a file written in /tmp with the host's clock.
 * - Randomness (getrandom, getentropy, and getrandom through syscall(2), as OpenSSL asks for
 *   it) is a fixed stream per thread, splitmix64 from a constant seed.
 *
 * Calls that bypass libc (inline syscalls, reading the vDSO by hand) still see the host's
 * clock; the sandbox leaves a script no way to load its own native code (docs/architecture.md).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

static time_t wall_seconds(void) {
    static time_t wall = -1;
    if (wall < 0) {
        const char *value = getenv("TRIGGERX_TIME");
        long long seconds = value ? strtoll(value, NULL, 10) : 0;
        wall = seconds > 0 ? (time_t)seconds : 0;
    }
    return wall;
}

static __thread unsigned long long readings; /* of the clocks that move, by this thread */

int clock_gettime(clockid_t clock, struct timespec *now) {
    if (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE || clock == CLOCK_TAI) {
        now->tv_sec = wall_seconds();
        now->tv_nsec = 0;
        return 0;
    }
    unsigned long long ms = __atomic_add_fetch(&readings, 1, __ATOMIC_RELAXED);
    now->tv_sec = 1000 + (time_t)(ms / 1000);
    now->tv_nsec = (long)(ms % 1000) * 1000000L;
    return 0;
}

int gettimeofday(struct timeval *restrict now, void *restrict zone) {
    (void)zone;
    now->tv_sec = wall_seconds();
    now->tv_usec = 0;
    return 0;
}

time_t time(time_t *now) {
    time_t seconds = wall_seconds();
    if (now != NULL) *now = seconds;
    return seconds;
}

int timespec_get(struct timespec *now, int base) {
    if (base != TIME_UTC) return 0;
    now->tv_sec = wall_seconds();
    now->tv_nsec = 0;
    return base;
}

static __thread uint64_t stream = 0x7472696767657278ULL; /* "triggerx" */

static uint64_t next_random(void) {
    uint64_t z = (stream += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

ssize_t getrandom(void *buffer, size_t length, unsigned int flags) {
    (void)flags;
    unsigned char *out = buffer;
    for (size_t done = 0; done < length; done += 8) {
        uint64_t word = next_random();
        memcpy(out + done, &word, length - done < 8 ? length - done : 8);
    }
    return (ssize_t)length;
}

int getentropy(void *buffer, size_t length) {
    getrandom(buffer, length, 0);
    return 0;
}

static void *real(const char *name) { return dlsym(RTLD_NEXT, name); }

static int without_times(int result, struct stat *info) {
    if (result == 0 && info != NULL) {
        info->st_atim = info->st_mtim = info->st_ctim = (struct timespec){0, 0};
    }
    return result;
}

static long statx_without_times(long result, struct statx *info) {
    if (result == 0 && info != NULL) {
        info->stx_atime = info->stx_btime = info->stx_ctime = info->stx_mtime = (struct statx_timestamp){0};
    }
    return result;
}

typedef int path_stat(const char *, struct stat *);
typedef int path_stat64(const char *, struct stat64 *);
typedef int fd_stat(int, struct stat *);
typedef int fd_stat64(int, struct stat64 *);

int stat(const char *path, struct stat *info) {
    static path_stat *next;
    if (next == NULL) next = (path_stat *)real("stat");
    return without_times(next(path, info), info);
}

int lstat(const char *path, struct stat *info) {
    static path_stat *next;
    if (next == NULL) next = (path_stat *)real("lstat");
    return without_times(next(path, info), info);
}

int fstat(int fd, struct stat *info) {
    static fd_stat *next;
    if (next == NULL) next = (fd_stat *)real("fstat");
    return without_times(next(fd, info), info);
}

/* The 64-bit names: the same struct on x86_64. */
int stat64(const char *path, struct stat64 *info) {
    static path_stat64 *next;
    if (next == NULL) next = (path_stat64 *)real("stat64");
    return without_times(next(path, info), (struct stat *)info);
}

int lstat64(const char *path, struct stat64 *info) {
    static path_stat64 *next;
    if (next == NULL) next = (path_stat64 *)real("lstat64");
    return without_times(next(path, info), (struct stat *)info);
}

int fstat64(int fd, struct stat64 *info) {
    static fd_stat64 *next;
    if (next == NULL) next = (fd_stat64 *)real("fstat64");
    return without_times(next(fd, info), (struct stat *)info);
}

int fstatat(int dir, const char *path, struct stat *info, int flags) {
    static int (*next)(int, const char *, struct stat *, int);
    if (next == NULL) next = (int (*)(int, const char *, struct stat *, int))real("fstatat");
    return without_times(next(dir, path, info, flags), info);
}

int fstatat64(int dir, const char *path, struct stat64 *info, int flags) {
    static int (*next)(int, const char *, struct stat64 *, int);
    if (next == NULL) next = (int (*)(int, const char *, struct stat64 *, int))real("fstatat64");
    return without_times(next(dir, path, info, flags), (struct stat *)info);
}

int statx(int dir, const char *path, int flags, unsigned int mask, struct statx *info) {
    static int (*next)(int, const char *, int, unsigned int, struct statx *);
    if (next == NULL) next = (int (*)(int, const char *, int, unsigned int, struct statx *))real("statx");
    return (int)statx_without_times(next(dir, path, flags, mask, info), info);
}

long syscall(long number, ...) {
    static long (*next)(long, ...);
    if (next == NULL) next = (long (*)(long, ...))real("syscall");
    va_list list;
    va_start(list, number);
    long a = va_arg(list, long), b = va_arg(list, long), c = va_arg(list, long);
    long d = va_arg(list, long), e = va_arg(list, long), f = va_arg(list, long);
    va_end(list);
    if (number == SYS_clock_gettime) return clock_gettime((clockid_t)a, (struct timespec *)b);
    if (number == SYS_gettimeofday) return gettimeofday((struct timeval *)a, (void *)b);
    if (number == SYS_time) return time((time_t *)a);
    if (number == SYS_getrandom) return getrandom((void *)a, (size_t)b, (unsigned int)c);
    long result = next(number, a, b, c, d, e, f);
    if (number == SYS_statx) return statx_without_times(result, (struct statx *)e);
    return result;
}
