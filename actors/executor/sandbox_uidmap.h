/*  sandbox_uidmap — who the job is, inside and outside.

    Inside the sandbox the job runs as uid/gid 1000 ("sandbox"). Outside,
    that id is TAKO_SANDBOX_HOST_ID_BASE + slot: an unprivileged host id
    that belongs to no user and differs per slot, so RLIMIT_NPROC and
    "which processes are left" are per sandbox. Nothing else is mapped, in
    particular not root: the sandbox's setup code holds capabilities only
    inside its own user namespace, and the job holds none at all.          */

#ifndef SANDBOX_UIDMAP_H_INCLUDED
#define SANDBOX_UIDMAP_H_INCLUDED

#include <sys/types.h>

#define TAKO_SANDBOX_INNER_ID      1000
#define TAKO_SANDBOX_HOST_ID_BASE  200000
#define TAKO_SANDBOX_SLOT_MAX      65535

//  The host uid (and gid) of a slot's sandbox user.
uid_t tako_sandbox_uidmap_host_id (int slot);

//  Host side: write uid_map and gid_map of the child pid. Returns 0 or -1.
int tako_sandbox_uidmap_write (pid_t pid, int slot);

//  Sandbox side, after the maps are written: drop supplementary groups and
//  become the sandbox user. Because the namespace's root is not mapped, the
//  capabilities inside the namespace survive this (they are dropped later
//  by sandbox_caps). Returns 0 or -1 with errno.
int tako_sandbox_uidmap_become_user (void);

#endif
