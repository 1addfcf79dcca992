/*  sandbox_mounts — plan on the host, execute inside, pivot.  */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sandbox_mounts.h"
#include "sandbox_uidmap.h"

//  Longest tmpfs option string we build ("mode=1777,size=...").
#define TMPFS_OPTIONS_MAX 64

//  What the host (or rootfs) provides for the interpreter: binds of the
//  directories, or copies of the symlinks of a merged-/usr system.
static const char *system_dirs [] = { "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
static const char *devices [] = { "null", "zero", "full", "random", "urandom" };
static const char *proc_read_only [] = { "sys", "sysrq-trigger", "irq", "bus", "fs" };
static const char *proc_hidden_files [] = {
    "kcore", "keys", "key-users", "timer_list", "sched_debug", "latency_stats", "kallsyms",
    "kmsg", "kpagecount", "kpageflags", "kpagecgroup", "config.gz"
};
static const char *proc_hidden_dirs [] = { "acpi", "scsi", "asound", "driver" };

#define COUNT(array) (sizeof (array) / sizeof (array [0]))

static const char etc_passwd [] =
    "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
    "sandbox:x:1000:1000:sandbox:/tmp:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char etc_group [] =
    "root:x:0:\n"
    "sandbox:x:1000:\n"
    "nogroup:x:65534:\n";
static const char etc_hosts [] =
    "127.0.0.1\tlocalhost\n"
    "127.0.1.1\tsandbox\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n";
static const char etc_nsswitch [] =
    "passwd: files\n"
    "group: files\n"
    "hosts: files dns\n";

static char *
path_join (const char *left, const char *right)
{
    size_t size = strlen (left) + strlen (right) + 2;
    char *path = malloc (size);
    if (path)
        snprintf (path, size, "%s%s%s", left, right [0] == '/'? "": "/", right);
    return path;
}

//  Add an op; target is relative to the sandbox's root ("etc/passwd").
static int
op_add (tako_sandbox_mounts_t *plan, tako_mount_kind_t kind, const char *source,
        const char *target, const char *data, unsigned long flags, mode_t mode)
{
    if (plan->count >= TAKO_SANDBOX_MOUNT_OPS_MAX)
        return -1;
    tako_mount_op_t *op = &plan->ops [plan->count];
    memset (op, 0, sizeof (*op));
    op->kind = kind;
    op->flags = flags;
    op->mode = mode;
    op->target = path_join (TAKO_SANDBOX_STAGING, target);
    op->source = source? strdup (source): NULL;
    op->data = data? strdup (data): NULL;
    plan->count++;
    if (!op->target || (source && !op->source) || (data && !op->data))
        return -1;
    return 0;
}

static int
op_tmpfs (tako_sandbox_mounts_t *plan, const char *target, const char *mode,
          int64_t size, unsigned long flags)
{
    char options [TMPFS_OPTIONS_MAX];
    snprintf (options, sizeof (options), "mode=%s,size=%lld", mode, (long long) size);
    if (op_add (plan, TAKO_MOUNT_DIR, NULL, target, NULL, 0, 0755) != 0)
        return -1;
    return op_add (plan, TAKO_MOUNT_TMPFS, NULL, target, options, flags, 0);
}

//  A read-only bind of a host directory or file onto a fresh mount point.
static int
op_bind_read_only (tako_sandbox_mounts_t *plan, const char *source, const char *target)
{
    struct stat status;
    if (stat (source, &status) != 0)
        return -1;
    tako_mount_kind_t point = S_ISDIR (status.st_mode)? TAKO_MOUNT_DIR: TAKO_MOUNT_FILE;
    if (op_add (plan, point, NULL, target, point == TAKO_MOUNT_FILE? "": NULL, 0, 0755) != 0)
        return -1;
    return op_add (plan, TAKO_MOUNT_BIND, source, target, NULL,
                   MS_RDONLY | MS_NOSUID | MS_NODEV, 0);
}

static int
plan_system_dirs (tako_sandbox_mounts_t *plan, const char *root)
{
    for (size_t i = 0; i < COUNT (system_dirs); i++) {
        char *source = path_join (root, system_dirs [i]);
        if (!source)
            return -1;
        struct stat status;
        char link [PATH_MAX];
        int rc = 0;
        if (lstat (source, &status) != 0)
            ;                   //  not on this system: nothing to show
        else
        if (S_ISLNK (status.st_mode)) {
            ssize_t size = readlink (source, link, sizeof (link) - 1);
            if (size <= 0)
                rc = -1;
            else {
                link [size] = '\0';
                rc = op_add (plan, TAKO_MOUNT_SYMLINK, NULL, system_dirs [i], link, 0, 0);
            }
        }
        else
        if (S_ISDIR (status.st_mode))
            rc = op_bind_read_only (plan, source, system_dirs [i]);
        free (source);
        if (rc != 0)
            return -1;
    }
    return 0;
}

//  /etc: generated files, plus what the interpreter and TLS read.
static int
plan_etc (tako_sandbox_mounts_t *plan, const char *root, bool network_enabled)
{
    if (op_add (plan, TAKO_MOUNT_DIR, NULL, "etc", NULL, 0, 0755) != 0
    ||  op_add (plan, TAKO_MOUNT_FILE, NULL, "etc/passwd", etc_passwd, 0, 0644) != 0
    ||  op_add (plan, TAKO_MOUNT_FILE, NULL, "etc/group", etc_group, 0, 0644) != 0
    ||  op_add (plan, TAKO_MOUNT_FILE, NULL, "etc/hosts", etc_hosts, 0, 0644) != 0
    ||  op_add (plan, TAKO_MOUNT_FILE, NULL, "etc/hostname", "sandbox\n", 0, 0644) != 0
    ||  op_add (plan, TAKO_MOUNT_FILE, NULL, "etc/nsswitch.conf", etc_nsswitch, 0, 0644) != 0)
        return -1;
    if (network_enabled && access ("/etc/resolv.conf", R_OK) == 0) {
        if (op_bind_read_only (plan, "/etc/resolv.conf", "etc/resolv.conf") != 0)
            return -1;
    }
    else
    if (op_add (plan, TAKO_MOUNT_FILE, NULL, "etc/resolv.conf", "", 0, 0644) != 0)
        return -1;

    char *etc = path_join (root, "etc");
    if (!etc)
        return -1;
    int rc = 0;
    const char *shared [] = { "ld.so.cache", "ssl", "ca-certificates" };
    for (size_t i = 0; rc == 0 && i < COUNT (shared); i++) {
        char *source = path_join (etc, shared [i]);
        char *target = path_join ("etc", shared [i]);
        if (!source || !target)
            rc = -1;
        else
        if (access (source, R_OK) == 0)
            rc = op_bind_read_only (plan, source, target);
        free (source);
        free (target);
    }
    //  Debian's interpreter reads /etc/python3.X/sitecustomize.py.
    DIR *listing = rc == 0? opendir (etc): NULL;
    struct dirent *entry;
    while (listing && rc == 0 && (entry = readdir (listing))) {
        if (strncmp (entry->d_name, "python3", 7) != 0)
            continue;
        char *source = path_join (etc, entry->d_name);
        char *target = path_join ("etc", entry->d_name);
        struct stat status;
        if (!source || !target)
            rc = -1;
        else
        if (lstat (source, &status) == 0 && S_ISDIR (status.st_mode))
            rc = op_bind_read_only (plan, source, target);
        free (source);
        free (target);
    }
    if (listing)
        closedir (listing);
    char *localtime = path_join (etc, "localtime");
    char link [PATH_MAX];
    ssize_t size = localtime? readlink (localtime, link, sizeof (link) - 1): -1;
    if (rc == 0 && size > 0) {
        link [size] = '\0';
        rc = op_add (plan, TAKO_MOUNT_SYMLINK, NULL, "etc/localtime", link, 0, 0);
    }
    free (localtime);
    free (etc);
    return rc;
}

static int
plan_proc (tako_sandbox_mounts_t *plan)
{
    if (op_add (plan, TAKO_MOUNT_DIR, NULL, "proc", NULL, 0, 0555) != 0
    ||  op_add (plan, TAKO_MOUNT_PROC, NULL, "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0) != 0)
        return -1;
    char name [PATH_MAX];
    for (size_t i = 0; i < COUNT (proc_read_only); i++) {
        snprintf (name, sizeof (name), "%s/proc/%s", TAKO_SANDBOX_STAGING, proc_read_only [i]);
        if (op_add (plan, TAKO_MOUNT_MASK, name, name + strlen (TAKO_SANDBOX_STAGING), NULL,
                    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0) != 0)
            return -1;
    }
    for (size_t i = 0; i < COUNT (proc_hidden_files); i++) {
        snprintf (name, sizeof (name), "proc/%s", proc_hidden_files [i]);
        if (op_add (plan, TAKO_MOUNT_MASK, "/dev/null", name, NULL,
                    MS_RDONLY | MS_NOSUID | MS_NOEXEC, 0) != 0)
            return -1;
    }
    for (size_t i = 0; i < COUNT (proc_hidden_dirs); i++) {
        snprintf (name, sizeof (name), "proc/%s", proc_hidden_dirs [i]);
        if (op_add (plan, TAKO_MOUNT_MASK, NULL, name, "mode=555,size=4096",
                    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0) != 0)
            return -1;
    }
    return 0;
}

static int
plan_dev (tako_sandbox_mounts_t *plan)
{
    if (op_tmpfs (plan, "dev", "755", TAKO_SANDBOX_DEV_TMPFS_BYTES, MS_NOSUID | MS_NOEXEC) != 0)
        return -1;
    char target [PATH_MAX], source [PATH_MAX];
    for (size_t i = 0; i < COUNT (devices); i++) {
        snprintf (target, sizeof (target), "dev/%s", devices [i]);
        snprintf (source, sizeof (source), "/dev/%s", devices [i]);
        //  Device nodes work through a bind without nodev; nosuid, noexec.
        if (op_add (plan, TAKO_MOUNT_FILE, NULL, target, "", 0, 0666) != 0
        ||  op_add (plan, TAKO_MOUNT_BIND, source, target, NULL, MS_NOSUID | MS_NOEXEC, 0) != 0)
            return -1;
    }
    if (op_add (plan, TAKO_MOUNT_SYMLINK, NULL, "dev/fd", "/proc/self/fd", 0, 0) != 0
    ||  op_add (plan, TAKO_MOUNT_SYMLINK, NULL, "dev/stdin", "/proc/self/fd/0", 0, 0) != 0
    ||  op_add (plan, TAKO_MOUNT_SYMLINK, NULL, "dev/stdout", "/proc/self/fd/1", 0, 0) != 0
    ||  op_add (plan, TAKO_MOUNT_SYMLINK, NULL, "dev/stderr", "/proc/self/fd/2", 0, 0) != 0)
        return -1;
    return op_tmpfs (plan, "dev/shm", "1777", TAKO_SANDBOX_SHM_BYTES,
                     MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

static int
plan_job_dirs (tako_sandbox_mounts_t *plan, const tako_sandbox_mounts_spec_t *spec)
{
    unsigned long data_flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (op_tmpfs (plan, "tmp", "1777", spec->tmp_bytes, data_flags) != 0
    ||  op_tmpfs (plan, "output", "755", spec->output_bytes, data_flags) != 0
    ||  op_tmpfs (plan, "code", "755", TAKO_SANDBOX_CODE_TMPFS_BYTES, data_flags) != 0
    ||  op_tmpfs (plan, "input", "755", TAKO_SANDBOX_INPUT_TMPFS_BYTES, data_flags) != 0)
        return -1;
    return 0;
}

//  Extra read-only binds, creating the parents of their mount points.
static int
plan_extra_binds (tako_sandbox_mounts_t *plan, const tako_sandbox_mounts_spec_t *spec,
                  const char **error)
{
    size_t staging_size = strlen (TAKO_SANDBOX_STAGING);
    for (size_t i = 0; i < spec->bind_count; i++) {
        const char *source = spec->bind_sources [i];
        const char *target = spec->bind_targets [i];
        if (!source || source [0] != '/' || !target || target [0] != '/' || strstr (target, "..")) {
            *error = "a bind needs absolute paths without '..'";
            return -1;
        }
        if (strncmp (source, TAKO_SANDBOX_STAGING, staging_size) == 0
        &&  (source [staging_size] == '/' || source [staging_size] == '\0')) {
            *error = "a bind source lies below the staging directory";
            return -1;
        }
        char parent [PATH_MAX];
        for (const char *slash = strchr (target + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
            size_t size = (size_t) (slash - target);
            if (size >= sizeof (parent))
                return -1;
            memcpy (parent, target, size);
            parent [size] = '\0';
            if (op_add (plan, TAKO_MOUNT_DIR, NULL, parent, NULL, 0, 0755) != 0)
                return -1;
        }
        if (op_bind_read_only (plan, source, target) != 0) {
            *error = "a bind source is missing";
            return -1;
        }
    }
    return 0;
}

int
tako_sandbox_mounts_plan (tako_sandbox_mounts_t *plan, const tako_sandbox_mounts_spec_t *spec,
                          const char **error)
{
    memset (plan, 0, sizeof (*plan));
    const char *root = spec->rootfs && *spec->rootfs? spec->rootfs: "/";
    *error = "too many mounts";
    if (op_add (plan, TAKO_MOUNT_TMPFS, NULL, "", "mode=755,size=1048576",
                MS_NOSUID | MS_NODEV, 0) != 0
    ||  plan_system_dirs (plan, root) != 0
    ||  plan_etc (plan, root, spec->network_enabled) != 0
    ||  plan_proc (plan) != 0
    ||  plan_dev (plan) != 0
    ||  plan_job_dirs (plan, spec) != 0
    ||  plan_extra_binds (plan, spec, error) != 0) {
        tako_sandbox_mounts_release (plan);
        return -1;
    }
    return 0;
}

void
tako_sandbox_mounts_release (tako_sandbox_mounts_t *plan)
{
    for (int i = 0; i < plan->count; i++) {
        free (plan->ops [i].source);
        free (plan->ops [i].target);
        free (plan->ops [i].data);
    }
    plan->count = 0;
}

//  ---------------------------------------------------------------------
//  Inside the sandbox: system calls only from here on.

static int
file_create (const char *path, const char *contents, mode_t mode)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t size = strlen (contents);
    int rc = write (fd, contents, size) == (ssize_t) size? 0: -1;
    if (fchmod (fd, mode) != 0)
        rc = -1;
    close (fd);
    return rc;
}

//  The flags a bind must keep: in a user namespace the kernel refuses to
//  clear nosuid/nodev/noexec/ro that the original mount had.
static unsigned long
locked_flags (const char *path)
{
    //  statfs, not statvfs: glibc's statvfs may read /proc/mounts.
    struct statfs status;
    unsigned long flags = 0;
    if (statfs (path, &status) != 0)
        return 0;
    if (status.f_flags & ST_NOSUID)
        flags |= MS_NOSUID;
    if (status.f_flags & ST_NODEV)
        flags |= MS_NODEV;
    if (status.f_flags & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (status.f_flags & ST_RDONLY)
        flags |= MS_RDONLY;
    return flags;
}

static int
bind_apply (const tako_mount_op_t *op)
{
    if (mount (op->source, op->target, NULL, MS_BIND | MS_REC, NULL) != 0)
        return -1;
    if (!op->flags)
        return 0;
    unsigned long flags = op->flags | locked_flags (op->target);
    return mount (NULL, op->target, NULL, MS_BIND | MS_REMOUNT | flags, NULL);
}

static int
mask_apply (const tako_mount_op_t *op)
{
    struct stat status;
    if (lstat (op->target, &status) != 0)
        return errno == ENOENT? 0: -1;
    if (op->source)
        return bind_apply (op);
    return mount ("tmpfs", op->target, "tmpfs", op->flags, op->data);
}

static int
op_apply (const tako_mount_op_t *op)
{
    switch (op->kind) {
        case TAKO_MOUNT_DIR:
            return mkdir (op->target, op->mode) == 0 || errno == EEXIST? 0: -1;
        case TAKO_MOUNT_FILE:
            return file_create (op->target, op->data, op->mode);
        case TAKO_MOUNT_SYMLINK:
            return symlink (op->data, op->target);
        case TAKO_MOUNT_TMPFS:
            return mount ("tmpfs", op->target, "tmpfs", op->flags, op->data);
        case TAKO_MOUNT_BIND:
            return bind_apply (op);
        case TAKO_MOUNT_PROC:
            return mount ("proc", op->target, "proc", op->flags, NULL);
        case TAKO_MOUNT_MASK:
            return mask_apply (op);
    }
    errno = EINVAL;
    return -1;
}

static int
pivot_into (const char *new_root)
{
    if (chdir (new_root) != 0)
        return -1;
    //  pivot_root (".", ".") stacks the old root on top of the new one;
    //  detaching it leaves only the new root visible.
    if (syscall (SYS_pivot_root, ".", ".") != 0)
        return -1;
    if (umount2 (".", MNT_DETACH) != 0)
        return -1;
    if (chdir ("/") != 0)
        return -1;
    return mount (NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

int
tako_sandbox_mounts_apply (const tako_sandbox_mounts_t *plan, int *failed)
{
    *failed = -1;
    //  Nothing we mount may propagate back to the host.
    if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -1;
    for (int i = 0; i < plan->count; i++)
        if (op_apply (&plan->ops [i]) != 0) {
            *failed = i;
            return -1;
        }
    return pivot_into (TAKO_SANDBOX_STAGING);
}

int
tako_sandbox_mounts_seal (const char *path)
{
    return mount (NULL, path, NULL,
                  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

const char *
tako_sandbox_mounts_op_path (const tako_sandbox_mounts_t *plan, int index)
{
    if (index < 0 || index >= plan->count)
        return "/";
    const char *target = plan->ops [index].target + strlen (TAKO_SANDBOX_STAGING);
    return *target? target: "/";
}
