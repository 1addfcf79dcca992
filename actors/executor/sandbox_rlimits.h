/*  sandbox_rlimits — resource limits of the job's processes.

    Planned in the host process (plain data, no allocation), applied in the
    sandbox right before the interpreter starts, so it is async-signal-safe.
    RLIMIT_NPROC counts processes per host uid, which is why every slot has
    its own host uid (sandbox_uidmap). A limit above the host's hard limit
    is lowered to it rather than failing: we can only ever tighten.        */

#ifndef SANDBOX_RLIMITS_H_INCLUDED
#define SANDBOX_RLIMITS_H_INCLUDED

#include <stdint.h>
#include <sys/resource.h>

#define TAKO_SANDBOX_RLIMIT_MAX     8
//  Python's default thread stack assumptions hold with 8 MiB.
#define TAKO_SANDBOX_STACK_BYTES    (8 * 1024 * 1024)
//  CPU seconds beyond the wall-clock budget before RLIMIT_CPU backs it up.
#define TAKO_SANDBOX_CPU_SLACK_S    5

typedef struct {
    int resource;
    struct rlimit limit;
} tako_sandbox_rlimit_t;

typedef struct {
    tako_sandbox_rlimit_t items [TAKO_SANDBOX_RLIMIT_MAX];
    int count;
} tako_sandbox_rlimits_t;

typedef struct {
    int64_t nofile_soft, nofile_hard;
    int64_t nproc_soft, nproc_hard;
    int64_t fsize_bytes;
    int64_t cpu_seconds;            //  hard CPU-time backstop, >= the timeouts
} tako_sandbox_rlimits_spec_t;

//  Fill plan from spec (nofile, nproc, fsize, core 0, stack, cpu).
void tako_sandbox_rlimits_plan (tako_sandbox_rlimits_t *plan,
                                const tako_sandbox_rlimits_spec_t *spec);

//  Apply every limit of plan to this process. Returns 0, or -1 with errno
//  set and *failed the resource that could not be set.
int tako_sandbox_rlimits_apply (const tako_sandbox_rlimits_t *plan, int *failed);

#endif
