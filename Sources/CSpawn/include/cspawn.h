// cspawn.h — the whole C ABI of AsyncSpawn's spawn engine.
//
// The engine creates one child with clone(CLONE_VM|CLONE_VFORK) on a private
// stack, applies the settings of a `cspawn_config` in the child (see child.c for
// the order), and execs. Everything the child needs is prepared by the caller
// (the parent) in a `cspawn_config`: the child only reads it, allocates nothing
// and takes no lock.
//
// Ownership: every pointer in `cspawn_config` is owned by the caller and must
// stay valid until `cspawn_spawn` returns. Descriptors returned in
// `cspawn_result` (the pidfd) belong to the caller.
//
// The engine never calls back into Swift.

#ifndef CSPAWN_H
#define CSPAWN_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The child setup steps, in the order the child performs them. A failing step
/// is reported to the parent as `{step, errno}`.
typedef enum {
    CSPAWN_STEP_NONE = 0,
    CSPAWN_STEP_CLONE,        // parent: clone() itself failed
    CSPAWN_STEP_PIPE,         // (unused since the error pipe is gone; kept for numbering)
    CSPAWN_STEP_STACK,        // parent: the child stack could not be mapped
    CSPAWN_STEP_SIGNALS,      // child: resetting signal dispositions
    CSPAWN_STEP_SETSID,       // child: setsid()
    CSPAWN_STEP_SETPGID,      // child: setpgid(0, 0)
    CSPAWN_STEP_SETRLIMIT,    // child: prlimit64() on itself
    CSPAWN_STEP_CHDIR,        // child: chdir()
    CSPAWN_STEP_SETGROUPS,    // child: setgroups()
    CSPAWN_STEP_SETGID,       // child: setresgid()
    CSPAWN_STEP_SETUID,       // child: setresuid()
    CSPAWN_STEP_PDEATHSIG,    // child: prctl(PR_SET_PDEATHSIG) or the parent already died
    CSPAWN_STEP_DUP2,         // child: moving descriptors into place
    CSPAWN_STEP_CLOSE_FDS,    // child: closing every other descriptor
    CSPAWN_STEP_NO_NEW_PRIVS, // child: prctl(PR_SET_NO_NEW_PRIVS)
    CSPAWN_STEP_SIGMASK,      // child: clearing the signal mask
    CSPAWN_STEP_SECCOMP,      // child: seccomp(SECCOMP_SET_MODE_FILTER)
    CSPAWN_STEP_EXEC,         // child: execve()
    CSPAWN_STEP_REPORT,       // (unused since the error pipe is gone; kept for numbering)
    CSPAWN_STEP_CAPABILITIES, // child: clearing the bounding set, ambient and other capability sets
} cspawn_step;

/// Process group placement of the child.
typedef enum {
    CSPAWN_GROUP_SESSION = 0, // setsid(): new session and group, no controlling tty
    CSPAWN_GROUP_NEW = 1,     // setpgid(0, 0): new group in the parent's session
    CSPAWN_GROUP_INHERIT = 2, // stay in the parent's group
} cspawn_group_mode;

/// One resource limit to set in the child with prlimit64(0, resource, ...).
/// Both values are final: the parent has already resolved "leave as is".
typedef struct {
    int resource;  // RLIMIT_*
    uint64_t soft; // RLIM64_INFINITY for unlimited
    uint64_t hard;
} cspawn_rlimit;

/// One descriptor to place in the child: `source` (a descriptor of the parent,
/// or -1 for "close `target`") becomes `target` without FD_CLOEXEC.
typedef struct {
    int source;
    int target;
} cspawn_fd_map;

/// Everything the child needs. Read-only for the child.
typedef struct {
    const char *path;         // resolved executable path (no PATH lookup in the child)
    char *const *argv;        // NULL-terminated
    char *const *envp;        // NULL-terminated; NULL: this process's environ at the spawn

    int group_mode;           // cspawn_group_mode
    const cspawn_rlimit *rlimits;
    int rlimit_count;

    const char *cwd;          // NULL: unchanged

    int set_groups;           // non-zero: setgroups(group_count, groups)
    const gid_t *groups;
    int group_count;
    int set_gid;              // non-zero: setresgid(gid, gid, gid)
    gid_t gid;
    int set_uid;              // non-zero: setresuid(uid, uid, uid)
    uid_t uid;
    // Non-zero: the child holds no capability after its exec. Before the id
    // changes, every capability still in the bounding set is dropped (that needs
    // CAP_SETPCAP); after them, the ambient set is cleared and the effective,
    // permitted and inheritable sets are emptied (capset). Set with any
    // credential change.
    int drop_capabilities;
    int last_capability;      // /proc/sys/kernel/cap_last_cap, read by the parent

    int death_signal;         // 0: none; else PR_SET_PDEATHSIG with this signal
    pid_t parent_pid;         // getpid() of the parent, for the death-signal race check

    const cspawn_fd_map *fds; // applied in order after all sources are moved out of the way
    int fd_count;
    // Targets that stay open in the child, sorted ascending, including 0, 1, 2
    // when mapped. Every other descriptor is closed at exec.
    const int *keep_fds;
    int keep_count;

    int no_new_privs;         // non-zero: PR_SET_NO_NEW_PRIVS (forced on with a filter)
    const void *bpf;          // struct sock_filter[], NULL: no filter
    unsigned short bpf_len;   // number of instructions

    // Tests only: the child stops itself (SIGSTOP) right before its exec, as an
    // attacker of its uid would stop it, so that the watchdog can be tested.
    int test_stop_before_exec;
    // Tests only: CSPAWN_TEST_FALLBACK_* bits, the paths for older kernels taken
    // although this one has the newer call (set from the environment variable
    // ASYNCSPAWN_TEST_FORCE_FALLBACKS=1, so CLI tests can force them too).
    int test_fallbacks;
} cspawn_config;

/// Fallbacks a test can force (cspawn_config.test_fallbacks).
enum {
    CSPAWN_TEST_FALLBACK_CLOSE_RANGE = 1, // walk /proc/self/fd instead of close_range (before 5.11)
};

/// What the parent learns.
typedef struct {
    pid_t pid;   // the child's pid, or -1 when no child exists any more
    int pidfd;   // the child's pidfd (O_CLOEXEC), or -1 where pidfds are unavailable
    int step;    // cspawn_step of the failure, CSPAWN_STEP_NONE on success
    int error;   // errno of the failure
    int pidfd_method; // 1: clone(CLONE_PIDFD), 2: pidfd_open, 0: none
} cspawn_result;

/// Creates the child and returns once it has exec'd or failed. Blocks all
/// signals of the calling thread around clone(). On a child-side failure the
/// child has been reaped and `result->pid` is -1. Returns 0 on success, -1 on
/// failure (details in `result`).
int cspawn_spawn(const cspawn_config *config, cspawn_result *result);

/// Lets another thread end a child that is stuck before its exec.
///
/// With CLONE_VFORK the spawning thread waits in clone() until the child execs
/// or exits; a child stopped on the way (SIGSTOP from any process of its uid,
/// once it dropped to it) would hold that thread for good. The kernel stores the
/// child's pidfd (CLONE_PIDFD), or its pid (CLONE_PARENT_SETTID, where pidfds
/// are missing), in `target` before the child runs; `cspawn_watch_kill` from
/// another thread uses it to SIGKILL the child, and the blocked clone() returns.
///
/// Owned by the spawning thread, which passes it to `cspawn_spawn_watched` and
/// must keep it alive while another thread may call `cspawn_watch_kill`. All
/// fields are for this file only; zero-initialise it once.
typedef struct {
    int target;  // pidfd or pid, as the kernel wrote it; -1 before that
    int is_pid;  // target is a pid, not a pidfd
    int state;   // CSPAWN_WATCH_*: idle, in clone, being signalled
    int killed;  // the watchdog sent SIGKILL during the last clone
} cspawn_watch;

/// `cspawn_spawn`, watched through `watch` (see `cspawn_watch`). After it
/// returns, `cspawn_watch_killed(watch)` tells whether a watchdog ended the child
/// before its exec (the spawn then succeeds with a pid that is dead or dying:
/// the caller reaps it).
int cspawn_spawn_watched(const cspawn_config *config, cspawn_result *result, cspawn_watch *watch);

/// From any thread: SIGKILL the child `watch`'s thread is creating, if that
/// thread is still inside clone(). Returns 1 when the signal was sent (or had
/// been), 0 when no clone is under way, -1 when the kernel has not yet stored
/// the child's pidfd or pid (try again a moment later).
int cspawn_watch_kill(cspawn_watch *watch);

/// Whether a watchdog killed the child during the last `cspawn_spawn_watched`.
int cspawn_watch_killed(const cspawn_watch *watch);

/// The short name of a step ("exec", "chdir", ...), a static string.
const char *cspawn_step_name(int step);

/// waitid() on the child, optionally by pidfd, returning its rusage too.
/// `nohang`: WNOHANG. Returns 1 when the child was reaped (status filled in), 0
/// when it is still running, -1 with errno on error (ECHILD: someone else reaped it).
/// `code` receives CLD_EXITED/CLD_KILLED/CLD_DUMPED, `status` the exit code or signal.
int cspawn_wait(pid_t pid, int pidfd, int nohang, int *code, int *status,
                int64_t *utime_us, int64_t *stime_us, int64_t *maxrss_kib);

/// Whether the child has ended, without reaping it (waitid with WNOWAIT|WNOHANG,
/// by pidfd when >= 0): 1 ended (a zombie: its pid and group id are still held),
/// 0 still running, -1 with errno on error (ECHILD: someone else reaped it).
int cspawn_has_ended(pid_t pid, int pidfd);

/// Sends `signal` to a process by pidfd (when >= 0) or pid. Returns 0 or -errno.
int cspawn_signal(pid_t pid, int pidfd, int signal);

/// Sends `signal` to the process group `pgid`. Returns 0 or -errno.
int cspawn_signal_group(pid_t pgid, int signal);

/// Sets the pipe buffer size (F_SETPIPE_SZ), best effort. Returns the new size or -errno.
int cspawn_set_pipe_size(int fd, int size);

/// Whether pidfds work on this kernel (probed once).
int cspawn_pidfd_supported(void);

/// 1 when the process group `pgid` has a member that is not a zombie, else 0.
/// Zombies are told apart by a census of /proc shared by every call within
/// 10 ms (one scan, not one per group polled).
int cspawn_group_has_live_members(pid_t pgid);

/// 1 when orphans of this process's descendants are reparented to it: it is a
/// child subreaper (PR_GET_CHILD_SUBREAPER) or PID 1 of its namespace.
int cspawn_reaps_orphans(void);

/// Reaps (waitpid, WNOHANG) the zombies of process group `pgid` whose parent is
/// this process. Returns how many processes of the group are left (live or
/// zombies of other parents), 0 when the group is gone, -1 without /proc.
int cspawn_reap_group_orphans(pid_t pgid);

/// prctl(PR_SET_CHILD_SUBREAPER, on): for servers that want orphans, and tests.
int cspawn_set_child_subreaper(int on);

/// How many /proc scans the census has made (tests bound it).
uint64_t cspawn_group_census_scans(void);

/// prctl(PR_GET_DUMPABLE) / prctl(PR_SET_DUMPABLE, value) of this process
/// (prctl is variadic, so Swift cannot call it). A spawn that changes
/// credentials leaves the flag as it found it; tests check that with these.
int cspawn_get_dumpable(void);
int cspawn_set_dumpable(int value);

/// This process's `environ`.
char **cspawn_environ(void);

#ifdef __cplusplus
}
#endif

#include "cspawn_io.h"

#endif // CSPAWN_H
