#ifndef CSECCOMP_SHIM_H
#define CSECCOMP_SHIM_H
#include <seccomp.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

// Action values (the libseccomp macros with arguments are not visible to Swift).
static inline uint32_t cseccomp_act_allow(void) { return SCMP_ACT_ALLOW; }
static inline uint32_t cseccomp_act_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }
static inline uint32_t cseccomp_act_kill_thread(void) { return SCMP_ACT_KILL_THREAD; }
static inline uint32_t cseccomp_act_trap(void) { return SCMP_ACT_TRAP; }
static inline uint32_t cseccomp_act_log(void) { return SCMP_ACT_LOG; }
static inline uint32_t cseccomp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }

/// Exports the filter's BPF through a memfd (libseccomp 2.5 writes to an fd).
/// On success `*out` is malloc'd (caller frees) and 0 is returned; else -errno.
static inline int cseccomp_export(scmp_filter_ctx ctx, unsigned char **out, long *length) {
    int fd = (int)syscall(SYS_memfd_create, "asyncspawn-seccomp", 1U /* MFD_CLOEXEC */);
    if (fd < 0) return -errno;
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0) { close(fd); return r; }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || lseek(fd, 0, SEEK_SET) != 0) { close(fd); return -EIO; }
    unsigned char *buffer = malloc((size_t)size);
    if (!buffer) { close(fd); return -ENOMEM; }
    long done = 0;
    while (done < size) {
        ssize_t n = read(fd, buffer + done, (size_t)(size - done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { free(buffer); close(fd); return n < 0 ? -errno : -EIO; }
        done += n;
    }
    close(fd);
    *out = buffer;
    *length = done;
    return 0;
}
#endif
