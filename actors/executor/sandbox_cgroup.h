/*  sandbox_cgroup — memory, pids and CPU limits and accounting.

    One cgroup per sandbox, created below the cgroup our own process is in
    (read from /proc/self/cgroup), in every hierarchy we use:

    - pure cgroup v2 (/sys/fs/cgroup is cgroup2): memory.max,
      memory.swap.max 0, pids.max, cpu.max; memory.peak, memory.events
      (oom_kill), cpu.stat; cgroup.kill.
    - cgroup v1 (memory, pids, cpu controllers): memory.limit_in_bytes and
      memory.memsw.limit_in_bytes (no swap), pids.max, cpu.cfs_quota_us;
      memory.max_usage_in_bytes, memory.oom_control (oom_kill); and when
      a controller-less cgroup2 is mounted at /sys/fs/cgroup/unified, a
      group there for cgroup.kill and cpu.stat (else cpuacct.usage and a
      SIGKILL loop over cgroup.procs).

    A limit that was asked for but has no controller is an error (fail
    closed). Destroying the object kills what is left and removes the
    directories.                                                           */

#ifndef SANDBOX_CGROUP_H_INCLUDED
#define SANDBOX_CGROUP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TAKO_SANDBOX_CGROUP_ROOT       "/sys/fs/cgroup"
//  Every sandbox group is named PREFIX<creator pid>-<slot>-<time>, so one
//  left by a killed creator can be recognised and removed.
#define TAKO_SANDBOX_CGROUP_PREFIX     "tako-sandbox-"
#define TAKO_SANDBOX_CPU_PERIOD_US     100000
//  Removing a cgroup right after its last process died can briefly fail.
#define TAKO_SANDBOX_CGROUP_RMDIR_TRIES 200
#define TAKO_SANDBOX_CGROUP_RETRY_US   5000

typedef struct {
    int64_t memory_bytes;       //  0 = no memory limit
    double cpu_cores;           //  0 = no CPU quota
    int pids_max;               //  0 = no pids limit
} tako_sandbox_cgroup_limits_t;

typedef struct {
    bool have_peak;
    int64_t peak_bytes;         //  peak memory of the group
    bool have_cpu;
    int64_t cpu_usec;           //  CPU time of the group
    bool oom_killed;            //  the kernel killed something for memory
} tako_sandbox_cgroup_usage_t;

typedef struct tako_sandbox_cgroup_t tako_sandbox_cgroup_t;

//  Create the group "name" in every hierarchy and apply limits. Returns
//  NULL with *error a short static reason when it cannot be done.
tako_sandbox_cgroup_t *tako_sandbox_cgroup_new (const char *name,
                                                const tako_sandbox_cgroup_limits_t *limits,
                                                const char **error);

//  Kill what is left, remove the directories, free; safe twice.
void tako_sandbox_cgroup_destroy (tako_sandbox_cgroup_t **self_p);

//  Move pid into the group. Returns 0 or -1.
int tako_sandbox_cgroup_attach (tako_sandbox_cgroup_t *self, pid_t pid);

//  A sandbox's first process joins the group itself. Moving another
//  process takes a global lock whose every write waits an RCU grace period
//  (~3-5 ms a hierarchy here: ~10-14 ms for four); a task that moves
//  itself alone (writes "0" to a v1 hierarchy's tasks file) takes none.
//  The permission is checked against whoever opened the file, so the
//  host opens them (write, close-on-exec) and the new process, unprivileged
//  in its user namespace, writes through the fds it inherited.
#define TAKO_SANDBOX_CGROUP_JOIN_MAX 6

//  Open the tasks files of the hierarchies a join covers (v1) into fds
//  (at most TAKO_SANDBOX_CGROUP_JOIN_MAX). Returns how many, or -1.
int tako_sandbox_cgroup_join_open (tako_sandbox_cgroup_t *self, int *fds);

//  Move pid into the hierarchies a join does not cover (v2 groups, the
//  unified helper group). Returns 0 or -1.
int tako_sandbox_cgroup_attach_unjoined (tako_sandbox_cgroup_t *self, pid_t pid);

//  In the joining process (async-signal-safe): move the calling task into
//  each group and close the fds. Returns 0, or -1 with errno.
int tako_sandbox_cgroup_join (const int *fds, int count);

//  SIGKILL every process of the group. Returns 0 or -1.
int tako_sandbox_cgroup_kill (tako_sandbox_cgroup_t *self);

//  Read peak memory, CPU time and whether the OOM killer struck.
void tako_sandbox_cgroup_usage (tako_sandbox_cgroup_t *self, tako_sandbox_cgroup_usage_t *usage);

//  "v2" or "v1" (v1 with or without the unified helper group).
const char *tako_sandbox_cgroup_version (tako_sandbox_cgroup_t *self);

//  The directories of the group (for tests and diagnostics).
size_t tako_sandbox_cgroup_dir_count (tako_sandbox_cgroup_t *self);
const char *tako_sandbox_cgroup_dir (tako_sandbox_cgroup_t *self, size_t index);

#endif
