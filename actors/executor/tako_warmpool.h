/*  tako_warmpool — sandboxes prepared ahead of their jobs, per job type.

    For each job type with `warm_pool: N` (and `warm_pools_enabled`), the
    pool keeps up to N sandboxes fully built — namespaces, mounts, cgroup,
    rlimits, seccomp, and an interpreter started that has imported the job
    type's `preload` modules — waiting for a job. A job takes one, runs in
    it, and the sandbox is destroyed afterwards like any other: a sandbox
    is never reused, so nothing passes from one job to the next.

    Each job type's sandboxes are cloned by its zygote (tako_zygote.h)
    when it can have one: their interpreters are forks of one started
    once. The warmer starts the zygotes (and replaces a dead one); a type
    whose zygote cannot start prepares sandboxes that exec python.

    Preparing blocks for the interpreter's start-up, so it happens in a
    thread of the pool's own (the warmer), one sandbox at a time; the
    owner polls tako_warmpool_socket and calls tako_warmpool_handle when
    it is readable, and tako_warmpool_tick now and then (refill, shrink).
    A pool refills TAKO_WARMPOOL_REFILL_DELAY_MS after a sandbox is taken
    (at once when none is left ready): preparing one is an interpreter
    start-up and a clone of this process, which would otherwise compete
    for the CPU with the job that just started and with the work of
    recording its result. Pools shrink to one sandbox
    after TAKO_WARMPOOL_IDLE_MS without a job; a job type whose sandbox
    cannot be prepared is retried after TAKO_WARMPOOL_RETRY_MS (its jobs
    start cold meanwhile).

    Each prepared sandbox has a uid slot of its own, from slot_base up to
    slot_base + slot_count - 1; a taken sandbox keeps its slot until the
    caller gives it back with tako_warmpool_release.

        tako_warmpool_t *pool = tako_warmpool_new (config, 100, 16);
        ... poll tako_warmpool_socket (pool) → tako_warmpool_handle (pool)
        int slot;
        tako_sandbox_t *sandbox = tako_warmpool_take (pool, "default", &slot);
        if (sandbox && tako_sandbox_assign (sandbox, timeout_ms, cancel_fd) == 0)
            result = tako_sandbox_run (sandbox, code, size, input);
        tako_sandbox_destroy (&sandbox);
        tako_warmpool_release (pool, slot);
        tako_warmpool_destroy (&pool);                                    */

#ifndef TAKO_WARMPOOL_H_INCLUDED
#define TAKO_WARMPOOL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "tako_config.h"
#include "tako_sandbox.h"
#include "tako_zygote.h"

//  A pool unused this long shrinks to one sandbox.
#define TAKO_WARMPOOL_IDLE_MS       60000
//  How long after a take a pool that still has sandboxes ready waits to
//  refill (the owner should tick again by then).
#define TAKO_WARMPOOL_REFILL_DELAY_MS   100
//  A job type whose sandbox could not be prepared waits this long.
#define TAKO_WARMPOOL_RETRY_MS      30000

typedef struct _tako_warmpool_t tako_warmpool_t;

//  A pool for every job type of config with warm_pool > 0 (none when
//  warm_pools_enabled is false); starts filling at once. NULL on failure.
tako_warmpool_t *tako_warmpool_new (tako_config_t *config, int slot_base, int slot_count);

//  Destroy every waiting sandbox, stop the warmer; NULL *self_p.
void tako_warmpool_destroy (tako_warmpool_t **self_p);

//  Readable when the warmer has finished a sandbox.
zsock_t *tako_warmpool_socket (tako_warmpool_t *self);

//  Take what the warmer finished into its pool.
void tako_warmpool_handle (tako_warmpool_t *self);

//  Refill and shrink; call at least every second.
void tako_warmpool_tick (tako_warmpool_t *self);

//  A ready sandbox for job_type (the caller owns it) and its uid slot, or
//  NULL when none is waiting.
tako_sandbox_t *tako_warmpool_take (tako_warmpool_t *self, const char *job_type, int *slot);

//  Make spec (built for job_type from config) a warm sandbox's: the
//  longest timeout (the job's own is set at hand-over; the CPU-time limit
//  set at prepare must allow it), the type's start-up timeout and its
//  preload. A zygote is made from such a spec, so a sandbox it clones for
//  a job must be asked for with one too.
void tako_warmpool_spec_warm (tako_config_t *config, const tako_config_job_type_t *job_type,
                              tako_sandbox_spec_t *spec);

//  A reference to job_type's zygote (tako_zygote.h; the caller destroys
//  it), or NULL when it has none: a job that finds no sandbox ready can
//  still have its interpreter forked rather than started.
tako_zygote_t *tako_warmpool_zygote (tako_warmpool_t *self, const char *job_type);

//  The sandbox taken with this slot is destroyed: the slot is free.
void tako_warmpool_release (tako_warmpool_t *self, int slot);

//  Sandboxes waiting, over every job type; and taken so far.
size_t tako_warmpool_ready (tako_warmpool_t *self);
uint64_t tako_warmpool_hits (tako_warmpool_t *self);

//  Memory of the waiting sandboxes (the peak of each one's cgroup), bytes.
int64_t tako_warmpool_memory (tako_warmpool_t *self);

void tako_warmpool_test (bool verbose);

#endif
