/*  sandbox_rlimits — planned on the host, applied in the sandbox.  */

#include <errno.h>
#include "sandbox_rlimits.h"

static void
plan_add (tako_sandbox_rlimits_t *plan, int resource, int64_t soft, int64_t hard)
{
    if (plan->count >= TAKO_SANDBOX_RLIMIT_MAX)
        return;
    if (soft > hard)
        soft = hard;
    tako_sandbox_rlimit_t *item = &plan->items [plan->count++];
    item->resource = resource;
    item->limit.rlim_cur = (rlim_t) soft;
    item->limit.rlim_max = (rlim_t) hard;
}

void
tako_sandbox_rlimits_plan (tako_sandbox_rlimits_t *plan, const tako_sandbox_rlimits_spec_t *spec)
{
    plan->count = 0;
    plan_add (plan, RLIMIT_NOFILE, spec->nofile_soft, spec->nofile_hard);
    plan_add (plan, RLIMIT_NPROC, spec->nproc_soft, spec->nproc_hard);
    plan_add (plan, RLIMIT_FSIZE, spec->fsize_bytes, spec->fsize_bytes);
    plan_add (plan, RLIMIT_CORE, 0, 0);
    plan_add (plan, RLIMIT_STACK, TAKO_SANDBOX_STACK_BYTES, TAKO_SANDBOX_STACK_BYTES);
    plan_add (plan, RLIMIT_CPU, spec->cpu_seconds, spec->cpu_seconds);
}

int
tako_sandbox_rlimits_apply (const tako_sandbox_rlimits_t *plan, int *failed)
{
    for (int i = 0; i < plan->count; i++) {
        struct rlimit wanted = plan->items [i].limit;
        struct rlimit current;
        if (getrlimit (plan->items [i].resource, &current) == 0) {
            if (wanted.rlim_max > current.rlim_max)
                wanted.rlim_max = current.rlim_max;
            if (wanted.rlim_cur > wanted.rlim_max)
                wanted.rlim_cur = wanted.rlim_max;
        }
        if (setrlimit (plan->items [i].resource, &wanted) != 0) {
            *failed = plan->items [i].resource;
            return -1;
        }
    }
    return 0;
}
