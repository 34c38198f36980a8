/*
 * What a sandboxed script sees of time, so that two runs on one input print the same bytes
 * (node/sandbox/bwrap.py, "Determinism"). The sandbox loads this library into every process
 * through its /etc/ld.so.preload, whatever the environment says.
 *
 * - The wall clock (clock_gettime's realtime clocks, gettimeofday, time, timespec_get) reads
 *   TRIGGERX_TIME, the input block's timestamp, and never moves; times(2) reads 0.
 * - Every other clock (monotonic, boot time, CPU time) starts at 0 and moves 1 ms at each
 *   reading of the thread that reads it: timers still fire, and the same program reads the
 *   same times. A wait until an absolute time of these clocks (a timed lock) ends at once:
 *   the kernel compares it with the host's clock, which is further on.
 * - File times (the stat family and statx, also through syscall(2), which libuv uses): access,
 *   change and birth times read 0, and so does the modification time of a file in /tmp, which
 *   the kernel stamps with the host's clock. Elsewhere (/usr) a file keeps the modification
 *   time its package gave it, the same on every machine with that package: Python checks its
 *   cached bytecode against it, and would compile every module again at each start.
 * - Randomness (getrandom, getentropy, and getrandom through syscall(2), as OpenSSL asks for
 *   it) is a fixed stream per thread, splitmix64 from a constant seed.
 *
 * - No new programs: when the library loads into the sandbox's first process (the
 *   interpreter), it adds a seccomp filter that refuses execve, execveat, fork, vfork and clone
 *   without CLONE_THREAD (threads still start). A script can then run no executable of its own
 *   (one it wrote to /tmp could read the vDSO's clock by hand), nor another interpreter.
 *
 * Calls that bypass libc (inline syscalls, reading the vDSO by hand) still see the host's
 * clock; the sandbox leaves a script no way to load its own native code (docs/architecture.md).
 */
#define _GNU_SOURCE
#if !defined(__x86_64__)
#error "the sandbox knows x86_64 only (node/sandbox/seccomp.py)"
#endif
#include <dlfcn.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/times.h>
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
    now->tv_sec = (time_t)(ms / 1000);
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

clock_t times(struct tms *used) {
    if (used != NULL) *used = (struct tms){0, 0, 0, 0};
    return 0; /* the kernel's answer is refused: glibc would leave *used as it was */
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

typedef int path_stat(const char *, struct stat *);

static dev_t tmp_device(void) {
    static dev_t device;
    static int known;
    if (!known) {
        struct stat tmp;
        path_stat *next = (path_stat *)real("stat");
        device = next != NULL && next("/tmp", &tmp) == 0 ? tmp.st_dev : 0;
        known = 1;
    }
    return device;
}

static int without_times(int result, struct stat *info) {
    if (result == 0 && info != NULL) {
        info->st_atim = info->st_ctim = (struct timespec){0, 0};
        if (info->st_dev == tmp_device()) info->st_mtim = (struct timespec){0, 0};
    }
    return result;
}

static long statx_without_times(long result, struct statx *info) {
    if (result == 0 && info != NULL) {
        info->stx_atime = info->stx_btime = info->stx_ctime = (struct statx_timestamp){0};
        if (makedev(info->stx_dev_major, info->stx_dev_minor) == tmp_device()) {
            info->stx_mtime = (struct statx_timestamp){0};
        }
    }
    return result;
}

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

#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define REFUSE_IF(number) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)

__attribute__((constructor)) static void no_new_programs(void) {
    struct sock_filter program[] = {
        LOAD(nr),
        REFUSE_IF(SYS_execve),
        REFUSE_IF(SYS_execveat),
        REFUSE_IF(SYS_fork),
        REFUSE_IF(SYS_vfork),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3),
        LOAD(args[0]), /* the low 32 bits of the flags */
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog filter = {sizeof(program) / sizeof(program[0]), program};
    /* The sandbox set no_new_privs; a failure leaves the bwrap filter, which is enough to run. */
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter);
}
