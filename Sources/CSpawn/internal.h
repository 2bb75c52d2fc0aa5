// internal.h — shared between spawn.c (parent side) and child.c (child side).
#ifndef CSPAWN_INTERNAL_H
#define CSPAWN_INTERNAL_H

#include "cspawn.h"

/// Upper bound on descriptor mappings; the child keeps a fixed array of this size
/// on its stack because it must not allocate.
#define CSPAWN_MAX_FDS 256

/// What the child reports when a step fails: written by the child into the
/// parent's memory (CLONE_VM) just before it exits; read by the parent once
/// clone() has returned, which with CLONE_VFORK is after the child exec'd or
/// exited. Zero (CSPAWN_STEP_NONE) when the child reached its exec.
typedef struct {
    int32_t step;
    int32_t error;
} _cspawn_report;

/// The child's whole input: the caller's config, and where to report a failure.
typedef struct {
    const cspawn_config *config;
    _cspawn_report *report;
    char *const *envp;  // the config's, or this process's environ (read just before clone)
} _cspawn_child_context;

/// The child's entry point (child.c). Never returns: it execs or _exits.
int _cspawn_child(void *context);

#endif
