// cspawn_io.h — epoll, eventfd and pipe helpers used by AsyncSpawn's reactor.
// Every descriptor created here is O_CLOEXEC. Functions return -errno on failure.
#ifndef CSPAWN_IO_H
#define CSPAWN_IO_H

#ifdef __cplusplus
extern "C" {
#endif

int cspawn_epoll_create(void);
/// Arms `fd` once (EPOLLONESHOT) for readability, or writability when `writable`.
/// `registered`: whether the caller believes `fd` is in the set already (then
/// EPOLL_CTL_MOD is tried first, else EPOLL_CTL_ADD); a wrong guess costs a retry.
int cspawn_epoll_arm(int epfd, int fd, int writable, int registered);
/// Adds `fd` for readability, level-triggered (the reactor's wake-up eventfd).
int cspawn_epoll_add_level(int epfd, int fd);
int cspawn_epoll_forget(int epfd, int fd);
/// Waits for events; fills `fds` with the ready descriptors. Returns their count.
int cspawn_epoll_wait(int epfd, int *fds, int max, int timeout_ms);
int cspawn_eventfd(void);
void cspawn_eventfd_signal(int fd);
void cspawn_eventfd_drain(int fd);
/// pipe2(O_CLOEXEC), then O_NONBLOCK on the ends asked for.
int cspawn_pipe(int fds[2], int nonblocking_read, int nonblocking_write);
int cspawn_open_null(void);
/// 1 when `fd` is open on the null device (character device 1:3), else 0.
int cspawn_is_dev_null(int fd);
long cspawn_read(int fd, void *buffer, long size);
long cspawn_write(int fd, const void *buffer, long size);
void cspawn_block_all_signals_in_thread(void);
/// Ignores SIGPIPE process-wide unless the process already handles it, so a
/// write to a child that closed its stdin fails with EPIPE instead of killing us.
void cspawn_ignore_sigpipe(void);
/// Marks the calling thread as the reactor's; `cspawn_is_reactor_thread` tells.
void cspawn_mark_reactor_thread(void);
int cspawn_is_reactor_thread(void);
/// Names the calling thread (PR_SET_NAME).
void cspawn_name_thread(const char *name);

#ifdef __cplusplus
}
#endif
#endif
