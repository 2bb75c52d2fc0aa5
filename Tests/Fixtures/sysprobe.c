// sysprobe.c — compiled by the seccomp tests (gcc, at test time) and run under
// filters. Each mode makes one system call and prints "<mode> ok" or
// "<mode> errno N", so a test can see exactly what the kernel answered.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

// System calls newer than the build machine's kernel headers (Debian 12: 6.1),
// numbered as in every architecture's table but alpha's, and the structures
// they take (include/uapi/linux/xattr.h, include/uapi/linux/fs.h).
#define NR_fchmodat2 452
#define NR_setxattrat 463
#define NR_removexattrat 466
#define NR_open_tree_attr 467
#define NR_file_getattr 468
#define NR_file_setattr 469
struct probe_xattr_args { uint64_t value; uint32_t size; uint32_t flags; };  // XATTR_ARGS_SIZE_VER0 16
struct probe_file_attr {                                                   // FILE_ATTR_SIZE_VER0 24
    uint64_t fa_xflags;
    uint32_t fa_extsize, fa_nextents, fa_projid, fa_cowextsize;
};
#define PROBE_FS_XFLAG_NODUMP 0x00000080

static int report(const char *mode, long r) {
    if (r < 0) printf("%s errno %d\n", mode, errno);
    else printf("%s ok\n", mode);
    fflush(stdout);
    return 0;
}

static void *thread_body(void *arg) { return arg; }

// A negative kernel return (-errno) as report() expects it.
static long from_kernel(long r) {
    if (r < 0) { errno = (int)-r; return -1; }
    return r;
}

// One operation through an io_uring, submitted and waited for; the
// completion's result (-errno on failure). The rings are mapped as the
// kernel describes them in `p`.
struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static int ring_open(struct ring *r) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)syscall(SYS_io_uring_setup, 4, &p);
    if (fd < 0) return -errno;
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) sq_size = cq_size = sq_size > cq_size ? sq_size : cq_size;
    char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) return -errno;
    char *cq = sq;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
        cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED) return -errno;
    }
    void *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) return -errno;
    r->fd = fd;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    r->sqes = sqes;
    return 0;
}

static long ring_run(struct ring *r, const struct io_uring_sqe *op) {
    unsigned tail = *r->sq_tail;
    unsigned index = tail & *r->sq_mask;
    r->sqes[index] = *op;
    r->sq_array[index] = index;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    long n = syscall(SYS_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (n < 0) return -errno;
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) return -EAGAIN;
    long res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return res;
}

// Creates `path` and writes "io_uring\n" to it with io_uring operations only:
// neither openat(2) nor write(2) is called, so a filter on those sees nothing.
static long io_uring_write(const char *path) {
    struct ring r;
    int e = ring_open(&r);
    if (e < 0) return e;
    struct io_uring_sqe op;
    memset(&op, 0, sizeof op);
    op.opcode = IORING_OP_OPENAT;
    op.fd = AT_FDCWD;
    op.addr = (uint64_t)(uintptr_t)path;
    op.open_flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    op.len = 0644;
    long fd = ring_run(&r, &op);
    if (fd < 0) return fd;
    static const char text[] = "io_uring\n";
    memset(&op, 0, sizeof op);
    op.opcode = IORING_OP_WRITE;
    op.fd = (int)fd;
    op.addr = (uint64_t)(uintptr_t)text;
    op.len = sizeof text - 1;
    op.off = 0;
    long written = ring_run(&r, &op);
    if (written < 0) return written;
    return written == (long)(sizeof text - 1) ? 0 : -EIO;
}

// A raw clone (no CLONE_VM, no stack: the child runs on a copy of ours, like
// fork) with these flags; the child exits at once and is reaped.
static long clone_with(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

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
    if (!strcmp(m, "clone-flags") && argc > 2) {
        // clone(FLAGS|SIGCHLD) (FLAGS in hex: namespace flags, e.g. 0x50000000 for
        // CLONE_NEWUSER|CLONE_NEWNET).
        return report(m, clone_with(strtoul(argv[2], NULL, 16)));
    }
    if (!strcmp(m, "clone3-newuser")) {
        // A real clone3 that creates a user namespace (the child exits at once).
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_NEWUSER;
        args.exit_signal = SIGCHLD;
        long pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid((pid_t)pid, NULL, 0);
        return report(m, pid);
    }
    if (!strcmp(m, "io_uring-write") && argc > 2) return report(m, from_kernel(io_uring_write(argv[2])));
    if (!strcmp(m, "fchmodat2") && argc > 3) {
        return report(m, syscall(NR_fchmodat2, AT_FDCWD, argv[2], (mode_t)strtoul(argv[3], NULL, 8), 0));
    }
    if (!strcmp(m, "setxattrat") && argc > 4) {
        // setxattrat(AT_FDCWD, PATH, 0, NAME, {VALUE, strlen(VALUE), 0}, 16)
        struct probe_xattr_args a = {(uint64_t)(uintptr_t)argv[4], (uint32_t)strlen(argv[4]), 0};
        return report(m, syscall(NR_setxattrat, AT_FDCWD, argv[2], 0, argv[3], &a, sizeof a));
    }
    if (!strcmp(m, "removexattrat") && argc > 3) return report(m, syscall(NR_removexattrat, AT_FDCWD, argv[2], 0, argv[3]));
    if (!strcmp(m, "getxattr") && argc > 3) {
        // Prints "getxattr VALUE" (or the errno): how a test sees what the calls above did.
        char value[256];
        ssize_t n = getxattr(argv[2], argv[3], value, sizeof value - 1);
        if (n < 0) return report(m, -1);
        value[n] = 0;
        printf("getxattr %s\n", value);
        return 0;
    }
    if (!strcmp(m, "clone-parent") && argc > 2) {
        // N raw clone(CLONE_PARENT|SIGCHLD) children that exit at once: children
        // of this process's parent, which it never started.
        long n = strtol(argv[2], NULL, 10), made = 0, r = 0;
        for (long i = 0; i < n; i++) {
            r = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
            if (r == 0) _exit(0);
            if (r < 0) break;
            made++;
        }
        if (r < 0) return report(m, r);
        printf("%s ok %ld\n", m, made);
        fflush(stdout);
        return 0;
    }
    if (!strcmp(m, "ioctl-setflags-nodump") && argc > 2) {
        // chattr +d through FS_IOC_SETFLAGS on a descriptor opened read-only.
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) return report(m, -1);
        int flags = 0;
        if (ioctl(fd, 0x80086601 /* FS_IOC_GETFLAGS */, &flags) < 0) return report(m, -1);
        flags |= 0x40; /* FS_NODUMP_FL */
        return report(m, ioctl(fd, 0x40086602 /* FS_IOC_SETFLAGS */, &flags));
    }
    if (!strcmp(m, "ioctl-getflags") && argc > 2) {
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        int flags = 0;
        if (fd < 0 || ioctl(fd, 0x80086601, &flags) < 0) return report(m, -1);
        printf("%s 0x%x\n", m, flags & 0x40);
        return 0;
    }
    if (!strcmp(m, "file_setattr-nodump") && argc > 2) {
        // file_getattr, then file_setattr with FS_XFLAG_NODUMP added (chattr +d).
        struct probe_file_attr fa;
        memset(&fa, 0, sizeof fa);
        if (syscall(NR_file_getattr, AT_FDCWD, argv[2], &fa, sizeof fa, 0) < 0) return report(m, -1);
        fa.fa_xflags |= PROBE_FS_XFLAG_NODUMP;
        return report(m, syscall(NR_file_setattr, AT_FDCWD, argv[2], &fa, sizeof fa, 0));
    }
    if (!strcmp(m, "file_getattr") && argc > 2) {
        // Prints "file_getattr xflags 0xN" (or the errno).
        struct probe_file_attr fa;
        memset(&fa, 0, sizeof fa);
        if (syscall(NR_file_getattr, AT_FDCWD, argv[2], &fa, sizeof fa, 0) < 0) return report(m, -1);
        printf("file_getattr xflags 0x%llx\n", (unsigned long long)fa.fa_xflags);
        return 0;
    }
    if (!strcmp(m, "open_tree_attr") && argc > 2) {
        // A detached copy of the mount at PATH, made read-write (MOUNT_ATTR_RDONLY
        // cleared): what mount_setattr would do, in one call. Needs CAP_SYS_ADMIN.
        struct mount_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.attr_clr = MOUNT_ATTR_RDONLY;
        return report(m, syscall(NR_open_tree_attr, AT_FDCWD, argv[2], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, &attr, sizeof attr));
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
