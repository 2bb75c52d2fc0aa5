// cfloor.c — see cfloor.h.
#include "cfloor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

char **cfloor_argv_new(const char *const *argv, int count) {
    char **out = calloc((size_t)count + 1, sizeof(char *));
    if (!out) return NULL;
    for (int i = 0; i < count; i++) out[i] = strdup(argv[i]);
    out[count] = NULL;
    return out;
}

void cfloor_argv_free(char **argv) {
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}

static int open_null(void) { return open("/dev/null", O_RDWR | O_CLOEXEC); }

static pid_t spawn_null(char *const *argv, int setsid) {
    int null = open_null();
    if (null < 0) return -errno;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, null, 0);
    posix_spawn_file_actions_adddup2(&actions, null, 1);
    posix_spawn_file_actions_adddup2(&actions, null, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (setsid) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    pid_t pid;
    int r = posix_spawn(&pid, argv[0], &actions, setsid ? &attr : NULL, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(null);
    return r == 0 ? pid : -r;
}

pid_t cfloor_spawn_null(char *const *argv) { return spawn_null(argv, 0); }

int cfloor_wait(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -errno;
    }
    return status;
}

int cfloor_spawn_wait(char *const *argv) {
    pid_t pid = spawn_null(argv, 0);
    if (pid < 0) return pid;
    return cfloor_wait(pid);
}

int cfloor_spawn_wait_setsid(char *const *argv) {
    pid_t pid = spawn_null(argv, 1);
    if (pid < 0) return pid;
    return cfloor_wait(pid);
}

static pid_t spawn_reader(char *const *argv, int *read_fd, int inherit_stderr) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    int null = open_null();
    if (null < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, null, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    if (!inherit_stderr) posix_spawn_file_actions_adddup2(&actions, null, 2);
    pid_t pid;
    int r = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(null);
    close(fds[1]);
    if (r != 0) {
        close(fds[0]);
        return -r;
    }
    *read_fd = fds[0];
    return pid;
}

pid_t cfloor_spawn_reader(char *const *argv, int *read_fd) { return spawn_reader(argv, read_fd, 0); }

pid_t cfloor_spawn_capture(char *const *argv, int *read_fd) { return spawn_reader(argv, read_fd, 1); }

int64_t cfloor_read_all(int fd, size_t buffer_size) {
    char *buffer = malloc(buffer_size);
    if (!buffer) {
        close(fd);
        return -ENOMEM;
    }
    int64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, buffer_size);
        if (n > 0) {
            total += n;
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            total = -errno;
            break;
        }
    }
    free(buffer);
    close(fd);
    return total;
}

int64_t cfloor_count_lines(int fd) {
    enum { SIZE = 64 * 1024 };
    char *buffer = malloc(SIZE);
    if (!buffer) {
        close(fd);
        return -ENOMEM;
    }
    int64_t lines = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, SIZE);
        if (n > 0) {
            const char *p = buffer, *end = buffer + n;
            while ((p = memchr(p, '\n', (size_t)(end - p)))) {
                lines++;
                p++;
            }
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            lines = -errno;
            break;
        }
    }
    free(buffer);
    close(fd);
    return lines;
}

int64_t cfloor_read_slowly(int fd, unsigned sleep_us) {
    enum { SIZE = 64 * 1024 };
    char *buffer = malloc(SIZE);
    if (!buffer) {
        close(fd);
        return -ENOMEM;
    }
    int64_t total = 0;
    struct timespec pause = {.tv_sec = sleep_us / 1000000, .tv_nsec = (long)(sleep_us % 1000000) * 1000};
    for (;;) {
        ssize_t n = read(fd, buffer, SIZE);
        if (n > 0) {
            total += n;
            nanosleep(&pause, NULL);
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            total = -errno;
            break;
        }
    }
    free(buffer);
    close(fd);
    return total;
}

int64_t cfloor_roundtrip(char *const *argv, const uint8_t *data, size_t length) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0) return -errno;
    if (pipe2(out, O_CLOEXEC) < 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        return -e;
    }
    int null = open_null();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, null, 2);
    pid_t pid;
    int r = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(null);
    close(in[0]);
    close(out[1]);
    if (r != 0) {
        close(in[1]);
        close(out[0]);
        return -r;
    }
    int wfd = in[1], rfd = out[0];
    fcntl(wfd, F_SETFL, O_NONBLOCK);
    fcntl(rfd, F_SETFL, O_NONBLOCK);
    enum { SIZE = 64 * 1024 };
    char *buffer = malloc(SIZE);
    size_t written = 0;
    int64_t total = 0;
    int error = 0;
    if (length == 0) {
        close(wfd);
        wfd = -1;
    }
    while (rfd >= 0 && !error) {
        struct pollfd p[2];
        int count = 0, wi = -1, ri = -1;
        if (wfd >= 0) {
            p[count] = (struct pollfd){.fd = wfd, .events = POLLOUT};
            wi = count++;
        }
        p[count] = (struct pollfd){.fd = rfd, .events = POLLIN};
        ri = count++;
        if (poll(p, (nfds_t)count, -1) < 0) {
            if (errno == EINTR) continue;
            error = errno;
            break;
        }
        if (wi >= 0 && (p[wi].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(wfd, data + written, length - written);
            if (n > 0) {
                written += (size_t)n;
                if (written == length) {
                    close(wfd);
                    wfd = -1;
                }
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                error = errno;
            }
        }
        if (p[ri].revents & (POLLIN | POLLERR | POLLHUP)) {
            for (;;) {
                ssize_t n = read(rfd, buffer, SIZE);
                if (n > 0) {
                    total += n;
                    continue;
                }
                if (n == 0) {
                    close(rfd);
                    rfd = -1;
                } else if (errno != EAGAIN && errno != EINTR) {
                    error = errno;
                }
                break;
            }
        }
    }
    free(buffer);
    if (wfd >= 0) close(wfd);
    if (rfd >= 0) close(rfd);
    cfloor_wait(pid);
    return error ? -error : total;
}

void *cfloor_touch(size_t bytes) {
    char *p = malloc(bytes);
    if (!p) return NULL;
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < bytes; i += (size_t)page) p[i] = (char)(i >> 12 | 1);
    return p;
}

void cfloor_release(void *p) {
    free(p);
    malloc_trim(0);
}

void cfloor_trim(void) { malloc_trim(0); }

// MARK: thread sampler

static pthread_t sampler_thread;
static volatile int sampler_running;
static unsigned sampler_interval_us;
static int sampler_peak;
static char sampler_names[4096];

static int count_threads(pid_t exclude, char *names, size_t names_size) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    int count = 0;
    size_t used = 0;
    if (names && names_size) names[0] = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        if (atoi(entry->d_name) == exclude) continue;
        count++;
        if (names && names_size) {
            char path[64], comm[32] = "?";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", entry->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                ssize_t n = read(fd, comm, sizeof comm - 1);
                close(fd);
                if (n > 0) {
                    comm[n] = 0;
                    char *nl = strchr(comm, '\n');
                    if (nl) *nl = 0;
                }
            }
            int w = snprintf(names + used, names_size - used, "%s%s", used ? "," : "", comm);
            if (w > 0 && (size_t)w < names_size - used) used += (size_t)w;
        }
    }
    closedir(dir);
    return count;
}

static void *sampler_main(void *arg) {
    (void)arg;
    pid_t self = (pid_t)syscall(SYS_gettid);
    struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)sampler_interval_us * 1000};
    while (__atomic_load_n(&sampler_running, __ATOMIC_ACQUIRE)) {
        int n = count_threads(self, NULL, 0);
        if (n > sampler_peak) {
            char names[sizeof sampler_names];
            int m = count_threads(self, names, sizeof names);
            if (m > sampler_peak) {
                sampler_peak = m;
                memcpy(sampler_names, names, sizeof names);
            }
            if (n > sampler_peak) sampler_peak = n;
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int cfloor_sampler_start(unsigned interval_us) {
    sampler_interval_us = interval_us ? interval_us : 1000;
    sampler_peak = 0;
    sampler_names[0] = 0;
    __atomic_store_n(&sampler_running, 1, __ATOMIC_RELEASE);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    int r = pthread_create(&sampler_thread, &attr, sampler_main, NULL);
    pthread_attr_destroy(&attr);
    return -r;
}

int cfloor_sampler_stop(char *names, size_t names_size) {
    __atomic_store_n(&sampler_running, 0, __ATOMIC_RELEASE);
    pthread_join(sampler_thread, NULL);
    if (names && names_size) {
        strncpy(names, sampler_names, names_size - 1);
        names[names_size - 1] = 0;
    }
    return sampler_peak;
}

int cfloor_thread_count(void) { return count_threads(-1, NULL, 0); }

// MARK: memory

int cfloor_reset_hwm(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = write(fd, "5", 1);
    int e = errno;
    close(fd);
    return n == 1 ? 0 : -e;
}

long cfloor_status_kib(const char *field) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buffer[8192];
    ssize_t n = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (n <= 0) return -1;
    buffer[n] = 0;
    size_t len = strlen(field);
    for (char *line = buffer; line && *line;) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') return strtol(line + len + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line) line++;
    }
    return -1;
}

uint64_t cfloor_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int cfloor_self_exe(char *out, size_t size) {
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n < 0) return -errno;
    out[n] = 0;
    return 0;
}
