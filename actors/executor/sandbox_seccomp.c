/*  sandbox_seccomp — deny list compiled with libseccomp.  */

#include <errno.h>
#include <pthread.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sandbox_seccomp.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
//  The BPF program of a deny list this size is a few hundred instructions.
#define SECCOMP_PROGRAM_MAX_BYTES (256 * 1024)

//  Calls that fail with EPERM whatever their arguments.
static const char *denied_calls [] = {
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    "setns", "mount", "umount", "umount2", "pivot_root", "chroot",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
    "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module",
    "acct", "swapon", "swapoff", "reboot", "syslog", "quotactl", "quotactl_fd",
    "name_to_handle_at", "open_by_handle_at", "lookup_dcookie",
    "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "iopl", "ioperm", "uselib", "nfsservctl",
    "move_pages", "migrate_pages",
};

static const unsigned long namespace_flags [] = {
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME,
};

static const int denied_socket_families [] = { AF_VSOCK, AF_PACKET, AF_KEY };

static int
deny_always (scmp_filter_ctx ctx)
{
    for (size_t i = 0; i < sizeof (denied_calls) / sizeof (denied_calls [0]); i++) {
        int number = seccomp_syscall_resolve_name (denied_calls [i]);
        if (number == __NR_SCMP_ERROR)
            continue;           //  unknown to this libseccomp: not on this arch
        if (seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), number, 0) != 0)
            return -1;
    }
    return 0;
}

static int
deny_namespace_flags (scmp_filter_ctx ctx)
{
    for (size_t i = 0; i < sizeof (namespace_flags) / sizeof (namespace_flags [0]); i++) {
        scmp_datum_t flag = namespace_flags [i];
        if (seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (unshare), 1,
                              SCMP_A0 (SCMP_CMP_MASKED_EQ, flag, flag)) != 0)
            return -1;
        if (flag == CLONE_NEWTIME)
            continue;           //  for clone() that bit is part of the exit signal
        if (seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (clone), 1,
                              SCMP_A0 (SCMP_CMP_MASKED_EQ, flag, flag)) != 0)
            return -1;
    }
    return seccomp_rule_add (ctx, SCMP_ACT_ERRNO (ENOSYS), SCMP_SYS (clone3), 0);
}

static int
deny_arguments (scmp_filter_ctx ctx)
{
    for (size_t i = 0; i < sizeof (denied_socket_families) / sizeof (denied_socket_families [0]); i++)
        if (seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (socket), 1,
                              SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) denied_socket_families [i])) != 0)
            return -1;
    //  Netlink only for routing (what getaddrinfo and ip use), nothing else.
    if (seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (socket), 2,
                          SCMP_A0 (SCMP_CMP_EQ, AF_NETLINK),
                          SCMP_A2 (SCMP_CMP_NE, 0)) != 0)
        return -1;
    //  Faking terminal input to another process.
    if (seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (ioctl), 1,
                          SCMP_A1 (SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCSTI)) != 0
     || seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (ioctl), 1,
                          SCMP_A1 (SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCLINUX)) != 0)
        return -1;
    //  personality: only PER_LINUX. libseccomp cannot test one argument
    //  twice in a rule, so queries (0xffffffff) fail too; neither Python
    //  nor glibc makes them.
    if (seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (personality), 1,
                          SCMP_A0 (SCMP_CMP_NE, 0)) != 0)
        return -1;
    return 0;
}

//  Export the compiled program through a memfd into our own buffer.
static int
program_export (scmp_filter_ctx ctx, tako_sandbox_seccomp_t *self)
{
    int fd = memfd_create ("tako-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = -1;
    struct stat status;
    if (seccomp_export_bpf (ctx, fd) == 0 && fstat (fd, &status) == 0
    &&  status.st_size > 0 && status.st_size <= SECCOMP_PROGRAM_MAX_BYTES
    &&  status.st_size % sizeof (struct sock_filter) == 0) {
        self->filter = malloc ((size_t) status.st_size);
        if (self->filter && pread (fd, self->filter, (size_t) status.st_size, 0) == status.st_size) {
            self->length = (unsigned short) (status.st_size / sizeof (struct sock_filter));
            rc = 0;
        }
    }
    close (fd);
    if (rc != 0)
        tako_sandbox_seccomp_release (self);
    return rc;
}

static int
program_compile (tako_sandbox_seccomp_t *self, const char **error)
{
    memset (self, 0, sizeof (*self));
    scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
    if (!ctx) {
        *error = "cannot create the filter";
        return -1;
    }
    int rc = -1;
    //  Only the native ABI: a call through int 0x80 (i386) or with the x32
    //  bit set is a different architecture to the filter and is killed.
    if (seccomp_attr_set (ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0)
        *error = "cannot set the bad-architecture action";
    else
    if (deny_always (ctx) != 0 || deny_namespace_flags (ctx) != 0 || deny_arguments (ctx) != 0)
        *error = "cannot add a rule";
    else
    if (program_export (ctx, self) != 0)
        *error = "cannot compile the filter";
    else
        rc = 0;
    seccomp_release (ctx);
    return rc;
}

//  The program does not depend on the job: compiled once per process
//  (libseccomp's compile and export cost about a millisecond a sandbox),
//  then copied.
static pthread_once_t compiled_once = PTHREAD_ONCE_INIT;
static tako_sandbox_seccomp_t compiled;
static const char *compiled_error;

static void
compile_once (void)
{
    if (program_compile (&compiled, &compiled_error) != 0)
        compiled.filter = NULL;
}

int
tako_sandbox_seccomp_build (tako_sandbox_seccomp_t *self, const char **error)
{
    memset (self, 0, sizeof (*self));
    pthread_once (&compiled_once, compile_once);
    if (!compiled.filter) {
        *error = compiled_error? compiled_error: "cannot compile the filter";
        return -1;
    }
    size_t size = (size_t) compiled.length * sizeof (struct sock_filter);
    self->filter = malloc (size);
    if (!self->filter) {
        *error = "out of memory";
        return -1;
    }
    memcpy (self->filter, compiled.filter, size);
    self->length = compiled.length;
    return 0;
}

void
tako_sandbox_seccomp_release (tako_sandbox_seccomp_t *self)
{
    free (self->filter);
    self->filter = NULL;
    self->length = 0;
}

int
tako_sandbox_seccomp_apply (const tako_sandbox_seccomp_t *self)
{
    if (!self->filter) {
        errno = EINVAL;
        return -1;
    }
    struct sock_fprog program = { self->length, self->filter };
    return prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0);
}
