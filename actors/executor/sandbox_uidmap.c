/*  sandbox_uidmap — one unprivileged host id per slot.  */

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "sandbox_uidmap.h"

//  "/proc/<pid>/uid_map" and "1000 265535 1\n" both fit easily.
#define UIDMAP_TEXT_MAX 64

uid_t
tako_sandbox_uidmap_host_id (int slot)
{
    return (uid_t) (TAKO_SANDBOX_HOST_ID_BASE + slot);
}

static int
map_file_write (pid_t pid, const char *file, const char *text)
{
    char path [UIDMAP_TEXT_MAX];
    snprintf (path, sizeof (path), "/proc/%d/%s", (int) pid, file);
    int fd = open (path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t size = (ssize_t) strlen (text);
    int rc = write (fd, text, (size_t) size) == size? 0: -1;
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

int
tako_sandbox_uidmap_write (pid_t pid, int slot)
{
    if (slot < 0 || slot > TAKO_SANDBOX_SLOT_MAX) {
        errno = EINVAL;
        return -1;
    }
    char line [UIDMAP_TEXT_MAX];
    snprintf (line, sizeof (line), "%d %u 1\n", TAKO_SANDBOX_INNER_ID,
              (unsigned) tako_sandbox_uidmap_host_id (slot));
    if (map_file_write (pid, "uid_map", line) != 0)
        return -1;
    return map_file_write (pid, "gid_map", line);
}

int
tako_sandbox_uidmap_become_user (void)
{
    //  Raw system calls: glibc's setgroups/setresgid/setresuid apply the
    //  change to every thread glibc knows of, waiting for each. We are a
    //  raw clone of one host thread, so glibc still lists the host's other
    //  threads, which do not exist here: the wrappers wait forever
    //  (seen: one start in a few hundred hung in setxid_mark_thread).
    //  Clone keeps the host's supplementary groups (root's); drop them
    //  before anything can use them for a permission check.
    if (syscall (SYS_setgroups, 0, NULL) != 0)
        return -1;
    if (syscall (SYS_setresgid, TAKO_SANDBOX_INNER_ID, TAKO_SANDBOX_INNER_ID, TAKO_SANDBOX_INNER_ID) != 0)
        return -1;
    if (syscall (SYS_setresuid, TAKO_SANDBOX_INNER_ID, TAKO_SANDBOX_INNER_ID, TAKO_SANDBOX_INNER_ID) != 0)
        return -1;
    return 0;
}
