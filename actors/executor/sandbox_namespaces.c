/*  sandbox_namespaces — clone into fresh namespaces, loopback up.  */

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sandbox_namespaces.h"

int
tako_sandbox_namespaces_flags (bool network_enabled)
{
    int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    if (!network_enabled)
        flags |= CLONE_NEWNET;
    return flags;
}

pid_t
tako_sandbox_namespaces_clone (int flags)
{
    //  The raw system call behaves like fork (no new stack, no glibc
    //  atfork handlers), which is what we want from a possibly
    //  multi-threaded host: the child only makes system calls until exec.
    return (pid_t) syscall (SYS_clone, (unsigned long) flags | SIGCHLD, NULL, NULL, NULL, 0);
}

static int
loopback_up (void)
{
    int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq request;
    memset (&request, 0, sizeof (request));
    memcpy (request.ifr_name, "lo", 3);
    int rc = ioctl (fd, SIOCGIFFLAGS, &request);
    if (rc == 0) {
        request.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl (fd, SIOCSIFFLAGS, &request);
    }
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

int
tako_sandbox_namespaces_enter (bool network_enabled, const char **step)
{
    *step = "cgroup namespace";
    if (unshare (CLONE_NEWCGROUP) != 0)
        return -1;
    *step = "hostname";
    if (sethostname (TAKO_SANDBOX_HOSTNAME, strlen (TAKO_SANDBOX_HOSTNAME)) != 0)
        return -1;
    *step = "loopback";
    if (!network_enabled && loopback_up () != 0)
        return -1;
    return 0;
}

int
tako_sandbox_namespaces_probe (int flag)
{
    //  A user namespace first, as the sandbox does: the others need it
    //  when we are not root, and it is how they are used.
    int flags = flag | CLONE_NEWUSER;
    pid_t pid = tako_sandbox_namespaces_clone (flags);
    if (pid < 0)
        return errno;
    if (pid == 0)
        _exit (0);
    int status = 0;
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED (status) && WEXITSTATUS (status) == 0? 0: ECHILD;
}
