/*  sandbox_runsc — the OCI bundle, the runsc process and its channels.  */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "sandbox_runsc.h"
#include "sandbox_uidmap.h"

#define NS_PER_MS        1000000LL
#define READ_CHUNK       65536
#define RUNSC_EXIT_SIGNAL_BASE 128
#define OPTIONS_MAX      256

//  Prepended to the bootstrap: fds 3 (ready), 4 (go) and 5 (error) are the
//  socket runsc got as stdin; the job's own stdin is /dev/null.
static const char runsc_prelude [] =
    "import os\n"
    "for _tako_fd in (3, 4, 5):\n"
    "    os.dup2(0, _tako_fd)\n"
    "_tako_fd = os.open('/dev/null', os.O_RDONLY)\n"
    "os.dup2(_tako_fd, 0)\n"
    "os.close(_tako_fd)\n"
    "del _tako_fd\n";

struct tako_sandbox_runsc_t {
    char dir [sizeof (TAKO_SANDBOX_RUNSC_DIR_TEMPLATE)];
    char id [64];
    char *runsc_path;
    tako_sandbox_cgroup_t *cgroup;
    bool output_mounted;
    int output_fd;
    pid_t runsc;                    //  the `runsc run` process
    bool reaped;
    bool killed;                    //  then its state needs runsc delete
    bool ran;
};

static int64_t
now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000000LL + now.tv_nsec;
}

static int
path_in (const tako_sandbox_runsc_t *self, const char *relative, char *path, size_t size)
{
    int written = snprintf (path, size, "%s/%s", self->dir, relative);
    return written > 0 && (size_t) written < size? 0: -1;
}

static int
file_write (const char *path, const char *data, size_t size, mode_t mode)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t wrote = write (fd, data + done, size - done);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            close (fd);
            return -1;
        }
        done += (size_t) wrote;
    }
    //  umask must not decide what the job may read.
    int rc = fchmod (fd, mode);
    return close (fd) == 0 && rc == 0? 0: -1;
}

//  ---------------------------------------------------------------------
//  The bundle

//  "mode=1777,size=N" and mount flags as OCI options.
static json_t *
mount_options (const char *data, unsigned long flags, bool bind)
{
    json_t *options = json_array ();
    if (bind)
        json_array_append_new (options, json_string ("bind"));
    if (flags & MS_RDONLY)
        json_array_append_new (options, json_string ("ro"));
    if (flags & MS_NOSUID)
        json_array_append_new (options, json_string ("nosuid"));
    if (flags & MS_NODEV)
        json_array_append_new (options, json_string ("nodev"));
    if (flags & MS_NOEXEC)
        json_array_append_new (options, json_string ("noexec"));
    char copy [OPTIONS_MAX];
    snprintf (copy, sizeof (copy), "%s", data? data: "");
    char *saved = NULL;
    for (char *option = strtok_r (copy, ",", &saved); option; option = strtok_r (NULL, ",", &saved))
        json_array_append_new (options, json_string (option));
    return options;
}

static json_t *
mount_entry (const char *destination, const char *type, const char *source, json_t *options)
{
    return json_pack ("{s:s, s:s, s:s, s:o}", "destination", destination, "type", type,
                      "source", source, "options", options);
}

static bool
is_below (const char *path, const char *dir)
{
    size_t size = strlen (dir);
    return strncmp (path, dir, size) == 0 && (path [size] == '\0' || path [size] == '/');
}

//  One op of the native plan: files, directories and links go into the
//  bundle's root; mounts become OCI mounts. gVisor brings its own /dev and
//  /proc (synthetic: nothing of the host's to mask); /code and /input are
//  plain files of the read-only root; /output is the host tmpfs.
static int
op_translate (tako_sandbox_runsc_t *self, const tako_sandbox_mounts_t *plan, int index,
              json_t *mounts)
{
    const tako_mount_op_t *op = &plan->ops [index];
    const char *target = tako_sandbox_mounts_op_path (plan, index);
    if (strcmp (target, "/") == 0 || is_below (target, "/dev"))
        return 0;
    char path [PATH_MAX], relative [PATH_MAX];
    snprintf (relative, sizeof (relative), "rootfs%s", target);
    if (path_in (self, relative, path, sizeof (path)) != 0)
        return -1;
    switch (op->kind) {
        case TAKO_MOUNT_DIR:
            return mkdir (path, op->mode) == 0 || errno == EEXIST? chmod (path, op->mode): -1;
        case TAKO_MOUNT_FILE:
            return file_write (path, op->data? op->data: "", op->data? strlen (op->data): 0,
                               op->mode);
        case TAKO_MOUNT_SYMLINK:
            return symlink (op->data, path);
        case TAKO_MOUNT_PROC:
            json_array_append_new (mounts, mount_entry (target, "proc", "proc",
                                   mount_options (NULL, op->flags, false)));
            return 0;
        case TAKO_MOUNT_MASK:
            return 0;
        case TAKO_MOUNT_BIND:
            json_array_append_new (mounts, mount_entry (target, "bind", op->source,
                                   mount_options (NULL, op->flags | MS_RDONLY, true)));
            return 0;
        case TAKO_MOUNT_TMPFS:
            if (strcmp (target, "/code") == 0 || strcmp (target, "/input") == 0)
                return 0;
            if (strcmp (target, "/output") == 0) {
                char source [PATH_MAX];
                if (path_in (self, "output", source, sizeof (source)) != 0)
                    return -1;
                json_array_append_new (mounts, mount_entry (target, "bind", source,
                                       mount_options (NULL, op->flags, true)));
                return 0;
            }
            json_array_append_new (mounts, mount_entry (target, "tmpfs", "tmpfs",
                                   mount_options (op->data, op->flags, false)));
            return 0;
    }
    return -1;
}

static const char *
rlimit_name (int resource)
{
    switch (resource) {
        case RLIMIT_NOFILE: return "RLIMIT_NOFILE";
        case RLIMIT_NPROC:  return "RLIMIT_NPROC";
        case RLIMIT_FSIZE:  return "RLIMIT_FSIZE";
        case RLIMIT_CORE:   return "RLIMIT_CORE";
        case RLIMIT_STACK:  return "RLIMIT_STACK";
        case RLIMIT_CPU:    return "RLIMIT_CPU";
        case RLIMIT_AS:     return "RLIMIT_AS";
        default:            return NULL;
    }
}

static json_t *
rlimits_json (const tako_sandbox_rlimits_t *plan)
{
    json_t *list = json_array ();
    for (int i = 0; i < plan->count; i++) {
        const char *name = rlimit_name (plan->items [i].resource);
        if (name)
            json_array_append_new (list, json_pack ("{s:s, s:I, s:I}", "type", name,
                "soft", (json_int_t) plan->items [i].limit.rlim_cur,
                "hard", (json_int_t) plan->items [i].limit.rlim_max));
    }
    return list;
}

static json_t *
strings_json (char *const *strings, size_t skip, const char *replacement, size_t at)
{
    json_t *list = json_array ();
    for (size_t i = skip; strings && strings [i]; i++)
        json_array_append_new (list, json_string (i == at && replacement? replacement: strings [i]));
    return list;
}

//  The process: the native argv with the prelude before the bootstrap.
static json_t *
process_json (const tako_sandbox_runsc_plan_t *plan)
{
    const char *bootstrap = plan->argv [3];
    size_t size = strlen (runsc_prelude) + strlen (bootstrap) + 1;
    char *source = malloc (size);
    if (!source)
        return NULL;
    snprintf (source, size, "%s%s", runsc_prelude, bootstrap);
    json_t *empty = json_array ();
    json_t *process = json_pack ("{s:{s:i, s:i}, s:o, s:o, s:s, s:b, s:{s:O, s:O, s:O, s:O, s:O}, s:o}",
        "user", "uid", TAKO_SANDBOX_INNER_ID, "gid", TAKO_SANDBOX_INNER_ID,
        "args", strings_json (plan->argv, 0, source, 3),
        "env", strings_json (plan->envp, 0, NULL, 0),
        "cwd", "/tmp",
        "noNewPrivileges", 1,
        "capabilities", "bounding", empty, "effective", empty, "inheritable", empty,
                        "permitted", empty, "ambient", empty,
        "rlimits", rlimits_json (plan->rlimits));
    json_decref (empty);
    free (source);
    return process;
}

static int
config_write (tako_sandbox_runsc_t *self, const tako_sandbox_runsc_plan_t *plan)
{
    json_t *mounts = json_array ();
    for (int i = 0; i < plan->mounts->count; i++)
        if (op_translate (self, plan->mounts, i, mounts) != 0) {
            json_decref (mounts);
            return -1;
        }
    json_t *process = process_json (plan);
    json_t *config = process? json_pack ("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:{s:[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]}}",
        "ociVersion", "1.0.0",
        "process", process,
        "root", "path", "rootfs", "readonly", 1,
        "hostname", "sandbox",
        "mounts", mounts,
        "linux", "namespaces", "type", "pid", "type", "network", "type", "ipc",
                 "type", "uts", "type", "mount"): NULL;
    if (!process)
        json_decref (mounts);
    char path [PATH_MAX];
    int rc = config && path_in (self, "config.json", path, sizeof (path)) == 0
           ? json_dump_file (config, path, JSON_COMPACT): -1;
    json_decref (config);
    return rc;
}

//  /output: a tmpfs of the configured size owned by the sandbox user, so
//  a job cannot fill the host's disk, and opened now, before any job code
//  runs (sandbox_output reads only through this fd).
static int
output_mount (tako_sandbox_runsc_t *self, int64_t size)
{
    char path [PATH_MAX], options [OPTIONS_MAX];
    if (path_in (self, "output", path, sizeof (path)) != 0 || mkdir (path, 0700) != 0)
        return -1;
    snprintf (options, sizeof (options), "mode=755,size=%lld,uid=%d,gid=%d", (long long) size,
              TAKO_SANDBOX_INNER_ID, TAKO_SANDBOX_INNER_ID);
    if (mount ("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options) != 0)
        return -1;
    self->output_mounted = true;
    self->output_fd = open (path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return self->output_fd >= 0? 0: -1;
}

tako_sandbox_runsc_t *
tako_sandbox_runsc_new (const tako_sandbox_runsc_plan_t *plan, const char **error)
{
    tako_sandbox_runsc_t *self = calloc (1, sizeof (tako_sandbox_runsc_t));
    *error = "out of memory";
    if (!self)
        return NULL;
    self->output_fd = -1;
    self->cgroup = plan->cgroup;
    snprintf (self->dir, sizeof (self->dir), "%s", TAKO_SANDBOX_RUNSC_DIR_TEMPLATE);
    snprintf (self->id, sizeof (self->id), "tako-%d-%lld", (int) getpid (), (long long) now_ns ());
    self->runsc_path = strdup (plan->runsc_path);
    char path [PATH_MAX];
    if (!self->runsc_path)
        ;
    else
    if (!mkdtemp (self->dir)) {
        self->dir [0] = '\0';
        *error = "cannot create the bundle directory";
    }
    else
    if (path_in (self, "rootfs", path, sizeof (path)) != 0 || mkdir (path, 0755) != 0
    ||  path_in (self, "state", path, sizeof (path)) != 0 || mkdir (path, 0700) != 0)
        *error = "cannot create the bundle directory";
    else
    if (output_mount (self, plan->output_bytes) != 0)
        *error = "cannot mount /output";
    else
    if (config_write (self, plan) != 0)
        *error = "cannot write the OCI bundle";
    else {
        *error = NULL;
        return self;
    }
    tako_sandbox_runsc_destroy (&self);
    return NULL;
}

static int
remove_entry (const char *path, const struct stat *status, int type, struct FTW *walk)
{
    (void) status;
    (void) walk;
    return (type == FTW_DP? rmdir (path): unlink (path)) == 0 || errno == ENOENT? 0: -1;
}

//  Wait for pid to exit, at most until deadline. True if it did.
static bool
child_wait (pid_t pid, int *status, int64_t deadline)
{
    while (true) {
        pid_t done = waitpid (pid, status, WNOHANG);
        if (done == pid || (done < 0 && errno != EINTR))
            return true;
        if (now_ns () > deadline)
            return false;
        struct timespec pause = { 0, 2 * NS_PER_MS };
        nanosleep (&pause, NULL);
    }
}

//  Run a short runsc command on the container (delete --force, kill ID
//  KILL) and wait for it, bounded.
static void
runsc_command (tako_sandbox_runsc_t *self, const char *command, const char *flag,
               const char *argument)
{
    char state [PATH_MAX];
    if (path_in (self, "state", state, sizeof (state)) != 0)
        return;
    char *argv [8] = { self->runsc_path, "--root", state, (char *) command };
    int count = 4;
    if (flag)
        argv [count++] = (char *) flag;
    argv [count++] = self->id;
    argv [count++] = (char *) argument;
    argv [count] = NULL;
    char *envp [] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    pid_t pid = fork ();
    if (pid == 0) {
        int null = open ("/dev/null", O_RDWR);
        dup2 (null, 0);
        dup2 (null, 1);
        dup2 (null, 2);
        syscall (SYS_close_range, 3, ~0U, 0);
        execve (self->runsc_path, argv, envp);
        _exit (127);
    }
    if (pid < 0)
        return;
    int status;
    if (!child_wait (pid, &status, now_ns () + TAKO_SANDBOX_RUNSC_COMMAND_MS * NS_PER_MS)) {
        kill (pid, SIGKILL);
        waitpid (pid, &status, 0);
    }
}

static void
runsc_kill (tako_sandbox_runsc_t *self)
{
    if (self->cgroup)
        tako_sandbox_cgroup_kill (self->cgroup);
    if (self->runsc > 0 && !self->reaped) {
        kill (self->runsc, SIGKILL);
        waitpid (self->runsc, NULL, 0);
        self->reaped = true;
        self->killed = true;
    }
}

//  On timeout or cancel: runsc kills the container and then tears the
//  sandbox down itself and exits (killing runsc first would leave its
//  state behind); the cgroup is the backstop.
static void
runsc_stop (tako_sandbox_runsc_t *self)
{
    if (self->runsc > 0 && !self->reaped) {
        runsc_command (self, "kill", NULL, "KILL");
        int status;
        self->reaped = child_wait (self->runsc, &status,
                                   now_ns () + TAKO_SANDBOX_RUNSC_COMMAND_MS * NS_PER_MS);
    }
    runsc_kill (self);
}

void
tako_sandbox_runsc_destroy (tako_sandbox_runsc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_sandbox_runsc_t *self = *self_p;
    runsc_stop (self);
    if (self->killed)
        runsc_command (self, "delete", "--force", NULL);
    if (self->output_fd >= 0)
        close (self->output_fd);
    char path [PATH_MAX];
    if (self->output_mounted && path_in (self, "output", path, sizeof (path)) == 0)
        umount2 (path, MNT_DETACH);
    if (self->dir [0])
        nftw (self->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    free (self->runsc_path);
    free (self);
    *self_p = NULL;
}

int
tako_sandbox_runsc_output_fd (tako_sandbox_runsc_t *self)
{
    return self->output_fd;
}

//  ---------------------------------------------------------------------
//  Running

static int
job_place (tako_sandbox_runsc_t *self, const char *code, size_t code_size,
           const char *input, size_t input_size)
{
    char path [PATH_MAX];
    return path_in (self, "rootfs/code/main.py", path, sizeof (path)) == 0
        && file_write (path, code, code_size, 0444) == 0
        && path_in (self, "rootfs/input/data.json", path, sizeof (path)) == 0
        && file_write (path, input, input_size, 0444) == 0? 0: -1;
}

typedef struct {
    int channel;                    //  the socket: ready, go, error record
    int out, err;                   //  the job's stdout and stderr
    int exited;                     //  pidfd of runsc
} host_fds_t;

static void
host_fds_close (host_fds_t *fds)
{
    int *all [] = { &fds->channel, &fds->out, &fds->err, &fds->exited };
    for (size_t i = 0; i < sizeof (all) / sizeof (all [0]); i++)
        if (*all [i] >= 0) {
            close (*all [i]);
            *all [i] = -1;
        }
}

//  Fork runsc with the channel socket as stdin and two more sockets as
//  stdout and stderr, in the cgroup before it execs. Not pipes: the runsc
//  we measured (Debian's 20221219) drops what the job writes beyond a full
//  host pipe's buffer when the host reads slower; sockets keep every byte.
static int
runsc_start (tako_sandbox_runsc_t *self, host_fds_t *fds)
{
    int channel [2] = { -1, -1 }, out [2] = { -1, -1 }, err [2] = { -1, -1 }, sync [2] = { -1, -1 };
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0
    ||  socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) != 0
    ||  socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, err) != 0
    ||  pipe2 (sync, O_CLOEXEC) != 0)
        goto failed;
    char bundle [PATH_MAX], state [PATH_MAX];
    snprintf (bundle, sizeof (bundle), "%s", self->dir);
    if (path_in (self, "state", state, sizeof (state)) != 0)
        goto failed;
    char *argv [TAKO_SANDBOX_RUNSC_ARGS_MAX] = {
        self->runsc_path, "--root", state, "--network=none", "--ignore-cgroups",
        "run", "--bundle", bundle, self->id, NULL
    };
    char *envp [] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    self->ran = true;
    self->runsc = fork ();
    if (self->runsc < 0)
        goto failed;
    if (self->runsc == 0) {
        char go;
        close (sync [1]);
        if (read (sync [0], &go, 1) != 1)
            _exit (126);
        if (dup2 (channel [1], 0) < 0 || dup2 (out [1], 1) < 0 || dup2 (err [1], 2) < 0)
            _exit (126);
        syscall (SYS_close_range, 3, ~0U, 0);
        execve (self->runsc_path, argv, envp);
        _exit (127);
    }
    close (channel [1]);
    close (out [1]);
    close (err [1]);
    close (sync [0]);
    fds->channel = channel [0];
    fds->out = out [0];
    fds->err = err [0];
    shutdown (fds->out, SHUT_WR);       //  the job reads nothing from its stdout
    shutdown (fds->err, SHUT_WR);
    fds->exited = (int) syscall (SYS_pidfd_open, self->runsc, 0);
    int attached = tako_sandbox_cgroup_attach (self->cgroup, self->runsc);
    if (attached != 0 || fds->exited < 0 || write (sync [1], "S", 1) != 1) {
        close (sync [1]);
        runsc_kill (self);
        return -1;
    }
    close (sync [1]);
    fcntl (fds->out, F_SETFL, O_NONBLOCK);
    fcntl (fds->err, F_SETFL, O_NONBLOCK);
    fcntl (fds->channel, F_SETFL, O_NONBLOCK);
    return 0;
failed:
    for (int i = 0; i < 2; i++) {
        int *ends [] = { &channel [i], &out [i], &err [i], &sync [i] };
        for (size_t j = 0; j < 4; j++)
            if (*ends [j] >= 0)
                close (*ends [j]);
    }
    return -1;
}

//  Read what is there on one fd; closes it at EOF.
static void
channel_read (tako_sandbox_runsc_run_t *run, host_fds_t *fds, int *fd)
{
    char buffer [READ_CHUNK];
    ssize_t got = read (*fd, buffer, sizeof (buffer));
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (got <= 0) {
        close (*fd);
        *fd = -1;
        return;
    }
    if (fd == &fds->channel) {
        const char *rest = buffer;
        if (!run->ready_seen) {
            //  The first byte is the bootstrap's ready; later bytes are
            //  the error record.
            run->ready_seen = buffer [0] == 'R';
            rest++;
            got--;
        }
        tako_sandbox_capture_append (run->error_record, rest, (size_t) got);
        return;
    }
    bool is_stderr = fd == &fds->err;
    if (run->on_output)
        run->on_output (run->on_output_arg, is_stderr, buffer, (size_t) got);
    tako_sandbox_capture_append (is_stderr? run->err: run->out, buffer, (size_t) got);
}

typedef enum { WAIT_READY, WAIT_EXIT, WAIT_DRAIN } wait_mode_t;

static bool
wait_done (tako_sandbox_runsc_run_t *run, host_fds_t *fds, wait_mode_t mode)
{
    if (mode == WAIT_READY)
        return run->ready_seen || fds->exited < 0;
    if (mode == WAIT_EXIT)
        return fds->exited < 0;
    return fds->out < 0 && fds->err < 0 && fds->channel < 0;
}

//  Poll until mode's condition holds; 1 at the deadline, 2 on cancel.
static int
wait_for (tako_sandbox_runsc_run_t *run, host_fds_t *fds, wait_mode_t mode, int64_t deadline)
{
    while (!wait_done (run, fds, mode)) {
        struct pollfd polled [5];
        int *which [5];
        nfds_t count = 0;
        int *readers [] = { &fds->channel, &fds->out, &fds->err, &fds->exited };
        for (size_t i = 0; i < sizeof (readers) / sizeof (readers [0]); i++)
            if (*readers [i] >= 0 && !(mode == WAIT_DRAIN && readers [i] == &fds->exited)) {
                polled [count] = (struct pollfd) { *readers [i], POLLIN, 0 };
                which [count++] = readers [i];
            }
        if (run->cancel_fd >= 0 && mode != WAIT_DRAIN) {
            polled [count] = (struct pollfd) { run->cancel_fd, POLLIN, 0 };
            which [count++] = NULL;
        }
        int64_t left_ms = (deadline - now_ns () + NS_PER_MS - 1) / NS_PER_MS;
        if (left_ms <= 0)
            return 1;
        int ready = poll (polled, count, (int) (left_ms > 1000? 1000: left_ms));
        if (ready < 0 && errno != EINTR)
            return 1;
        for (nfds_t i = 0; ready > 0 && i < count; i++) {
            if (!polled [i].revents)
                continue;
            if (!which [i])
                return 2;
            if (which [i] == &fds->exited) {
                close (fds->exited);
                fds->exited = -1;
            }
            else
                channel_read (run, fds, which [i]);
            if (wait_done (run, fds, mode))
                break;
        }
    }
    return 0;
}

static void
exit_record (tako_sandbox_runsc_t *self, tako_sandbox_runsc_run_t *run)
{
    int status;
    if (self->reaped || waitpid (self->runsc, &status, 0) != self->runsc)
        return;
    self->reaped = true;
    run->have_exit = true;
    run->exit_status = status;
}

//  runsc exits with the job's exit code, or 128+N when a signal killed
//  it: back to a wait status. A job that exits with such a code itself
//  leaves an error record (the bootstrap's), which tells them apart.
static void
exit_signal_decode (tako_sandbox_runsc_run_t *run)
{
    int status = run->exit_status;
    if (run->have_exit && WIFEXITED (status) && WEXITSTATUS (status) > RUNSC_EXIT_SIGNAL_BASE
    &&  WEXITSTATUS (status) - RUNSC_EXIT_SIGNAL_BASE < NSIG && !run->error_record->size)
        run->exit_status = WEXITSTATUS (status) - RUNSC_EXIT_SIGNAL_BASE;
}

int
tako_sandbox_runsc_run (tako_sandbox_runsc_t *self, const char *code, size_t code_size,
                        const char *input, size_t input_size,
                        tako_sandbox_runsc_run_t *run, const char **error)
{
    if (self->ran) {
        *error = "a sandbox runs one job";
        return -1;
    }
    if (job_place (self, code, code_size, input, input_size) != 0) {
        *error = "cannot place the job in the bundle";
        return -1;
    }
    host_fds_t fds = { -1, -1, -1, -1 };
    int64_t started = now_ns ();
    if (runsc_start (self, &fds) != 0) {
        host_fds_close (&fds);
        *error = "cannot start runsc";
        return -1;
    }
    int rc = wait_for (run, &fds, WAIT_READY, started + run->startup_timeout_ms * NS_PER_MS);
    run->ready_ns = now_ns ();
    if (rc == 0 && !run->ready_seen) {
        //  runsc ended before the interpreter was ready: the container
        //  could not be built (runsc's reason went to stderr).
        exit_record (self, run);
        host_fds_close (&fds);
        *error = "the container did not start";
        return -1;
    }
    if (rc == 0) {
        run->handover_ns = now_ns ();
        run->job_running = send (fds.channel, "G", 1, MSG_NOSIGNAL) == 1;
        rc = wait_for (run, &fds, WAIT_EXIT, run->handover_ns + run->timeout_ms * NS_PER_MS);
    }
    run->ended_ns = now_ns ();
    run->timed_out = rc == 1;
    run->cancelled = rc == 2;
    if (rc == 0)
        exit_record (self, run);
    //  Whatever is left of the sandbox (all of it on timeout or cancel).
    runsc_stop (self);
    wait_for (run, &fds, WAIT_DRAIN, now_ns () + TAKO_SANDBOX_RUNSC_DRAIN_MS * NS_PER_MS);
    host_fds_close (&fds);
    exit_signal_decode (run);
    return 0;
}
