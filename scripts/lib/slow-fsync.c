/* Benchmark aid, not part of letterbox: an LD_PRELOAD shim that makes every fsync,
 * fdatasync and msync(MS_SYNC) take at least SLOW_FSYNC_MS milliseconds (default 10),
 * the way an SD card or a cheap USB stick does. Lets scripts/bench-imap show what
 * sharing commits saves on a Raspberry Pi's storage on a machine with a fast disk.
 * Works only for dynamically linked (glibc) builds: the static musl binaries ignore
 * LD_PRELOAD. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static void pause_for_storage(void) {
    const char *env = getenv("SLOW_FSYNC_MS");
    long ms = env ? atol(env) : 10;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    pause_for_storage();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    pause_for_storage();
    return real(fd);
}

int msync(void *addr, size_t length, int flags) {
    static int (*real)(void *, size_t, int);
    if (!real) real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
    if (flags & MS_SYNC) pause_for_storage();
    return real(addr, length, flags);
}
