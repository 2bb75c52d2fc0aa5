// reactor.c — thin epoll/eventfd/pipe helpers for AsyncSpawn's reactor thread,
// so the Swift side needs no packed-struct or union handling.

// Built as with -Wall -Wextra -Werror, whoever builds it (no unsafe flags needed).
#ifdef __clang__
#pragma clang diagnostic error "-Wall"
#pragma clang diagnostic error "-Wextra"
#endif

#include "cspawn.h"
#include "cspawn_io.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/eventfd.h>
#include <unistd.h>

int cspawn_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int cspawn_epoll_arm(int epfd, int fd, int writable, int registered) {
    struct epoll_event event = {0};
    event.events = (writable ? EPOLLOUT : EPOLLIN) | EPOLLONESHOT;
    event.data.fd = fd;
    // One system call in the common case: MOD for a descriptor the caller
    // believes registered, ADD for a new one; the other if that guess was wrong.
    int first = registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int second = registered ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(epfd, first, fd, &event) == 0) return 0;
    if (errno != (registered ? ENOENT : EEXIST)) return -errno;
    if (epoll_ctl(epfd, second, fd, &event) == 0) return 0;
    return -errno;
}

int cspawn_epoll_add_level(int epfd, int fd) {
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

int cspawn_epoll_forget(int epfd, int fd) {
    struct epoll_event event = {0};
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &event) == 0 ? 0 : -errno;
}

int cspawn_epoll_wait(int epfd, int *fds, int max, int timeout_ms) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n;
    do {
        n = epoll_wait(epfd, events, max, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) fds[i] = events[i].data.fd;
    return n;
}

int cspawn_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

void cspawn_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t r;
    do {
        r = write(fd, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
}

void cspawn_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t r;
    do {
        r = read(fd, &value, sizeof value);
    } while (r < 0 && errno == EINTR);
}

int cspawn_pipe(int fds[2], int nonblocking_read, int nonblocking_write) {
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    // A new pipe end has no status flags but its access mode, which F_SETFL
    // ignores: no F_GETFL needed.
    if (nonblocking_read) fcntl(fds[0], F_SETFL, O_NONBLOCK);
    if (nonblocking_write) fcntl(fds[1], F_SETFL, O_NONBLOCK);
    return 0;
}

int cspawn_is_dev_null(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return 0;
    return S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
}

int cspawn_open_null(void) {
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

long cspawn_read(int fd, void *buffer, long size) {
    ssize_t r;
    do {
        r = read(fd, buffer, (size_t)size);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

long cspawn_write(int fd, const void *buffer, long size) {
    ssize_t r;
    do {
        r = write(fd, buffer, (size_t)size);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

void cspawn_block_all_signals_in_thread(void) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

void cspawn_ignore_sigpipe(void) {
    struct sigaction current;
    if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
}

static __thread int on_reactor_thread;

void cspawn_mark_reactor_thread(void) { on_reactor_thread = 1; }

int cspawn_is_reactor_thread(void) { return on_reactor_thread; }

void cspawn_name_thread(const char *name) { prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
