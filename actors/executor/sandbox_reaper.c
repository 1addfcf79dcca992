/*  sandbox_reaper — pid 1 of the sandbox: set up, release, reap.  */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sandbox_bootstrap.h"
#include "sandbox_caps.h"
#include "sandbox_namespaces.h"
#include "sandbox_reaper.h"
#include "sandbox_uidmap.h"

//  Where fds are parked while they are rearranged to 0..6.
#define PARKING_FD      64
//  The interpreter keeps the report pipe here until exec closes it.
#define INTERPRETER_REPORT_FD 6
//  Copy buffer for the job's code and input.
#define COPY_BUFFER     16384

static const char *layer_names [] = {
    "sandbox", "uidmap", "namespaces", "mounts", "cgroup", "rlimits", "seccomp",
    "capabilities", "interpreter", "job"
};

const char *
tako_sandbox_layer_name (int layer)
{
    if (layer < 0 || layer >= (int) (sizeof (layer_names) / sizeof (layer_names [0])))
        return "sandbox";
    return layer_names [layer];
}

static void
report (int fd, int kind, int layer, int detail, int error)
{
    tako_sandbox_report_t record = { kind, layer, detail, error };
    ssize_t rc = write (fd, &record, sizeof (record));
    (void) rc;          //  nobody left to tell if the host is gone
}

static void __attribute__ ((noreturn))
fail (int fd, int layer, int detail)
{
    report (fd, TAKO_REPORT_FAILED, layer, detail, errno);
    _exit (1);
}

static int
read_full (int fd, void *buffer, size_t size)
{
    char *bytes = buffer;
    while (size > 0) {
        ssize_t got = read (fd, bytes, size);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        bytes += got;
        size -= (size_t) got;
    }
    return 0;
}

static int
write_full (int fd, const void *buffer, size_t size)
{
    const char *bytes = buffer;
    while (size > 0) {
        ssize_t done = write (fd, bytes, size);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return -1;
        bytes += done;
        size -= (size_t) done;
    }
    return 0;
}

//  Copy size bytes from the job pipe into a new file at path.
static int
job_file_write (int job_fd, const char *path, uint64_t size)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    char buffer [COPY_BUFFER];
    int rc = 0;
    while (rc == 0 && size > 0) {
        size_t take = size < sizeof (buffer)? (size_t) size: sizeof (buffer);
        if (read_full (job_fd, buffer, take) != 0 || write_full (fd, buffer, take) != 0)
            rc = -1;
        size -= take;
    }
    if (close (fd) != 0)
        rc = -1;
    return rc;
}

//  In the forked child: arrange fds 0..5 for the bootstrap, apply the
//  per-process layers, exec the interpreter.
static void __attribute__ ((noreturn))
interpreter_exec (const tako_sandbox_init_plan_t *plan, int null_fd)
{
    int sources [] = { null_fd, plan->stdout_fd, plan->stderr_fd, plan->ready_fd,
                       plan->go_read_fd, plan->error_fd, plan->report_fd };
    int count = (int) (sizeof (sources) / sizeof (sources [0]));
    int parked [sizeof (sources) / sizeof (sources [0])];
    for (int i = 0; i < count; i++)
        if ((parked [i] = fcntl (sources [i], F_DUPFD_CLOEXEC, PARKING_FD)) < 0)
            fail (plan->report_fd, TAKO_LAYER_INTERPRETER, 0);
    for (int i = 0; i < INTERPRETER_REPORT_FD; i++)
        if (dup2 (parked [i], i) < 0)
            fail (plan->report_fd, TAKO_LAYER_INTERPRETER, 0);
    int report_fd = INTERPRETER_REPORT_FD;
    if (dup3 (parked [count - 1], report_fd, O_CLOEXEC) < 0)
        _exit (1);
    syscall (SYS_close_range, INTERPRETER_REPORT_FD + 1, ~0U, 0);

    if (setsid () < 0)
        fail (report_fd, TAKO_LAYER_NAMESPACES, 0);
    int failed_resource = 0;
    if (tako_sandbox_rlimits_apply (plan->rlimits, &failed_resource) != 0)
        fail (report_fd, TAKO_LAYER_RLIMITS, failed_resource);
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail (report_fd, TAKO_LAYER_CAPABILITIES, 0);
    if (tako_sandbox_caps_drop_all () != 0)
        fail (report_fd, TAKO_LAYER_CAPABILITIES, 0);
    if (plan->seccomp_enabled && tako_sandbox_seccomp_apply (plan->seccomp) != 0)
        fail (report_fd, TAKO_LAYER_SECCOMP, 0);
    if (plan->run_in_process) {
        //  No exec closes the report pipe for us: the job must never hold
        //  it (it could write reports of its own).
        close (report_fd);
        plan->run_in_process ();
        _exit (127);
    }
    execve (plan->argv [0], plan->argv, plan->envp);
    fail (report_fd, TAKO_LAYER_INTERPRETER, 0);
}

//  Receive the job, put it in place, seal it read-only.
static void
job_receive (const tako_sandbox_init_plan_t *plan, pid_t interpreter)
{
    tako_sandbox_job_header_t header;
    if (read_full (plan->job_fd, &header, sizeof (header)) != 0) {
        //  The host gave up on this sandbox: everything dies with us.
        kill (interpreter, SIGKILL);
        _exit (0);
    }
    if (header.magic != TAKO_SANDBOX_JOB_MAGIC
    ||  header.code_size > plan->code_max || header.input_size > plan->input_max) {
        errno = EMSGSIZE;
        fail (plan->report_fd, TAKO_LAYER_JOB, 0);
    }
    if (job_file_write (plan->job_fd, "/code/main.py", header.code_size) != 0
    ||  job_file_write (plan->job_fd, "/input/data.json", header.input_size) != 0)
        fail (plan->report_fd, TAKO_LAYER_JOB, 0);
    if (tako_sandbox_mounts_seal ("/code") != 0 || tako_sandbox_mounts_seal ("/input") != 0)
        fail (plan->report_fd, TAKO_LAYER_MOUNTS, -1);
    close (plan->job_fd);
}

static void __attribute__ ((noreturn))
reap_until_interpreter_exits (const tako_sandbox_init_plan_t *plan, pid_t interpreter)
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid (-1, &status, __WALL);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid == interpreter || pid < 0) {
            report (plan->report_fd, TAKO_REPORT_EXIT, 0, pid == interpreter? status: -1, 0);
            _exit (0);
        }
    }
}

//  pid 1's argv and environment are the host process's (a fork copies
//  them), and any process in the sandbox can read /proc/1/cmdline: host
//  paths, the job's --input, internal addresses. Overwrite our copy of
//  those strings (the memory ranges come from /proc/self/stat, fields
//  48-51) and take a neutral name. System calls and stack only.
#define REAPER_NAME         "tako-init"
#define STAT_BUFFER         4096
#define STAT_FIELD_ARG_START 48

static int
stat_memory_ranges (unsigned long ranges [4])
{
    char buffer [STAT_BUFFER];
    int fd = open ("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t size = read (fd, buffer, sizeof (buffer) - 1);
    close (fd);
    if (size <= 0)
        return -1;
    buffer [size] = '\0';
    char *cursor = strrchr (buffer, ')');       //  comm may hold spaces
    if (!cursor)
        return -1;
    int field = 2;
    int found = 0;
    while (*cursor && found < 4) {
        while (*cursor && *cursor != ' ')
            cursor++;
        while (*cursor == ' ')
            cursor++;
        if (!*cursor)
            break;
        field++;
        if (field >= STAT_FIELD_ARG_START) {
            unsigned long value = 0;
            for (const char *digit = cursor; *digit >= '0' && *digit <= '9'; digit++)
                value = value * 10 + (unsigned long) (*digit - '0');
            ranges [found++] = value;
        }
    }
    return found == 4? 0: -1;
}

static void
scrub_range (unsigned long start, unsigned long end)
{
    for (volatile char *byte = (volatile char *) start; (unsigned long) byte < end; byte++)
        *byte = 0;
}

static void
scrub_host_strings (void)
{
    unsigned long ranges [4];       //  arg_start, arg_end, env_start, env_end
    if (stat_memory_ranges (ranges) == 0) {
        if (ranges [1] > ranges [0])
            scrub_range (ranges [0], ranges [1]);
        if (ranges [3] > ranges [2])
            scrub_range (ranges [2], ranges [3]);
        if (ranges [1] - ranges [0] > sizeof (REAPER_NAME))
            memcpy ((char *) ranges [0], REAPER_NAME, sizeof (REAPER_NAME));
    }
    prctl (PR_SET_NAME, REAPER_NAME, 0, 0, 0);
}

//  Close every inherited fd but ours: the host's sockets, its stdio, and
//  the host ends of our pipes (or the job pipe would never see EOF).
static void
close_all_but_plan (const tako_sandbox_init_plan_t *plan)
{
    int keep [9 + TAKO_SANDBOX_CGROUP_JOIN_MAX] = {
        plan->sync_fd, plan->report_fd, plan->job_fd, plan->stdout_fd,
        plan->stderr_fd, plan->ready_fd, plan->error_fd, plan->go_read_fd,
        plan->go_write_fd
    };
    int count = 9;
    for (int i = 0; i < plan->join_count && i < TAKO_SANDBOX_CGROUP_JOIN_MAX; i++)
        keep [count++] = plan->join_fds [i];
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && keep [j - 1] > keep [j]; j--) {
            int swap = keep [j];
            keep [j] = keep [j - 1];
            keep [j - 1] = swap;
        }
    int next = 0;
    for (int i = 0; i < count; i++) {
        if (keep [i] > next)
            syscall (SYS_close_range, (unsigned) next, (unsigned) keep [i] - 1, 0);
        next = keep [i] + 1;
    }
    syscall (SYS_close_range, (unsigned) next, ~0U, 0);
}

void
tako_sandbox_reaper_main (const tako_sandbox_init_plan_t *plan)
{
    int report_fd = plan->report_fd;
    //  A host thread may block signals (the server reads SIGTERM from a
    //  signalfd); the sandbox must start with none blocked.
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    scrub_host_strings ();
    close_all_but_plan (plan);
    struct sigaction ignore;
    memset (&ignore, 0, sizeof (ignore));
    ignore.sa_handler = SIG_IGN;
    sigaction (SIGPIPE, &ignore, NULL);
    //  If the host dies, the sandbox dies with it.
    prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    char go = 0;
    if (read_full (plan->sync_fd, &go, 1) != 0 || go != 'S')
        _exit (1);
    close (plan->sync_fd);
    //  Into the sandbox's cgroup before anything is made or forked here.
    if (tako_sandbox_cgroup_join (plan->join_fds, plan->join_count) != 0)
        fail (report_fd, TAKO_LAYER_CGROUP, 0);

    if (tako_sandbox_uidmap_become_user () != 0)
        fail (report_fd, TAKO_LAYER_UIDMAP, 0);
    //  Changing uid cleared the parent-death signal: arm it again. If the
    //  host died in between, the job pipe reads EOF and we exit anyway.
    prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    const char *step = NULL;
    if (tako_sandbox_namespaces_enter (plan->network_enabled, &step) != 0)
        fail (report_fd, TAKO_LAYER_NAMESPACES, 0);
    int failed_op = -1;
    if (tako_sandbox_mounts_apply (plan->mounts, &failed_op) != 0)
        fail (report_fd, TAKO_LAYER_MOUNTS, failed_op);
    int null_fd = open ("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        fail (report_fd, TAKO_LAYER_MOUNTS, -1);

    //  The interpreter that continues in this process (a zygote's clone,
    //  one thread) is made with glibc's fork: its thread id, robust list
    //  and the libraries' fork handlers are then the child's, as Python
    //  expects. The host's raw clone of a multi-threaded process must not.
    pid_t interpreter = plan->run_in_process? fork ()
                      : (pid_t) syscall (SYS_clone, (unsigned long) SIGCHLD, NULL, NULL, NULL, 0);
    if (interpreter < 0)
        fail (report_fd, TAKO_LAYER_INTERPRETER, 0);
    if (interpreter == 0)
        interpreter_exec (plan, null_fd);
    close (null_fd);
    close (plan->stdout_fd);
    close (plan->stderr_fd);
    close (plan->ready_fd);
    close (plan->error_fd);
    close (plan->go_read_fd);
    report (report_fd, TAKO_REPORT_SETUP_DONE, 0, interpreter, 0);

    job_receive (plan, interpreter);
    //  The reaper needs nothing more than waitpid from here on.
    prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || tako_sandbox_caps_drop_all () != 0)
        fail (report_fd, TAKO_LAYER_CAPABILITIES, 0);
    if (write_full (plan->go_write_fd, "G", 1) != 0 && errno != EPIPE)
        fail (report_fd, TAKO_LAYER_JOB, 0);
    close (plan->go_write_fd);
    report (report_fd, TAKO_REPORT_JOB_RUNNING, 0, 0, 0);
    reap_until_interpreter_exits (plan, interpreter);
}
