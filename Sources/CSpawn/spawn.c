// spawn.c — the parent side of a spawn: take a stack, block signals, clone the
// child (child.c), read its report, and the small wait/signal helpers.
//
// Why clone(CLONE_VM|CLONE_VFORK): the child shares the parent's memory instead
// of copying its page tables, so a spawn costs the same whether the parent holds
// 10 MiB or 10 GiB (fork() of a 4 GiB parent costs ~95 ms here). The parent
// thread is suspended until the child execs or exits, so a failing child can
// leave its report in the parent's memory: no error pipe (~20 µs a spawn).

// Built as with -Wall -Wextra -Werror, whoever builds it (no unsafe flags needed).
#ifdef __clang__
#pragma clang diagnostic error "-Wall"
#pragma clang diagnostic error "-Wextra"
#endif

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif

// The child's stack: 64 KiB is ample for child.c (its largest frame holds the
// 1 KiB fd array and a 2 KiB dirent buffer) and a guard page below catches an
// overflow instead of corrupting the parent's memory.
#define STACK_SIZE (64 * 1024)
#define GUARD_SIZE 4096

// glibc exports clone() also as __clone. Sanitizer runtimes (TSan) intercept
// clone() and run their fork hooks in the child, which in a CLONE_VM child
// corrupts the parent's runtime state; __clone is the same code, not intercepted.
#if defined(__GLIBC__)
extern int __clone(int (*fn)(void *), void *stack, int flags, void *arg, ...);
#define cspawn_clone __clone
#else
#define cspawn_clone clone
#endif

extern char **environ;

// The child's stack of the last spawn, kept for the next one (or NULL).
static char *cached_stack;

// 0: not probed, 1: clone(CLONE_PIDFD) works, 2: only pidfd_open, 3: no pidfds.
static int pidfd_mode = 0;

static const char *const step_names[] = {
    [CSPAWN_STEP_NONE] = "none",
    [CSPAWN_STEP_CLONE] = "clone",
    [CSPAWN_STEP_PIPE] = "pipe",
    [CSPAWN_STEP_STACK] = "stack",
    [CSPAWN_STEP_SIGNALS] = "signals",
    [CSPAWN_STEP_SETSID] = "setsid",
    [CSPAWN_STEP_SETPGID] = "setpgid",
    [CSPAWN_STEP_SETRLIMIT] = "setrlimit",
    [CSPAWN_STEP_CHDIR] = "chdir",
    [CSPAWN_STEP_SETGROUPS] = "setgroups",
    [CSPAWN_STEP_SETGID] = "setgid",
    [CSPAWN_STEP_SETUID] = "setuid",
    [CSPAWN_STEP_PDEATHSIG] = "pdeathsig",
    [CSPAWN_STEP_DUP2] = "dup2",
    [CSPAWN_STEP_CLOSE_FDS] = "close_fds",
    [CSPAWN_STEP_NO_NEW_PRIVS] = "no_new_privs",
    [CSPAWN_STEP_SIGMASK] = "sigmask",
    [CSPAWN_STEP_SECCOMP] = "seccomp",
    [CSPAWN_STEP_EXEC] = "exec",
    [CSPAWN_STEP_REPORT] = "report",
    [CSPAWN_STEP_CAPABILITIES] = "capabilities",
};

const char *cspawn_step_name(int step) {
    if (step < 0 || step >= (int)(sizeof step_names / sizeof step_names[0]) || !step_names[step])
        return "unknown";
    return step_names[step];
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
    }
}

// Spawns that change credentials, on any thread, and the dumpable flag as it
// was before the first of them: with several spawning threads, one child's uid
// drop clears the flag while another spawn reads it, so the flag is saved when
// the count leaves 0 and restored when it comes back to 0.
static pthread_mutex_t credential_lock = PTHREAD_MUTEX_INITIALIZER;
static int credential_spawns;
static int saved_dumpable;

static void credential_spawn_begins(void) {
    pthread_mutex_lock(&credential_lock);
    if (credential_spawns++ == 0) saved_dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    pthread_mutex_unlock(&credential_lock);
}

static void credential_spawn_ends(void) {
    pthread_mutex_lock(&credential_lock);
    if (--credential_spawns == 0 && saved_dumpable >= 0 && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != saved_dumpable)
        (void)prctl(PR_SET_DUMPABLE, saved_dumpable, 0, 0, 0); // cannot fail for 0 or 1
    pthread_mutex_unlock(&credential_lock);
}

enum { CSPAWN_WATCH_IDLE = 0, CSPAWN_WATCH_IN_CLONE = 1, CSPAWN_WATCH_SIGNALLING = 2 };

int cspawn_watch_kill(cspawn_watch *watch) {
    int expected = CSPAWN_WATCH_IN_CLONE;
    if (!__atomic_compare_exchange_n(&watch->state, &expected, CSPAWN_WATCH_SIGNALLING, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return expected == CSPAWN_WATCH_SIGNALLING ? -1 : 0;
    // The spawning thread waits for the state to leave SIGNALLING before it
    // closes or hands on the pidfd: the descriptor cannot be reused under us.
    int result = 1;
    if (!__atomic_load_n(&watch->killed, __ATOMIC_RELAXED)) {
        int target = __atomic_load_n(&watch->target, __ATOMIC_RELAXED);
        if (target < 0) {
            result = -1;
        } else {
            long r = __atomic_load_n(&watch->is_pid, __ATOMIC_RELAXED) ? kill(target, SIGKILL) : syscall(SYS_pidfd_send_signal, target, SIGKILL, NULL, 0);
            // The kernel stores the pidfd's number before it installs the
            // descriptor (EBADF in between): count the kill only once it was sent
            // (or the child is already gone), else try again a moment later.
            if (r == 0 || errno == ESRCH)
                __atomic_store_n(&watch->killed, 1, __ATOMIC_RELAXED);
            else
                result = -1;
        }
    }
    __atomic_store_n(&watch->state, CSPAWN_WATCH_IN_CLONE, __ATOMIC_RELEASE);
    return result;
}

// Before a clone: the slot empty and its kind set, then IN_CLONE with release
// order, so a watchdog that acquires the state sees both.
static void watch_enter(cspawn_watch *watch, int is_pid) {
    __atomic_store_n(&watch->target, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&watch->is_pid, is_pid, __ATOMIC_RELAXED);
    __atomic_store_n(&watch->state, CSPAWN_WATCH_IN_CLONE, __ATOMIC_RELEASE);
}

// Out of clone: wait for a watchdog that is signalling right now to finish
// before the pidfd is read, closed or handed on (a few instructions).
static void watch_leave(cspawn_watch *watch) {
    for (;;) {
        int expected = CSPAWN_WATCH_IN_CLONE;
        if (__atomic_compare_exchange_n(&watch->state, &expected, CSPAWN_WATCH_IDLE, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return;
        sched_yield();
    }
}

int cspawn_watch_killed(const cspawn_watch *watch) { return __atomic_load_n(&watch->killed, __ATOMIC_ACQUIRE); }

int cspawn_spawn(const cspawn_config *config, cspawn_result *result) {
    return cspawn_spawn_watched(config, result, NULL);
}

int cspawn_spawn_watched(const cspawn_config *config, cspawn_result *result, cspawn_watch *watch) {
    result->pid = -1;
    result->pidfd = -1;
    result->step = CSPAWN_STEP_NONE;
    result->error = 0;
    result->pidfd_method = 0;

    if (config->fd_count > CSPAWN_MAX_FDS || config->fd_count < 0) {
        result->step = CSPAWN_STEP_DUP2;
        result->error = EINVAL;
        return -1;
    }

    // A stack from the one-slot cache (spawns are sequential on the reactor
    // thread, so it is almost always there), else a new mapping.
    char *stack = __atomic_exchange_n(&cached_stack, NULL, __ATOMIC_ACQUIRE);
    if (!stack) {
        stack = mmap(NULL, STACK_SIZE + GUARD_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) {
            result->step = CSPAWN_STEP_STACK;
            result->error = errno;
            return -1;
        }
        (void)mprotect(stack, GUARD_SIZE, PROT_NONE); // best effort: a missing guard is not fatal
    }

    // A credential change in the child makes the memory space it shares with
    // this process non-dumpable (the flag belongs to the mm): a server would lose
    // its core dumps and its /proc files' ownership after its first uid drop.
    // The flag is put back as it was (never forced to 1: it may be 0 on purpose).
    int changes_credentials = config->set_uid || config->set_gid || config->set_groups;
    if (changes_credentials) credential_spawn_begins();

    // Block every signal (raw: glibc's pthread_sigmask keeps two of its own
    // unblocked) so that no handler of the parent runs on the child's stack
    // before the child has reset the dispositions.
    uint64_t all = ~(uint64_t)0, old = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);

    // Where the kernel stores the child's pidfd (or pid) before the child runs:
    // the watch, so that a watchdog can read it while clone() blocks.
    cspawn_watch local_watch = {.target = -1, .is_pid = 0, .state = CSPAWN_WATCH_IDLE, .killed = 0};
    if (!watch) watch = &local_watch;
    __atomic_store_n(&watch->killed, 0, __ATOMIC_RELAXED);
    volatile int *const pidfd_slot = &watch->target;
    _cspawn_report report = {.step = CSPAWN_STEP_NONE, .error = 0};
    _cspawn_child_context context = {
        .config = config,
        .report = &report,
        .envp = config->envp ? config->envp : environ,
    };
    int pidfd = -1;
    int mode = __atomic_load_n(&pidfd_mode, __ATOMIC_RELAXED);
    // SIGCHLD as the exit signal, like posix_spawn (execve would reset any other
    // exit signal to SIGCHLD anyway). Someone else's waitpid(-1) can therefore
    // reap the child; the Swift side detects that (ECHILD) and reports it.
    int flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
    pid_t pid;
    int clone_errno = 0;
    if (mode == 0 || mode == 1) {
        watch_enter(watch, 0);
        pid = cspawn_clone(_cspawn_child, stack + STACK_SIZE + GUARD_SIZE, flags | CLONE_PIDFD, &context,
                           (int *)pidfd_slot);
        clone_errno = errno;
        watch_leave(watch);
        if (pid < 0 && clone_errno == EINVAL && mode == 0) {
            // A kernel before 5.2: no CLONE_PIDFD.
            __atomic_store_n(&pidfd_mode, 2, __ATOMIC_RELAXED);
            mode = 2;
        } else if (pid >= 0 && mode == 0) {
            __atomic_store_n(&pidfd_mode, 1, __ATOMIC_RELAXED);
            mode = 1;
        }
    }
    if (mode >= 2) {
        // No pidfds: the kernel stores the pid instead (CLONE_PARENT_SETTID), so
        // a watchdog can still kill by pid (stable: the child is ours and unreaped).
        watch_enter(watch, 1);
        pid = cspawn_clone(_cspawn_child, stack + STACK_SIZE + GUARD_SIZE, flags | CLONE_PARENT_SETTID, &context,
                           (int *)pidfd_slot);
        clone_errno = errno;
        watch_leave(watch);
    }
    if (mode == 1 || mode == 0) pidfd = __atomic_load_n(&watch->target, __ATOMIC_RELAXED);

    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
    if (changes_credentials) credential_spawn_ends();
    // The child is done with the stack (it exec'd or exited: CLONE_VFORK).
    char *expected = NULL;
    if (!__atomic_compare_exchange_n(&cached_stack, &expected, stack, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        munmap(stack, STACK_SIZE + GUARD_SIZE);

    if (pid < 0) {
        result->step = CSPAWN_STEP_CLONE;
        result->error = clone_errno;
        return -1;
    }

    // CLONE_VFORK: the child has exec'd or exited; what it stored is visible.
    int failed_step = __atomic_load_n(&report.step, __ATOMIC_ACQUIRE);
    if (failed_step == CSPAWN_STEP_NONE) {
        // It reached its exec (or was killed on the way: its status tells).
        result->pid = pid;
        if (mode == 1) {
            result->pidfd = pidfd;
            result->pidfd_method = 1;
        } else if (mode == 2) {
            long fd = syscall(SYS_pidfd_open, pid, 0);
            if (fd >= 0) {
                result->pidfd = (int)fd;
                result->pidfd_method = 2;
            } else if (errno == ENOSYS) {
                __atomic_store_n(&pidfd_mode, 3, __ATOMIC_RELAXED);
            }
        }
        return 0;
    }

    // The child failed a step and exited: reap it.
    if (pidfd >= 0) close(pidfd);
    reap(pid);
    result->step = failed_step;
    result->error = __atomic_load_n(&report.error, __ATOMIC_RELAXED);
    return -1;
}

int cspawn_wait(pid_t pid, int pidfd, int nohang, int *code, int *status,
                int64_t *utime_us, int64_t *stime_us, int64_t *maxrss_kib) {
    siginfo_t info;
    struct rusage usage;
    memset(&info, 0, sizeof info);
    memset(&usage, 0, sizeof usage);
    int options = WEXITED | __WALL | (nohang ? WNOHANG : 0);
    long r;
    do {
        // The raw waitid takes a fifth argument, the child's rusage.
        if (pidfd >= 0)
            r = syscall(SYS_waitid, P_PIDFD, pidfd, &info, options, &usage);
        else
            r = syscall(SYS_waitid, P_PID, pid, &info, options, &usage);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    if (info.si_pid == 0) return 0;
    *code = info.si_code;
    *status = info.si_status;
    *utime_us = (int64_t)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec;
    *stime_us = (int64_t)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
    *maxrss_kib = usage.ru_maxrss;
    return 1;
}

int cspawn_has_ended(pid_t pid, int pidfd) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    long r;
    do {
        if (pidfd >= 0)
            r = syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | WNOHANG | WNOWAIT | __WALL, NULL);
        else
            r = syscall(SYS_waitid, P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT | __WALL, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    return info.si_pid != 0 ? 1 : 0;
}

int cspawn_signal(pid_t pid, int pidfd, int signal) {
    if (pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) == 0) return 0;
        if (errno != ENOSYS) return -errno;
    }
    return kill(pid, signal) == 0 ? 0 : -errno;
}

int cspawn_signal_group(pid_t pgid, int signal) {
    if (pgid <= 1) return -EINVAL;
    return kill(-pgid, signal) == 0 ? 0 : -errno;
}

int cspawn_set_pipe_size(int fd, int size) {
    int r = fcntl(fd, F_SETPIPE_SZ, size);
    return r < 0 ? -errno : r;
}

int cspawn_pidfd_supported(void) {
    long fd = syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0) return 0;
    close((int)fd);
    return 1;
}

char **cspawn_environ(void) { return environ; }

int cspawn_get_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }

int cspawn_set_dumpable(int value) { return prctl(PR_SET_DUMPABLE, value, 0, 0, 0) == 0 ? 0 : -errno; }

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// The census of process groups with a live (not zombie) member, from one scan
// of /proc, shared by every group polled within CENSUS_MAX_AGE_NS of it. A
// grace period polls each group that outlived its leader, up to every 50 ms;
// with a scan per poll, 200 such groups on a host of 300 processes cost the
// reactor thread more than its whole time. Only the reactor thread polls; the
// lock is for anyone else.
#define CENSUS_MAX_AGE_NS (10 * 1000 * 1000)
static pthread_mutex_t census_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *census;           // sorted pgids with a live member
static size_t census_count, census_capacity;
static int64_t census_taken_ns = -1;
static uint64_t census_scans;

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int compare_pids(const void *a, const void *b) {
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return x < y ? -1 : x > y;
}

// The state, parent and process group of /proc/NAME/stat; -1 when NAME is not a
// pid or the process is gone.
static int read_proc_stat(const char *name, char *state, int *ppid, int *pgrp) {
    if (name[0] < '1' || name[0] > '9') return -1;
    char path[300], buffer[512];
    snprintf(path, sizeof path, "/proc/%s/stat", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (n <= 0) return -1;
    buffer[n] = 0;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    char *close_paren = strrchr(buffer, ')');
    if (!close_paren) return -1;
    return sscanf(close_paren + 1, " %c %d %d", state, ppid, pgrp) == 3 ? 0 : -1;
}

// Rebuilds the census; returns 0, or -1 when /proc cannot be read.
static int census_scan(void) {
    DIR *proc = opendir("/proc");
    if (!proc) return -1;
    census_count = 0;
    struct dirent *entry;
    while ((entry = readdir(proc))) {
        char state;
        int ppid, pgrp;
        if (read_proc_stat(entry->d_name, &state, &ppid, &pgrp) < 0) continue;
        if (state == 'Z' || state == 'X') continue;
        if (census_count == census_capacity) {
            size_t capacity = census_capacity ? census_capacity * 2 : 256;
            pid_t *grown = realloc(census, capacity * sizeof *census);
            if (!grown) {
                closedir(proc);
                return -1;
            }
            census = grown;
            census_capacity = capacity;
        }
        census[census_count++] = pgrp;
    }
    closedir(proc);
    qsort(census, census_count, sizeof *census, compare_pids);
    census_scans++;
    return 0;
}

int cspawn_group_has_live_members(pid_t pgid) {
    // kill(-pgid, 0) also succeeds for zombies, which can linger in a group until
    // init reaps them; so only when it succeeds, look the group up in the census.
    if (kill(-pgid, 0) < 0 && errno == ESRCH) return 0;
    pthread_mutex_lock(&census_lock);
    int64_t now = monotonic_ns();
    int live;
    if ((census_taken_ns < 0 || now - census_taken_ns > CENSUS_MAX_AGE_NS) && census_scan() < 0) {
        census_taken_ns = -1;
        live = kill(-pgid, 0) == 0 ? 1 : 0; // no /proc: count zombies as members
    } else {
        if (census_taken_ns < 0 || now - census_taken_ns > CENSUS_MAX_AGE_NS) census_taken_ns = now;
        live = bsearch(&pgid, census, census_count, sizeof *census, compare_pids) != NULL;
    }
    pthread_mutex_unlock(&census_lock);
    return live;
}

uint64_t cspawn_group_census_scans(void) {
    pthread_mutex_lock(&census_lock);
    uint64_t n = census_scans;
    pthread_mutex_unlock(&census_lock);
    return n;
}

int cspawn_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) == 0 ? 0 : -errno; }

int cspawn_reaps_orphans(void) {
    int subreaper = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0 && subreaper) return 1;
    return getpid() == 1;
}

int cspawn_reap_group_orphans(pid_t pgid) {
    if (kill(-pgid, 0) < 0 && errno == ESRCH) return 0;
    DIR *proc = opendir("/proc");
    if (!proc) return -1;
    pid_t self = getpid();
    int left = 0;
    struct dirent *entry;
    while ((entry = readdir(proc))) {
        char state;
        int ppid, pgrp;
        if (read_proc_stat(entry->d_name, &state, &ppid, &pgrp) < 0 || pgrp != pgid) continue;
        pid_t pid = (pid_t)strtol(entry->d_name, NULL, 10);
        int status;
        if (state == 'Z' && ppid == self && waitpid(pid, &status, WNOHANG | __WALL) == pid) continue;
        left++;
    }
    closedir(proc);
    return left;
}
