// sysprobe.c — compiled by the seccomp tests (gcc, at test time) and run under
// filters. Each mode makes one system call and prints "<mode> ok" or
// "<mode> errno N", so a test can see exactly what the kernel answered.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int report(const char *mode, long r) {
    if (r < 0) printf("%s errno %d\n", mode, errno);
    else printf("%s ok\n", mode);
    fflush(stdout);
    return 0;
}

static void *thread_body(void *arg) { return arg; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *m = argv[1];
    if (!strcmp(m, "socket-inet")) return report(m, socket(AF_INET, SOCK_STREAM, 0));
    if (!strcmp(m, "socket-inet6")) return report(m, socket(AF_INET6, SOCK_STREAM, 0));
    if (!strcmp(m, "socket-unix")) return report(m, socket(AF_UNIX, SOCK_STREAM, 0));
    if (!strcmp(m, "socketpair-unix")) { int sv[2]; return report(m, socketpair(AF_UNIX, SOCK_STREAM, 0, sv)); }
    if (!strcmp(m, "fork")) {
        pid_t p = fork();
        if (p == 0) _exit(0);
        if (p > 0) waitpid(p, NULL, 0);
        return report(m, p);
    }
    if (!strcmp(m, "vfork-raw")) {
        long p = syscall(SYS_vfork);
        if (p == 0) _exit(0);
        if (p > 0) waitpid((pid_t)p, NULL, 0);
        return report(m, p);
    }
    if (!strcmp(m, "clone3")) {
        // An invalid (empty) argument: without a filter the kernel answers EINVAL.
        return report(m, syscall(SYS_clone3, NULL, 0));
    }
    if (!strcmp(m, "thread")) {
        pthread_t t;
        int r = pthread_create(&t, NULL, thread_body, NULL);
        if (r == 0) pthread_join(t, NULL);
        errno = r;
        return report(m, r == 0 ? 0 : -1);
    }
    if (!strcmp(m, "ptrace")) return report(m, ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    if (!strcmp(m, "unshare")) return report(m, unshare(CLONE_NEWUTS));
    if (!strcmp(m, "mount")) return report(m, syscall(SYS_mount, "none", "/nonexistent-mnt", "tmpfs", 0, NULL));
    if (!strcmp(m, "read-file") && argc > 2) return report(m, open(argv[2], O_RDONLY));
    if (!strcmp(m, "write-file") && argc > 2) return report(m, open(argv[2], O_WRONLY | O_CREAT, 0644));
    if (!strcmp(m, "mkdir") && argc > 2) return report(m, mkdir(argv[2], 0755));
    if (!strcmp(m, "unlink") && argc > 2) return report(m, unlink(argv[2]));
    if (!strcmp(m, "rename") && argc > 3) return report(m, rename(argv[2], argv[3]));
    if (!strcmp(m, "stdout")) return report(m, write(1, "", 0));
    if (!strcmp(m, "getpriority") && argc > 2) {
        // getpriority(PRIO_PROCESS, who): who=0 succeeds, a missing pid is ESRCH.
        return report(m, syscall(SYS_getpriority, PRIO_PROCESS, strtol(argv[2], NULL, 0)));
    }
#if defined(__x86_64__)
    if (!strcmp(m, "int80-socket")) {
        // i386 socket(AF_INET, SOCK_STREAM, 0) through the 32-bit entry point:
        // syscall 359 on i386. A filter for x86_64 alone must not let it through.
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(359), "b"(2), "c"(1), "d"(0) : "memory");
        if (r < 0) { errno = (int)-r; return report(m, -1); }
        return report(m, r);
    }
    if (!strcmp(m, "x32-getpid")) {
        // getpid through the x32 ABI (syscall number with bit 30 set).
        long r;
        __asm__ volatile("syscall" : "=a"(r) : "a"(0x40000000L | 39) : "rcx", "r11", "memory");
        if (r < 0) { errno = (int)-r; return report(m, -1); }
        return report(m, r);
    }
#endif
    fprintf(stderr, "sysprobe: unknown mode %s\n", m);
    return 2;
}
