/*  sandbox_namespaces — the namespaces every sandbox gets.

    user, pid, mount, ipc, uts (hostname "sandbox"), cgroup, and net with
    only loopback, brought up. A job type with network_enabled shares the
    host's network namespace instead (no virtual interface, no NAT: the job
    sees the host's interfaces; that is what "network enabled" means here
    for now).

    The cgroup namespace is entered from inside, after the host has moved
    the sandbox into its cgroups, so the job sees its own cgroup as root.  */

#ifndef SANDBOX_NAMESPACES_H_INCLUDED
#define SANDBOX_NAMESPACES_H_INCLUDED

#include <stdbool.h>
#include <sys/types.h>

#define TAKO_SANDBOX_HOSTNAME "sandbox"

//  Clone flags for a sandbox (without the cgroup namespace, see above).
int tako_sandbox_namespaces_flags (bool network_enabled);

//  fork() into new namespaces: returns the child's pid in the parent and 0
//  in the child (which is pid 1 of its pid namespace), -1 on error.
pid_t tako_sandbox_namespaces_clone (int flags);

//  Inside: enter a new cgroup namespace, set the hostname, and bring up
//  loopback when the network namespace is ours. Returns 0, or -1 with
//  errno and *step naming what failed.
int tako_sandbox_namespaces_enter (bool network_enabled, const char **step);

//  Host: can we create a namespace of this kind (a CLONE_NEW* flag)?
//  Forks a short-lived child that tries. Returns 0 if yes, else errno.
int tako_sandbox_namespaces_probe (int flag);

#endif
