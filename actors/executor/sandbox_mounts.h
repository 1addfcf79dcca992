/*  sandbox_mounts — the sandbox's file system, built from nothing.

    A fresh tmpfs becomes the root (pivot_root). Into it go: read-only
    binds of what the interpreter needs (/usr and the /bin, /lib...
    symlinks or directories of the host or of a configured rootfs), a
    minimal generated /etc (passwd, group, hosts, resolv.conf, nsswitch)
    plus the dynamic loader cache and TLS certificates, a fresh /proc with
    the dangerous corners masked, a minimal /dev (null, zero, full, random,
    urandom; no tty), size-limited tmpfs /tmp, /dev/shm and /output
    (noexec), /code and /input (filled when the job arrives, then sealed
    read-only) and the caller's extra read-only binds. Nothing else of the
    host is visible; the root itself ends read-only.

    The plan is computed in the host process (allocations allowed there);
    executing it in the sandbox makes only system calls.

    The new root is assembled on TAKO_SANDBOX_STAGING in the sandbox's
    private mount namespace, so bind sources must not live below it.       */

#ifndef SANDBOX_MOUNTS_H_INCLUDED
#define SANDBOX_MOUNTS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TAKO_SANDBOX_STAGING          "/mnt"
#define TAKO_SANDBOX_ROOT_TMPFS_BYTES (1024 * 1024)
#define TAKO_SANDBOX_DEV_TMPFS_BYTES  (64 * 1024)
#define TAKO_SANDBOX_SHM_BYTES        (16 * 1024 * 1024)
//  The configuration's upper bounds for code and input, plus a page.
#define TAKO_SANDBOX_CODE_TMPFS_BYTES  (16 * 1024 * 1024 + 4096)
#define TAKO_SANDBOX_INPUT_TMPFS_BYTES (256 * 1024 * 1024 + 4096)
#define TAKO_SANDBOX_MOUNT_OPS_MAX    128

typedef enum {
    TAKO_MOUNT_DIR,         //  mkdir target
    TAKO_MOUNT_FILE,        //  create target with data as contents
    TAKO_MOUNT_SYMLINK,     //  target -> data
    TAKO_MOUNT_TMPFS,       //  tmpfs on target, options in data
    TAKO_MOUNT_BIND,        //  bind source on target, then apply flags
    TAKO_MOUNT_PROC,        //  fresh proc on target
    TAKO_MOUNT_MASK         //  like BIND, skipped when target is missing
} tako_mount_kind_t;

typedef struct {
    tako_mount_kind_t kind;
    char *source;           //  host path (BIND, MASK)
    char *target;           //  absolute path under the staging root
    char *data;             //  tmpfs options, file contents, link target
    unsigned long flags;    //  MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC
    mode_t mode;
} tako_mount_op_t;

typedef struct {
    tako_mount_op_t ops [TAKO_SANDBOX_MOUNT_OPS_MAX];
    int count;
} tako_sandbox_mounts_t;

typedef struct {
    const char *rootfs;             //  NULL or "" = the host's /
    int64_t tmp_bytes;              //  /tmp
    int64_t output_bytes;           //  /output
    bool network_enabled;           //  then the host's resolv.conf is bound
    const char *const *bind_sources;    //  extra read-only binds
    const char *const *bind_targets;
    size_t bind_count;
} tako_sandbox_mounts_spec_t;

//  Build the plan. Returns 0, or -1 with *error a static reason.
int tako_sandbox_mounts_plan (tako_sandbox_mounts_t *plan,
                              const tako_sandbox_mounts_spec_t *spec, const char **error);

//  Free the strings of a plan; safe twice.
void tako_sandbox_mounts_release (tako_sandbox_mounts_t *plan);

//  Inside: execute the plan and pivot into the new root. Returns 0, or -1
//  with errno and *failed the index of the failing op (-1: the pivot).
int tako_sandbox_mounts_apply (const tako_sandbox_mounts_t *plan, int *failed);

//  Inside, after pivot: make the mount at path read-only (for /code and
//  /input once the job is written). Returns 0 or -1 with errno.
int tako_sandbox_mounts_seal (const char *path);

//  The path of op index inside the sandbox (staging prefix removed), for
//  error messages that must not show host paths.
const char *tako_sandbox_mounts_op_path (const tako_sandbox_mounts_t *plan, int index);

#endif
