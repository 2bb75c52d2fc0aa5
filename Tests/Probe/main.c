// spawn-probe — a helper the tests run as the child process.
//
// It prints what it sees (its ids, signals, descriptors, limits) or behaves in a
// way the tests need (writes a lot, ignores SIGTERM, forks, escapes its group).
// Plain C, no dependencies, warning-free with -Wall -Wextra.
//
// Subcommands (argv[1]):
//   report                      one "key value" line per fact:
//                                 pid ppid sid pgid uid gid groups cwd
//                                 no_new_privs seccomp pdeathsig sigblk sigign
//                                 sigcgt fds
//                                 rlimit.NAME SOFT HARD   (x16, prlimit(1) names,
//                                                          "unlimited" for RLIM_INFINITY)
//                               groups: comma list of supplementary gids (empty
//                               value when none); fds: comma list of the open
//                               descriptors (the one used to list them excluded);
//                               sigblk/sigign/sigcgt: the hex masks of
//                               /proc/self/status; no_new_privs and seccomp: the
//                               NoNewPrivs and Seccomp fields of /proc/self/status;
//                               pdeathsig: prctl(PR_GET_PDEATHSIG), 0 for none.
//   write N [FD]                writes N bytes to FD (default 1) and exits 0.
//                               Byte i is '\n' when i % 64 == 63, else
//                               'a' + (i % 64) % 26: every line is 63 letters and a
//                               newline (the last one may be cut short).
//   cat                         copies stdin to stdout until EOF, exits 0.
//   sleep SECONDS               sleeps (decimal seconds), exits 0.
//   ignore-term SECONDS         ignores SIGTERM, prints "ready\n", sleeps.
//   exit N                      exits with N.
//   kill-self SIG               raises SIG (a number or a name such as KILL, SEGV).
//   spin                        burns CPU forever.
//   fork-sleep SECONDS          forks a grandchild that sleeps SECONDS, prints
//                               "grandchild PID\n", then sleeps SECONDS too.
//   escape SECONDS              forks a grandchild that calls setsid() and sleeps
//                               SECONDS with stdout still open; the parent prints
//                               "grandchild PID\n" and exits 0 at once.
//   fork-exit SECONDS           forks a grandchild that sleeps SECONDS in the same
//                               group (stdout still open), prints
//                               "grandchild PID\n" and exits 0 at once.
//   close-stdout-then-sleep S   closes stdout, then sleeps S seconds.
//   env NAME                    prints the value of NAME, or "unset".
//   fsize-write BYTES PATH      writes BYTES to PATH in 4 KiB chunks (no SIGXFSZ
//                               handling: the signal kills it); prints
//                               "wrote N\n" on success, "error ERRNO\n" on a failed
//                               write (then exits 1).
//   fork-n N                    tries N forks (the children wait for the parent's
//                               go-ahead); prints "forked K\n" and, when a fork
//                               failed, "errno E\n"; then ends the children and exits 0.
//   print-lines TEXT...         prints each argument on its own line; the last one
//                               is printed without a trailing newline.
//   stderr TEXT                 writes TEXT to stderr (no newline added), exits 0.
//   binary N [FD]               writes N bytes of binary data that contain no
//                               '\n' to FD (default 1) and exits 0. Byte i is
//                               (i * 131 + 7) % 256, with 0x0A written as 0x0B.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stderr, "usage: spawn-probe report|write|cat|sleep|ignore-term|exit|kill-self|spin|"
                    "fork-sleep|fork-exit|escape|close-stdout-then-sleep|env|fsize-write|fork-n|print-lines|stderr|"
                    "stop-new-pids ...\n");
    exit(2);
}

static void sleep_seconds(double seconds) {
    if (seconds <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static double parse_seconds(const char *text) {
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != 0 || value < 0) usage();
    return value;
}

static long long parse_count(const char *text) {
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != 0 || errno != 0 || value < 0) usage();
    return value;
}

static int write_all(int fd, const char *buffer, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, buffer, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buffer += n;
        size -= (size_t)n;
    }
    return 0;
}

// ---- report ---------------------------------------------------------------

// Copies the value of `key:` from /proc/self/status into `out`, trimmed.
static void status_field(const char *key, char *out, size_t size) {
    snprintf(out, size, "?");
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return;
    char line[512];
    size_t keylen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, keylen) == 0 && line[keylen] == ':') {
            char *v = line + keylen + 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t len = strlen(v);
            while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == ' ')) v[--len] = 0;
            snprintf(out, size, "%s", v);
            break;
        }
    }
    fclose(f);
}

static void print_limit_value(rlim_t value) {
    if (value == RLIM_INFINITY)
        printf("unlimited");
    else
        printf("%llu", (unsigned long long)value);
}

static int report(void) {
    printf("pid %d\n", (int)getpid());
    printf("ppid %d\n", (int)getppid());
    printf("sid %d\n", (int)getsid(0));
    printf("pgid %d\n", (int)getpgid(0));
    printf("uid %u\n", (unsigned)getuid());
    printf("gid %u\n", (unsigned)getgid());

    gid_t groups[NGROUPS_MAX > 65536 ? 65536 : NGROUPS_MAX];
    int ngroups = getgroups((int)(sizeof groups / sizeof groups[0]), groups);
    printf("groups ");
    for (int i = 0; i < ngroups; i++) printf(i ? ",%u" : "%u", (unsigned)groups[i]);
    printf("\n");

    char cwd[PATH_MAX];
    printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");

    char value[256];
    status_field("NoNewPrivs", value, sizeof value);
    printf("no_new_privs %s\n", value);
    status_field("Seccomp", value, sizeof value);
    printf("seccomp %s\n", value);
    int pdeathsig = 0;
    if (prctl(PR_GET_PDEATHSIG, &pdeathsig, 0, 0, 0) != 0) pdeathsig = -1;
    printf("pdeathsig %d\n", pdeathsig);
    status_field("SigBlk", value, sizeof value);
    printf("sigblk %s\n", value);
    status_field("SigIgn", value, sizeof value);
    printf("sigign %s\n", value);
    status_field("SigCgt", value, sizeof value);
    printf("sigcgt %s\n", value);

    // Open descriptors. Listed before stdio opens anything else of its own
    // (fopen above closed its file again).
    printf("fds ");
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        int self = dirfd(dir);
        int first = 1;
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
            int fd = atoi(entry->d_name);
            if (fd == self) continue;
            printf(first ? "%d" : ",%d", fd);
            first = 0;
        }
        closedir(dir);
    }
    printf("\n");

    static const struct {
        const char *name;
        int resource;
    } limits[] = {
        {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},
        {"cpu", RLIMIT_CPU},         {"data", RLIMIT_DATA},
        {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},
        {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE},
        {"nice", RLIMIT_NICE},       {"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},
        {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},
        {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit rl;
        if (getrlimit((__rlimit_resource_t)limits[i].resource, &rl) != 0) {
            printf("rlimit.%s ? ?\n", limits[i].name);
            continue;
        }
        printf("rlimit.%s ", limits[i].name);
        print_limit_value(rl.rlim_cur);
        printf(" ");
        print_limit_value(rl.rlim_max);
        printf("\n");
    }
    fflush(stdout);
    return 0;
}

// ---- output ---------------------------------------------------------------

static int write_pattern(long long total, int fd) {
    static char buffer[1 << 16];
    // 65536 is a multiple of 64: every buffer starts at a line boundary.
    for (size_t i = 0; i < sizeof buffer; i++)
        buffer[i] = (i % 64 == 63) ? '\n' : (char)('a' + (int)((i % 64) % 26));
    while (total > 0) {
        size_t n = total < (long long)sizeof buffer ? (size_t)total : sizeof buffer;
        if (write_all(fd, buffer, n) < 0) {
            fprintf(stderr, "write: %s\n", strerror(errno));
            return 1;
        }
        total -= (long long)n;
    }
    return 0;
}

static int cat(void) {
    static char buffer[1 << 20];
    for (;;) {
        ssize_t n = read(0, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "read: %s\n", strerror(errno));
            return 1;
        }
        if (n == 0) return 0;
        if (write_all(1, buffer, (size_t)n) < 0) {
            fprintf(stderr, "write: %s\n", strerror(errno));
            return 1;
        }
    }
}

// ---- signals --------------------------------------------------------------

static int parse_signal(const char *text) {
    static const struct {
        const char *name;
        int number;
    } names[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
        {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
        {"SYS", SIGSYS},   {"ALRM", SIGALRM},
    };
    char *end = NULL;
    long n = strtol(text, &end, 10);
    if (end != text && *end == 0) return (int)n;
    if (strncmp(text, "SIG", 3) == 0) text += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, text) == 0) return names[i].number;
    usage();
    return 0;
}

__attribute__((noreturn)) static void kill_self(int sig) {
    fflush(stdout);
    // Make sure the signal is neither blocked nor ignored nor handled.
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), sig);
    for (;;) pause();
}

__attribute__((noreturn)) static void spin(void) {
    volatile unsigned long long counter = 0;
    for (;;) counter++;
}

// ---- processes ------------------------------------------------------------

static int fork_sleep(double seconds) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        sleep_seconds(seconds);
        _exit(0);
    }
    printf("grandchild %d\n", (int)pid);
    fflush(stdout);
    sleep_seconds(seconds);
    return 0;
}

static int fork_exit(double seconds) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        sleep_seconds(seconds);
        _exit(0);
    }
    printf("grandchild %d\n", (int)pid);
    fflush(stdout);
    return 0;
}

static int escape(double seconds) {
    fflush(stdout);
    int ready[2];
    if (pipe(ready) < 0) return 1;
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(ready[0]);
        setsid();
        // Tell the parent we are out of its group before it exits.
        close(ready[1]);
        sleep_seconds(seconds);
        _exit(0);
    }
    close(ready[1]);
    char c;
    while (read(ready[0], &c, 1) < 0 && errno == EINTR) {
    }
    printf("grandchild %d\n", (int)pid);
    fflush(stdout);
    return 0;
}

// An attacker of its own uid: sends SIGSTOP, again and again, to the pids just
// created and about to be (around /proc/sys/kernel/ns_last_pid). A process of
// another uid refuses it (EPERM); a child that has just dropped to this uid and
// not yet exec'd is stopped in the window between the two (issue 11, defect 1).
static int stop_new_pids(void) {
    printf("ready\n");
    fflush(stdout);
    pid_t self = getpid();
    char text[32];
    for (;;) {
        int fd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 1;
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n <= 0) return 1;
        text[n] = 0;
        long last = strtol(text, NULL, 10);
        for (long p = last - 4; p <= last + 16; p++)
            if (p > 1 && p != self) kill((pid_t)p, SIGSTOP);
    }
}

static int fork_n(long long n) {
    int go[2];
    if (pipe(go) < 0) return 1;
    pid_t *children = calloc((size_t)(n > 0 ? n : 1), sizeof(pid_t));
    if (!children) return 1;
    long long forked = 0;
    int failure = 0;
    for (long long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            failure = errno;
            break;
        }
        if (pid == 0) {
            close(go[1]);
            char c;
            // Wait until the parent closes its end (EOF), then exit.
            while (read(go[0], &c, 1) < 0 && errno == EINTR) {
            }
            _exit(0);
        }
        children[forked++] = pid;
    }
    close(go[1]);
    for (long long i = 0; i < forked; i++) {
        while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR) {
        }
    }
    printf("forked %lld\n", forked);
    if (failure) printf("errno %d\n", failure);
    fflush(stdout);
    free(children);
    return 0;
}

static int fsize_write(long long bytes, const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        printf("error %d\n", errno);
        return 1;
    }
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    long long written = 0;
    while (written < bytes) {
        size_t n = bytes - written < (long long)sizeof chunk ? (size_t)(bytes - written) : sizeof chunk;
        ssize_t w = write(fd, chunk, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            printf("error %d\n", errno);
            close(fd);
            return 1;
        }
        written += w;
    }
    close(fd);
    printf("wrote %lld\n", written);
    return 0;
}

// ---- binary output without newlines ---------------------------------------

static int write_binary(long long total, int fd) {
    static unsigned char buffer[1 << 16];
    // 65536 is a multiple of 256: every buffer continues the same sequence.
    for (size_t i = 0; i < sizeof buffer; i++) {
        unsigned char b = (unsigned char)((i * 131 + 7) % 256);
        buffer[i] = b == '\n' ? 0x0B : b;
    }
    while (total > 0) {
        size_t n = total < (long long)sizeof buffer ? (size_t)total : sizeof buffer;
        if (write_all(fd, (const char *)buffer, n) < 0) {
            fprintf(stderr, "write: %s\n", strerror(errno));
            return 1;
        }
        total -= (long long)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *command = argv[1];

    if (strcmp(command, "report") == 0) return report();
    if (strcmp(command, "write") == 0) {
        if (argc < 3) usage();
        int fd = argc > 3 ? (int)parse_count(argv[3]) : 1;
        return write_pattern(parse_count(argv[2]), fd);
    }
    if (strcmp(command, "cat") == 0) return cat();
    if (strcmp(command, "sleep") == 0) {
        if (argc < 3) usage();
        sleep_seconds(parse_seconds(argv[2]));
        return 0;
    }
    if (strcmp(command, "ignore-term") == 0) {
        if (argc < 3) usage();
        double seconds = parse_seconds(argv[2]);
        signal(SIGTERM, SIG_IGN);
        printf("ready\n");
        fflush(stdout);
        sleep_seconds(seconds);
        return 0;
    }
    if (strcmp(command, "exit") == 0) {
        if (argc < 3) usage();
        return (int)parse_count(argv[2]);
    }
    if (strcmp(command, "kill-self") == 0) {
        if (argc < 3) usage();
        kill_self(parse_signal(argv[2]));
    }
    if (strcmp(command, "spin") == 0) spin();
    if (strcmp(command, "fork-sleep") == 0) {
        if (argc < 3) usage();
        return fork_sleep(parse_seconds(argv[2]));
    }
    if (strcmp(command, "fork-exit") == 0) {
        if (argc < 3) usage();
        return fork_exit(parse_seconds(argv[2]));
    }
    if (strcmp(command, "escape") == 0) {
        if (argc < 3) usage();
        return escape(parse_seconds(argv[2]));
    }
    if (strcmp(command, "close-stdout-then-sleep") == 0) {
        if (argc < 3) usage();
        double seconds = parse_seconds(argv[2]);
        fflush(stdout);
        close(1);
        sleep_seconds(seconds);
        return 0;
    }
    if (strcmp(command, "env") == 0) {
        if (argc < 3) usage();
        const char *value = getenv(argv[2]);
        printf("%s\n", value ? value : "unset");
        return 0;
    }
    if (strcmp(command, "fsize-write") == 0) {
        if (argc < 4) usage();
        return fsize_write(parse_count(argv[2]), argv[3]);
    }
    if (strcmp(command, "stop-new-pids") == 0) return stop_new_pids();
    if (strcmp(command, "fork-n") == 0) {
        if (argc < 3) usage();
        return fork_n(parse_count(argv[2]));
    }
    if (strcmp(command, "print-lines") == 0) {
        for (int i = 2; i < argc; i++) printf(i + 1 < argc ? "%s\n" : "%s", argv[i]);
        fflush(stdout);
        return 0;
    }
    if (strcmp(command, "stderr") == 0) {
        if (argc < 3) usage();
        fputs(argv[2], stderr);
        return 0;
    }
    if (strcmp(command, "binary") == 0) {
        if (argc < 3) usage();
        int fd = argc > 3 ? (int)parse_count(argv[3]) : 1;
        return write_binary(parse_count(argv[2]), fd);
    }
    usage();
    return 2;
}
