// cfloor.h — the C floor of the benchmarks: what a careful C program does with
// posix_spawn, waitpid and plain read/write loops, plus the measuring helpers
// (thread sampler, RSS high-water mark, heap toucher).
#ifndef CFLOOR_H
#define CFLOOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// A NULL-terminated argv (argv[0] is the path) copied into malloc'd memory.
char **cfloor_argv_new(const char *const *argv, int count);
void cfloor_argv_free(char **argv);

/// posix_spawn `argv[0]` with stdin, stdout and stderr on /dev/null (dup2 of one
/// descriptor opened in the parent), then waitpid. Returns the wait status, or
/// -errno.
int cfloor_spawn_wait(char *const *argv);

/// The same with POSIX_SPAWN_SETSID: the child in a session of its own.
int cfloor_spawn_wait_setsid(char *const *argv);

/// posix_spawn with stdio on /dev/null; returns the pid or -errno (no wait).
pid_t cfloor_spawn_null(char *const *argv);

/// waitpid(pid); returns the wait status or -errno.
int cfloor_wait(pid_t pid);

/// posix_spawn with stdout to a pipe (stdin, stderr /dev/null). `*read_fd` gets
/// the parent's (blocking, close-on-exec) read end. Returns the pid or -errno.
pid_t cfloor_spawn_reader(char *const *argv, int *read_fd);

/// Like cfloor_spawn_reader, but stderr is inherited (for running helpers).
pid_t cfloor_spawn_capture(char *const *argv, int *read_fd);

/// Plain read loop with a `buffer_size` buffer until EOF; closes `fd`.
/// Returns the byte count, or -errno.
int64_t cfloor_read_all(int fd, size_t buffer_size);

/// Read loop (64 KiB) counting '\n' with memchr; closes `fd`. Returns the count.
int64_t cfloor_count_lines(int fd);

/// Reads one 64 KiB chunk, sleeps `sleep_us`, repeat until EOF; closes `fd`.
int64_t cfloor_read_slowly(int fd, unsigned sleep_us);

/// Spawns `argv` with stdin and stdout on pipes and pushes `length` bytes of
/// `data` through it with a poll() loop (non-blocking write and read ends),
/// reading the output to EOF; waits for the child. Returns bytes read or -errno.
int64_t cfloor_roundtrip(char *const *argv, const uint8_t *data, size_t length);

/// malloc(bytes) and write to every page; NULL on failure.
void *cfloor_touch(size_t bytes);
/// free(p) then malloc_trim(0).
void cfloor_release(void *p);
/// malloc_trim(0).
void cfloor_trim(void);

/// Starts a thread that counts /proc/self/task every `interval_us`.
int cfloor_sampler_start(unsigned interval_us);
/// Stops it; returns the peak thread count seen, not counting the sampler.
/// `names` (may be NULL) gets the comm names of the threads at the peak.
int cfloor_sampler_stop(char *names, size_t names_size);
/// The current thread count of this process.
int cfloor_thread_count(void);

/// Writes "5" to /proc/self/clear_refs (resets VmHWM to VmRSS). 0 or -errno.
int cfloor_reset_hwm(void);
/// A "Vm..." field of /proc/self/status in KiB ("VmHWM", "VmRSS"), or -1.
long cfloor_status_kib(const char *field);

/// clock_gettime(CLOCK_MONOTONIC) in nanoseconds.
uint64_t cfloor_now_ns(void);

/// Path of the running executable (readlink /proc/self/exe) into `out`.
int cfloor_self_exe(char *out, size_t size);

#endif
