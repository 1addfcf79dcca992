/*  sandbox_reaper — pid 1 of the sandbox.

    Our own C code, running in the cloned child before any exec. It waits
    until the host has written the id maps and placed it in its cgroups,
    becomes the sandbox user, enters the cgroup namespace, builds the file
    system, forks the interpreter (rlimits, no_new_privs, no capabilities,
    seccomp, an environment built from nothing, then exec), and tells the
    host how far it got. When the job arrives it writes /code/main.py and
    /input/data.json, seals them read-only, drops its own capabilities and
    releases the interpreter. It reaps every orphan, and exits as soon as
    the interpreter exits: the kernel then kills everything left in the
    pid namespace. Everything here is system calls only (no allocation),
    so it is safe even when the host process is multi-threaded.

    Host protocol, all on pipes:
    - sync  (host → reaper): one byte "S" when the maps and cgroups are set;
    - report (reaper → host): tako_sandbox_report_t records;
    - job   (host → reaper): tako_sandbox_job_header_t, code, input.     */

#ifndef SANDBOX_REAPER_H_INCLUDED
#define SANDBOX_REAPER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include "sandbox_cgroup.h"
#include "sandbox_mounts.h"
#include "sandbox_rlimits.h"
#include "sandbox_seccomp.h"

#define TAKO_SANDBOX_JOB_MAGIC 0x74616b6f   //  "tako"

typedef enum {
    TAKO_LAYER_UIDMAP = 1,
    TAKO_LAYER_NAMESPACES,
    TAKO_LAYER_MOUNTS,
    TAKO_LAYER_CGROUP,
    TAKO_LAYER_RLIMITS,
    TAKO_LAYER_SECCOMP,
    TAKO_LAYER_CAPABILITIES,
    TAKO_LAYER_INTERPRETER,
    TAKO_LAYER_JOB
} tako_sandbox_layer_t;

typedef enum {
    TAKO_REPORT_SETUP_DONE = 1,     //  file system ready, interpreter forked
    TAKO_REPORT_FAILED,             //  layer, detail (op index), error (errno)
    TAKO_REPORT_JOB_RUNNING,        //  job written and sealed, interpreter released
    TAKO_REPORT_EXIT                //  detail = interpreter's wait status
} tako_sandbox_report_kind_t;

typedef struct {
    int32_t kind;
    int32_t layer;
    int32_t detail;
    int32_t error;
} tako_sandbox_report_t;

typedef struct {
    uint32_t magic;
    uint32_t code_size;
    uint64_t input_size;
} tako_sandbox_job_header_t;

typedef struct {
    //  The reaper's ends of the host pipes.
    int sync_fd, report_fd, job_fd;
    //  The interpreter's ends: stdout, stderr, ready, error; go is the pipe
    //  the reaper releases the interpreter through.
    int stdout_fd, stderr_fd, ready_fd, error_fd;
    int go_read_fd, go_write_fd;
    //  The cgroup's tasks files (sandbox_cgroup): the reaper joins its
    //  group through them before anything else, then closes them.
    int join_fds [TAKO_SANDBOX_CGROUP_JOIN_MAX];
    int join_count;
    bool network_enabled;
    bool seccomp_enabled;
    const tako_sandbox_mounts_t *mounts;
    const tako_sandbox_rlimits_t *rlimits;
    const tako_sandbox_seccomp_t *seccomp;
    char *const *argv;              //  argv [0] is the interpreter's path
    char *const *envp;
    //  NULL: exec argv. Set (tako-zygote): the interpreter is already in
    //  this process; called instead of exec, after every layer is applied
    //  and the report pipe closed. Must not return.
    void (*run_in_process) (void);
    uint64_t code_max, input_max;
} tako_sandbox_init_plan_t;

//  Name of a layer for error messages ("mounts").
const char *tako_sandbox_layer_name (int layer);

//  The reaper's main; never returns (the child _exits).
void tako_sandbox_reaper_main (const tako_sandbox_init_plan_t *plan)
    __attribute__ ((noreturn));

#endif
