// clonefail.c — compiled by FaultTests with the CSpawn sources. Drops to an
// unused uid with RLIMIT_NPROC 1 (this process already counts as one), so the
// engine's clone() must fail with EAGAIN; checks that the failure is reported
// as step "clone" and that no descriptor or mapping is left behind.
#define _GNU_SOURCE
#include "cspawn.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

int main(void) {
    struct rlimit one = {1, 1};
    if (setresgid(43210, 43210, 43210) || setresuid(43210, 43210, 43210) || setrlimit(RLIMIT_NPROC, &one)) {
        perror("setup");
        return 2;
    }
    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {NULL};
    cspawn_config c = {0};
    c.path = "/bin/true";
    c.argv = argv;
    c.envp = envp;
    c.group_mode = CSPAWN_GROUP_SESSION;
    int before = count_fds();
    for (int i = 0; i < 100; i++) {
        cspawn_result r;
        if (cspawn_spawn(&c, &r) == 0) {
            printf("spawned unexpectedly\n");
            return 1;
        }
        if (r.step != CSPAWN_STEP_CLONE || r.error != EAGAIN || r.pid != -1 || r.pidfd != -1) {
            printf("wrong failure: step %s errno %d\n", cspawn_step_name(r.step), r.error);
            return 1;
        }
    }
    int after = count_fds();
    printf("step clone errno %d fds %d %d\n", EAGAIN, before, after);
    return before == after ? 0 : 1;
}
