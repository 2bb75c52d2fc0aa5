// child.c — the child side of a spawn: everything between clone() and execve().
//
// ┌──────────────────────────────────────────────────────────────────────────┐
// │ THE RULE OF THIS FILE: the code below runs in a child created with         │
// │ clone(CLONE_VM|CLONE_VFORK). It shares the parent's memory, including the  │
// │ heap and the locks of malloc, stdio and the dynamic loader, while the      │
// │ parent is suspended. It may therefore only make raw system calls and call  │
// │ async-signal-safe functions: no malloc, no stdio, no locks, no libc        │
// │ wrapper that keeps state (glibc's setuid() would broadcast to the parent's  │
// │ threads), no Swift. Every input is prepared by the parent in a             │
// │ cspawn_config that the child only reads. The child runs on a small stack   │
// │ (see spawn.c): no large locals beyond the fixed arrays below.              │
// └──────────────────────────────────────────────────────────────────────────┘
//
// The steps, in order (a failing step stores {step, errno} in the parent's
// memory, which the child shares, and _exits; see _cspawn_report):
//  1. signals: every disposition back to SIG_DFL (a parent that ignores SIGPIPE
//     must not pass that on). The mask stays fully blocked (the parent blocked
//     all signals before clone) so no parent handler can run on this stack.
//  2. session/group: setsid() or setpgid(0, 0), or nothing.
//  3. rlimits: prlimit64(0, ...) for each, except RLIMIT_NOFILE (step 8b).
//  4. credentials: when they change, first every capability still in the
//     bounding set is dropped (while CAP_SETPCAP is still held); then
//     setgroups, setresgid, setresuid (gid before uid: after the uid drop we
//     could no longer change the gid); then the ambient set is cleared and the
//     effective, permitted and inheritable sets emptied. A parent that is not
//     root keeps its capabilities across setresuid (ambient ones, say): without
//     this its child would too, and could setresuid(0) back.
//  5. chdir, with the child's own ids (after step 4).
//  6. parent-death signal: after the credentials, because the kernel clears it
//     when they change; then getppid() is checked for a parent that already died.
//  7. descriptors: every source is first duplicated above every target (so a
//     source can never be overwritten by an earlier target), then each source
//     is dup3()'d onto its target.
//  8. every descriptor other than the kept targets is marked close-on-exec
//     (close_range(CLOSE_RANGE_CLOEXEC), or a getdents64 walk of /proc/self/fd,
//     which opens a descriptor of its own).
//  8b. RLIMIT_NOFILE, now that no descriptor is needed any more (before step 8
//     a low limit made the /proc/self/fd walk fail: EMFILE).
//  9. PR_SET_NO_NEW_PRIVS when asked (always with a filter).
// 10. the signal mask is cleared.
// 11. the seccomp filter, last before exec so it need not allow the steps above.
// 12. execve.

// Built as with -Wall -Wextra -Werror, whoever builds it (no unsafe flags needed).
#ifdef __clang__
#pragma clang diagnostic error "-Wall"
#pragma clang diagnostic error "-Wextra"
#endif

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

// Sanitizer instrumentation calls into a runtime that keeps per-thread state and
// takes locks: not allowed here. Every function of this file opts out.
#if defined(__clang__)
#define CHILD_CODE __attribute__((disable_sanitizer_instrumentation))
#else
#define CHILD_CODE
#endif

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

// The kernel's struct sigaction for rt_sigaction (not glibc's).
struct _cspawn_ksigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

// The kernel's capset(2) arguments (no libcap here).
#define _CSPAWN_CAP_VERSION_3 0x20080522
struct _cspawn_cap_header {
    uint32_t version;
    int pid;
};
struct _cspawn_cap_data {
    uint32_t effective;
    uint32_t permitted;
    uint32_t inheritable;
};

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct _cspawn_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

// A raw system call returning -errno on failure. glibc's syscall() is a thin,
// lock-free trampoline; it also stores errno, which in a CLONE_VM child is the
// suspended parent thread's errno: harmless, the parent does not read it.
CHILD_CODE static long sys(long n, long a, long b, long c, long d, long e) {
    long r = syscall(n, a, b, c, d, e);
    return r == -1 ? -errno : r;
}

// No system call is needed to report, so a seccomp filter that refuses execve
// (or write) cannot swallow the report.
//
// Ending the child must not need a system call the filter may refuse either: a
// filter that denies exit_group (loaded at step 11, before the exec that then
// failed) made this loop forever at 100 % CPU with the parent blocked in clone.
// So: exit_group, exit (this is the only thread of the child), SIGKILL to itself
// by pid; and when every one of those is refused, a fault, which no filter can
// refuse. (Not its pidfd: the kernel installs it in the parent's descriptor
// table only, after copying that table for the child, so the number would name
// another file here.) The parent reads the report whatever ended the child.
CHILD_CODE __attribute__((noreturn)) static void fail(_cspawn_report *report, int step, long negative_errno) {
    __atomic_store_n(&report->error, (int32_t)-negative_errno, __ATOMIC_RELAXED);
    __atomic_store_n(&report->step, step, __ATOMIC_RELEASE);
    sys(SYS_exit_group, 127, 0, 0, 0, 0);
    sys(SYS_exit, 127, 0, 0, 0, 0);
    long self = sys(SYS_getpid, 0, 0, 0, 0, 0);
    if (self > 0) sys(SYS_kill, self, SIGKILL, 0, 0, 0);
    // No core file of this child, which shares the parent's memory: best effort,
    // the filter may refuse prlimit64 too.
    struct rlimit64 no_core = {.rlim_cur = 0, .rlim_max = 0};
    sys(SYS_prlimit64, 0, RLIMIT_CORE, (long)&no_core, 0, 0);
    for (;;) __builtin_trap();
}

CHILD_CODE static int is_kept(const cspawn_config *c, int fd) {
    for (int i = 0; i < c->keep_count; i++)
        if (c->keep_fds[i] == fd) return 1;
    return 0;
}

// Marks every descriptor >= 3 that is not kept as close-on-exec.
CHILD_CODE static long mark_cloexec(const cspawn_config *c) {
    // Fast path: close_range over the gaps between the sorted kept targets
    // (skipped when a test forces the fallback).
    unsigned int low = 3;
    long r = (c->test_fallbacks & CSPAWN_TEST_FALLBACK_CLOSE_RANGE) ? -ENOSYS : 0;
    for (int i = 0; i <= c->keep_count && r == 0; i++) {
        unsigned int high;
        if (i == c->keep_count) {
            high = ~0U;
        } else {
            if (c->keep_fds[i] < 3) continue;
            high = (unsigned int)c->keep_fds[i] - 1;
        }
        if (high >= low) r = sys(SYS_close_range, low, high, CLOSE_RANGE_CLOEXEC, 0, 0);
        if (i < c->keep_count) low = (unsigned int)c->keep_fds[i] + 1;
    }
    if (r == 0) return 0;
    if (r != -ENOSYS && r != -EINVAL) return r;

    // Fallback for kernels before 5.11: walk /proc/self/fd.
    long dir = sys(SYS_openat, AT_FDCWD, (long)"/proc/self/fd",
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
    if (dir < 0) return dir;
    char buffer[2048] __attribute__((aligned(8)));
    for (;;) {
        long n = sys(SYS_getdents64, dir, (long)buffer, sizeof buffer, 0, 0);
        if (n < 0) { sys(SYS_close, dir, 0, 0, 0, 0); return n; }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            struct _cspawn_dirent64 *d = (struct _cspawn_dirent64 *)(buffer + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
            int fd = 0;
            for (const char *p = d->d_name; *p; p++) fd = fd * 10 + (*p - '0');
            if (fd < 3 || fd == dir || is_kept(c, fd)) continue;
            long s = sys(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC, 0, 0);
            if (s < 0 && s != -EBADF) { sys(SYS_close, dir, 0, 0, 0, 0); return s; }
        }
    }
    sys(SYS_close, dir, 0, 0, 0, 0);
    return 0;
}

CHILD_CODE int _cspawn_child(void *argument) {
    const _cspawn_child_context *context = argument;
    const cspawn_config *c = context->config;
    _cspawn_report *report = context->report;
    long r;

    // 1. Signal dispositions back to default (SIGKILL and SIGSTOP cannot change).
    // Every other number in 1...64 is valid for the raw call (glibc's reserved
    // 32 and 33 included), so any error, EINVAL too, fails the step: a wrong
    // argument must not leave every disposition silently unchanged.
    struct _cspawn_ksigaction dfl = {.handler = SIG_DFL, .flags = 0, .restorer = NULL, .mask = 0};
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        r = sys(SYS_rt_sigaction, sig, (long)&dfl, 0, 8, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SIGNALS, r);
    }

    // 2. Session or group.
    if (c->group_mode == CSPAWN_GROUP_SESSION) {
        r = sys(SYS_setsid, 0, 0, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SETSID, r);
    } else if (c->group_mode == CSPAWN_GROUP_NEW) {
        r = sys(SYS_setpgid, 0, 0, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SETPGID, r);
    }

    // 3. Resource limits (RLIMIT_NOFILE waits for step 8b).
    for (int i = 0; i < c->rlimit_count; i++) {
        if (c->rlimits[i].resource == RLIMIT_NOFILE) continue;
        struct rlimit64 value = {.rlim_cur = c->rlimits[i].soft, .rlim_max = c->rlimits[i].hard};
        r = sys(SYS_prlimit64, 0, c->rlimits[i].resource, (long)&value, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SETRLIMIT, r);
    }

    // 4. Credentials: the bounding set, groups, gid, uid, the other capability sets.
    if (c->drop_capabilities) {
        for (int cap = 0; cap <= c->last_capability; cap++) {
            r = sys(SYS_prctl, PR_CAPBSET_READ, cap, 0, 0, 0);
            if (r == -EINVAL) break; // past the kernel's last capability
            if (r < 0) fail(report, CSPAWN_STEP_CAPABILITIES, r);
            if (r == 0) continue;
            r = sys(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
            if (r < 0) fail(report, CSPAWN_STEP_CAPABILITIES, r);
        }
    }
    if (c->set_groups) {
        r = sys(SYS_setgroups, c->group_count, (long)c->groups, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SETGROUPS, r);
    }
    if (c->set_gid) {
        r = sys(SYS_setresgid, c->gid, c->gid, c->gid, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SETGID, r);
    }
    if (c->set_uid) {
        r = sys(SYS_setresuid, c->uid, c->uid, c->uid, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SETUID, r);
    }
    if (c->drop_capabilities) {
        r = sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        if (r < 0 && r != -EINVAL) fail(report, CSPAWN_STEP_CAPABILITIES, r); // EINVAL: no ambient set (< 4.3)
        struct _cspawn_cap_header header = {.version = _CSPAWN_CAP_VERSION_3, .pid = 0};
        struct _cspawn_cap_data none[2] = {{0, 0, 0}, {0, 0, 0}};
        r = sys(SYS_capset, (long)&header, (long)none, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_CAPABILITIES, r);
    }

    // 5. Working directory, after the credential changes: the directory is
    // checked with the child's own ids (as root first, a child could have been
    // placed in a directory its uid may not enter).
    if (c->cwd) {
        r = sys(SYS_chdir, (long)c->cwd, 0, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_CHDIR, r);
    }

    // 6. Parent-death signal, after the credential changes that would clear it.
    if (c->death_signal) {
        r = sys(SYS_prctl, PR_SET_PDEATHSIG, c->death_signal, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_PDEATHSIG, r);
        if (sys(SYS_getppid, 0, 0, 0, 0, 0) != c->parent_pid)
            fail(report, CSPAWN_STEP_PDEATHSIG, -ESRCH);
    }

    // 7. Descriptors. Everything is first moved above the highest target.
    int above = 3;
    for (int i = 0; i < c->fd_count; i++)
        if (c->fds[i].target >= above) above = c->fds[i].target + 1;
    int moved[CSPAWN_MAX_FDS];
    for (int i = 0; i < c->fd_count && i < CSPAWN_MAX_FDS; i++) {
        moved[i] = -1;
        if (c->fds[i].source < 0) continue;
        r = sys(SYS_fcntl, c->fds[i].source, F_DUPFD_CLOEXEC, above, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_DUP2, r);
        moved[i] = (int)r;
    }
    for (int i = 0; i < c->fd_count && i < CSPAWN_MAX_FDS; i++) {
        if (moved[i] < 0) {
            sys(SYS_close, c->fds[i].target, 0, 0, 0, 0);
            continue;
        }
        r = sys(SYS_dup3, moved[i], c->fds[i].target, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_DUP2, r);
    }

    // 8. Every other descriptor closes at exec.
    r = mark_cloexec(c);
    if (r < 0) fail(report, CSPAWN_STEP_CLOSE_FDS, r);

    // 8b. RLIMIT_NOFILE.
    for (int i = 0; i < c->rlimit_count; i++) {
        if (c->rlimits[i].resource != RLIMIT_NOFILE) continue;
        struct rlimit64 value = {.rlim_cur = c->rlimits[i].soft, .rlim_max = c->rlimits[i].hard};
        r = sys(SYS_prlimit64, 0, RLIMIT_NOFILE, (long)&value, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SETRLIMIT, r);
    }

    // 9. No new privileges.
    if (c->no_new_privs || c->bpf) {
        r = sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_NO_NEW_PRIVS, r);
    }

    // 10. Empty signal mask: the new program starts with nothing blocked.
    uint64_t empty = 0;
    r = sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&empty, 0, 8, 0);
    if (r < 0) fail(report, CSPAWN_STEP_SIGMASK, r);

    // 11. The filter, last: it need not allow any of the calls above.
    if (c->bpf) {
        struct sock_fprog program = {.len = c->bpf_len, .filter = (struct sock_filter *)c->bpf};
        r = sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&program, 0, 0);
        if (r < 0) fail(report, CSPAWN_STEP_SECCOMP, r);
    }

    // Tests only: stop here as if another process of this uid had sent SIGSTOP.
    if (c->test_stop_before_exec) sys(SYS_kill, sys(SYS_getpid, 0, 0, 0, 0, 0), SIGSTOP, 0, 0, 0);

    // 12. Exec. On success the parent resumes (CLONE_VFORK) and finds no report.
    r = sys(SYS_execve, (long)c->path, (long)c->argv, (long)context->envp, 0, 0);
    fail(report, CSPAWN_STEP_EXEC, r);
}
