/*
 * monotonic_shift.c: an LD_PRELOAD shim that imitates a suspend of the machine for the
 * process it is loaded into. While a machine is suspended CLOCK_MONOTONIC stops, and
 * CLOCK_BOOTTIME and CLOCK_REALTIME run on. The shim subtracts a number of nanoseconds,
 * read from the file named by the environment variable FLUFL_MONO_SHIFT_FILE, from
 * CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW and CLOCK_MONOTONIC_COARSE; every other clock
 * (CLOCK_REALTIME, CLOCK_BOOTTIME, ...) is left alone.
 *
 * A test stops the process (SIGSTOP), waits D seconds, writes D * 1e9 into the file and
 * continues it (SIGCONT): the process then sees its monotonic clock where it was when it
 * stopped, while the wall clock and the file server's clock moved on by D, as after a
 * suspend of D seconds.
 *
 * The file is read on every call (a missing, empty or unparsable file means 0), so the shift
 * takes effect at the process's first clock read after the test writes it. Rust's
 * std::time::Instant reads the clock through libc's clock_gettime, so it sees the shift;
 * code that calls the vDSO directly (rustix) does not.
 *
 * Built by the flufl-lock-stress tests (tests/it/clock.rs) with
 *     gcc -shared -fPIC -O2 -o monotonic_shift.so monotonic_shift.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

/* The shift in nanoseconds, from the file named by FLUFL_MONO_SHIFT_FILE. */
static long long shift_ns(void)
{
    const char *path = getenv("FLUFL_MONO_SHIFT_FILE");
    if (path == NULL || *path == '\0')
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    long long v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (buf[i] - '0');
    return v;
}

static int is_monotonic(clockid_t clk)
{
    return clk == CLOCK_MONOTONIC || clk == CLOCK_MONOTONIC_RAW || clk == CLOCK_MONOTONIC_COARSE;
}

static void shift(clockid_t clk, struct timespec *ts)
{
    if (ts == NULL || !is_monotonic(clk))
        return;
    long long s = shift_ns();
    if (s <= 0)
        return;
    long long t = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec - s;
    if (t < 0)
        t = 0;
    ts->tv_sec = (time_t)(t / 1000000000LL);
    ts->tv_nsec = (long)(t % 1000000000LL);
}

/* libc's own function, looked up once (a race only looks it up twice); the raw system call
 * if there is none. */
static int real_clock_gettime(clock_gettime_fn *cache, const char *name, clockid_t clk,
                              struct timespec *ts)
{
    clock_gettime_fn next = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (next == NULL) {
        next = (clock_gettime_fn)dlsym(RTLD_NEXT, name);
        if (next == NULL)
            next = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        if (next != NULL)
            __atomic_store_n(cache, next, __ATOMIC_RELEASE);
    }
    if (next != NULL)
        return next(clk, ts);
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

static clock_gettime_fn next_clock_gettime;
static clock_gettime_fn next_clock_gettime64;

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    int r = real_clock_gettime(&next_clock_gettime, "clock_gettime", clk, ts);
    if (r == 0)
        shift(clk, ts);
    return r;
}

/* glibc's 64-bit-time entry point on 32-bit systems (build there with -D_TIME_BITS=64
 * -D_FILE_OFFSET_BITS=64, so that struct timespec is the 64-bit one it takes); on 64-bit
 * systems nothing calls this name. */
int __clock_gettime64(clockid_t clk, struct timespec *ts)
{
    int r = real_clock_gettime(&next_clock_gettime64, "__clock_gettime64", clk, ts);
    if (r == 0)
        shift(clk, ts);
    return r;
}
