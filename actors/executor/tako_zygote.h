/*  tako_zygote — an interpreter started once per job type, forked per sandbox.

    Starting Python costs ~25 ms of CPU; on a small host that, not the
    sandbox, bounds how many jobs run per second. A zygote is a process of
    its own (the tako-zygote program, next to tako-vm) that starts the
    interpreter once — with the job type's environment variables, flags
    and `preload` modules — and then, for each sandbox, clones its first
    process (the reaper, sandbox_reaper) into fresh namespaces. The reaper
    sets the sandbox up exactly as one cloned by the executor would, forks,
    applies the per-process layers, and the child continues the already
    started interpreter (fork-safe: the zygote has one thread) instead of
    exec'ing a new one. The executor does the rest as for any sandbox it
    prepares (uid map, cgroup, pipes): a zygote clone is made with
    CLONE_PARENT, so the reaper is the executor's child, not the zygote's.

    Nothing passes from one job to another: the zygote never runs job code
    and nothing ever reaches it from a sandbox (its socket is closed in the
    clone before any layer is set up); every job is a fresh fork of the
    same untouched interpreter. Python reseeds `random` in a forked child,
    sys.path's caches are cleared, the environment is the job type's.
    What jobs of one type do share is what any two forks of one process
    share: the address-space layout and the hash seed (PYTHONHASHSEED) of
    the zygote's interpreter. The zygote runs as an unprivileged host id
    (TAKO_ZYGOTE_HOST_ID), with no capabilities, so the preload imports it
    runs are never root on the host.

    Used only where its interpreter is the sandbox's: the default python,
    no rootfs, the native runtime (tako_zygote_usable).

        tako_zygote_t *zygote = tako_zygote_new (&spec, &error);
        spec.zygote = zygote;           //  then tako_sandbox_new/prepare
        ...
        tako_zygote_destroy (&zygote);  //  sandboxes it cloned live on

    Wire, on a SOCK_SEQPACKET pair (the zygote's end is its fd 3):
        executor → zygote   the spec as JSON (tako_zygote_spec_encode)
        zygote → executor   "OK", or "ERR reason"
        executor → zygote   "SPAWN" + the TAKO_SANDBOX_ZYGOTE_FDS pipe ends,
                            then the sandbox cgroup's tasks files (up to
                            TAKO_SANDBOX_CGROUP_JOIN_MAX), as SCM_RIGHTS
        zygote → executor   int32 pid, or -errno                          */

#ifndef TAKO_ZYGOTE_H_INCLUDED
#define TAKO_ZYGOTE_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "tako_sandbox.h"

//  The zygote's host uid and gid: below every sandbox slot's.
#define TAKO_ZYGOTE_HOST_ID     199999
//  How long a zygote may take to start (Python + preload), and to answer.
#define TAKO_ZYGOTE_START_MS    30000
#define TAKO_ZYGOTE_ANSWER_MS   5000
//  The largest spec message.
#define TAKO_ZYGOTE_SPEC_MAX    (1024 * 1024)
//  The program's file name, looked for next to the running binary.
#define TAKO_ZYGOTE_PROGRAM     "tako-zygote"

typedef struct _tako_zygote_t tako_zygote_t;

//  True when sandboxes of spec can come from a zygote.
bool tako_zygote_usable (const tako_sandbox_spec_t *spec);

//  The program: $TAKO_ZYGOTE_PATH, else tako-zygote next to this
//  executable. NULL when there is none (caller frees otherwise).
char *tako_zygote_program (void);

//  Start a zygote for sandboxes of spec and wait until its interpreter
//  is ready. NULL with *error (caller frees) when it cannot.
tako_zygote_t *tako_zygote_new (const tako_sandbox_spec_t *spec, char **error);

//  Drop this reference; the last one stops the zygote (sandboxes it
//  cloned are not affected). NULL *self_p.
void tako_zygote_destroy (tako_zygote_t **self_p);

//  Another reference to the same zygote (for a job thread), thread-safe.
tako_zygote_t *tako_zygote_share (tako_zygote_t *self);

//  Clone a sandbox's first process with these pipe ends (see
//  tako_sandbox_zygote_clone). Thread-safe. The pid, or -1 with errno;
//  after a failure of the zygote itself, tako_zygote_alive is false.
pid_t tako_zygote_spawn (tako_zygote_t *self, const int *fds, size_t fd_count);

//  False once the zygote died (its socket hung up) or stopped answering.
bool tako_zygote_alive (tako_zygote_t *self);

//  True when the zygote was made from a spec encoding like this one.
bool tako_zygote_matches (tako_zygote_t *self, const tako_sandbox_spec_t *spec);

//  The zygote's resident memory, bytes (0 when unknown).
int64_t tako_zygote_memory (tako_zygote_t *self);

//  The zygote's pid.
pid_t tako_zygote_pid (tako_zygote_t *self);

//  The part of a spec a zygote needs, as JSON, and back. decode fills
//  spec with pointers into *storage (free it with tako_zygote_spec_free).
json_t *tako_zygote_spec_encode (const tako_sandbox_spec_t *spec);
int tako_zygote_spec_decode (json_t *json, tako_sandbox_spec_t *spec, void **storage);
void tako_zygote_spec_free (void **storage);

void tako_zygote_test (bool verbose);

#endif
