/*  sandbox_seccomp — the system-call filter of the job.

    A deny list on top of namespaces and dropped capabilities: it removes
    kernel surface that is not namespaced (keyrings, io_uring, bpf, perf,
    module loading...) or that would let the job build a sandbox of its
    own (new namespaces, mounts). Denied calls fail with EPERM so Python
    raises a clean PermissionError; clone3 fails with ENOSYS so glibc falls
    back to clone, whose flags the filter can inspect. Any other ABI (i386,
    x32) kills the process.

    The filter is compiled to BPF in the host process with libseccomp and
    kept as plain memory; loading it in the sandbox is one prctl, safe
    between clone and exec even when the host is multi-threaded.           */

#ifndef SANDBOX_SECCOMP_H_INCLUDED
#define SANDBOX_SECCOMP_H_INCLUDED

#include <linux/filter.h>

typedef struct {
    struct sock_filter *filter;     //  owned; NULL when not built
    unsigned short length;          //  instructions
} tako_sandbox_seccomp_t;

//  Compile the filter. Returns 0, or -1 with *error set to a static
//  reason (the filter is then empty).
int tako_sandbox_seccomp_build (tako_sandbox_seccomp_t *self, const char **error);

//  Free the compiled program; safe twice.
void tako_sandbox_seccomp_release (tako_sandbox_seccomp_t *self);

//  Install the program in this process (needs no_new_privs). Returns 0
//  or -1 with errno.
int tako_sandbox_seccomp_apply (const tako_sandbox_seccomp_t *self);

#endif
