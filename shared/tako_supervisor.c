/*  tako_supervisor — keep a set of child processes running.

    Children are watched through pidfds (readable when the child exits),
    so the supervisor needs no SIGCHLD handler and never reaps a process
    it did not start: other parts of the process (PostgreSQL's pg_ctl,
    sandboxes) wait for their own children undisturbed.                   */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include "tako_log.h"
#include "tako_supervisor.h"

#define LOG "supervisor"

//  How often a stop re-checks a child that has no pidfd.
#define WAIT_SLICE_MS      20
//  Exit status of a child that found its supervisor gone before exec,
//  or could not exec at all (the shell's convention).
#define CHILD_EXIT_ORPHANED 125
#define CHILD_EXIT_NO_EXEC  127
#define MS_PER_SECOND       1000
#define NS_PER_MS           1000000

extern char **environ;

typedef struct {
    char name [TAKO_SUPERVISOR_NAME_MAX + 1];
    char **argv;                //  NULL-terminated copy
    char **env;                 //  extra NAME=VALUE entries, NULL-terminated copy
    pid_t pid;                  //  0 while not running
    int pidfd;                  //  -1 while not running (or no pidfd support)
    int64_t started_at;         //  monotonic ms of the latest start
    int64_t restart_at;         //  when pid is 0 and not stopped: next start
    int backoff_ms;             //  the delay before the next restart
    int restarts;
    bool stopped;               //  stopped on purpose: never restart
} child_t;

struct _tako_supervisor_t {
    tako_supervisor_policy_t policy;
    child_t *children [TAKO_SUPERVISOR_CHILDREN_MAX];
    size_t count;
};

//  --------------------------------------------------------------------------
//  Helpers

static int64_t
now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * MS_PER_SECOND + now.tv_nsec / NS_PER_MS;
}

static void
strings_free (char **strings)
{
    if (!strings)
        return;
    for (char **string = strings; *string; string++)
        free (*string);
    free (strings);
}

//  A NULL-terminated deep copy of a NULL-terminated array (NULL → empty).
static char **
strings_copy (const char *const *strings)
{
    size_t count = 0;
    while (strings && strings [count])
        count++;
    char **copy = calloc (count + 1, sizeof (char *));
    for (size_t i = 0; copy && i < count; i++)
        if (!(copy [i] = strdup (strings [i]))) {
            strings_free (copy);
            return NULL;
        }
    return copy;
}

//  True if "NAME=VALUE" entry sets the variable named in assignment.
static bool
env_same_name (const char *entry, const char *assignment)
{
    size_t length = strcspn (assignment, "=");
    return strncmp (entry, assignment, length) == 0 && entry [length] == '=';
}

//  This process's environment plus the child's extra entries, which win
//  over variables of the same name. The strings are borrowed.
static char **
env_build (child_t *child)
{
    size_t count = 0, extra = 0;
    while (environ && environ [count])
        count++;
    while (child->env [extra])
        extra++;
    char **envp = calloc (count + extra + 1, sizeof (char *));
    if (!envp)
        return NULL;
    size_t filled = 0;
    for (size_t i = 0; i < count; i++) {
        bool overridden = false;
        for (size_t j = 0; j < extra && !overridden; j++)
            overridden = env_same_name (environ [i], child->env [j]);
        if (!overridden)
            envp [filled++] = environ [i];
    }
    for (size_t j = 0; j < extra; j++)
        envp [filled++] = child->env [j];
    return envp;
}

static child_t *
child_find (tako_supervisor_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp (self->children [i]->name, name) == 0)
            return self->children [i];
    return NULL;
}

static void
child_destroy (child_t **child_p)
{
    child_t *child = *child_p;
    if (!child)
        return;
    if (child->pidfd >= 0)
        close (child->pidfd);
    strings_free (child->argv);
    strings_free (child->env);
    free (child);
    *child_p = NULL;
}

//  --------------------------------------------------------------------------
//  Starting and reaping

//  In the forked child: only async-signal-safe calls until exec.
static void
child_exec (child_t *child, char **envp, pid_t supervisor)
{
    //  Die with the supervisor; if it is already gone, do not start.
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != supervisor)
        _exit (CHILD_EXIT_ORPHANED);
    //  Own process group: a terminal's Ctrl-C goes to the supervisor,
    //  which stops the children in the right order.
    setpgid (0, 0);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    signal (SIGPIPE, SIG_DFL);
    int null_fd = open ("/dev/null", O_RDONLY);
    if (null_fd > 0) {
        dup2 (null_fd, STDIN_FILENO);
        close (null_fd);
    }
    close_range (STDERR_FILENO + 1, ~0U, 0);
    execve (child->argv [0], child->argv, envp);
    _exit (CHILD_EXIT_NO_EXEC);
}

static void
child_schedule_restart (tako_supervisor_t *self, child_t *child, int64_t now)
{
    child->restart_at = now + child->backoff_ms;
    child->backoff_ms *= 2;
    if (child->backoff_ms > self->policy.backoff_max_ms)
        child->backoff_ms = self->policy.backoff_max_ms;
}

static void
child_start (tako_supervisor_t *self, child_t *child)
{
    char **envp = env_build (child);
    pid_t supervisor = getpid ();
    pid_t pid = envp? fork (): -1;
    if (pid == 0)
        child_exec (child, envp, supervisor);
    free (envp);
    int64_t now = now_ms ();
    if (pid < 0) {
        tako_error (LOG, "cannot start %s: %s", child->name, strerror (errno));
        child_schedule_restart (self, child, now);
        return;
    }
    child->pid = pid;
    child->pidfd = pidfd_open (pid, 0);
    child->started_at = now;
    tako_info (LOG, "%s running as pid %d", child->name, (int) pid);
}

static void
child_log_exit (child_t *child, int status, int delay_ms)
{
    if (WIFSIGNALED (status))
        tako_warning (LOG, "%s (pid %d) killed by signal %d; restarting in %d ms",
                      child->name, (int) child->pid, WTERMSIG (status), delay_ms);
    else
        tako_warning (LOG, "%s (pid %d) exited with status %d; restarting in %d ms",
                      child->name, (int) child->pid, WEXITSTATUS (status), delay_ms);
}

//  The child is gone: forget its pid, plan the restart.
static void
child_reaped (tako_supervisor_t *self, child_t *child, int status)
{
    int64_t now = now_ms ();
    //  A child that stayed up long enough was healthy: start over fast.
    if (now - child->started_at >= self->policy.stable_ms)
        child->backoff_ms = self->policy.backoff_first_ms;
    if (!child->stopped)
        child_log_exit (child, status, child->backoff_ms);
    if (child->pidfd >= 0)
        close (child->pidfd);
    child->pidfd = -1;
    child->pid = 0;
    if (!child->stopped)
        child_schedule_restart (self, child, now);
}

//  Reap the child if it exited. True if it did (or is not running).
static bool
child_reap (tako_supervisor_t *self, child_t *child)
{
    if (child->pid <= 0)
        return true;
    int status = 0;
    pid_t reaped = waitpid (child->pid, &status, WNOHANG);
    if (reaped == 0)
        return false;
    if (reaped < 0)
        status = 0;         //  not ours any more (ECHILD): treat as gone
    child_reaped (self, child, status);
    return true;
}

//  Wait up to timeout_ms for the child to exit. True once it has.
static bool
child_wait_exit (tako_supervisor_t *self, child_t *child, int timeout_ms)
{
    int64_t deadline = now_ms () + timeout_ms;
    while (!child_reap (self, child)) {
        int64_t left = deadline - now_ms ();
        if (left <= 0)
            return false;
        struct pollfd item = { child->pidfd, POLLIN, 0 };
        if (child->pidfd >= 0)
            poll (&item, 1, (int) left);
        else
            poll (NULL, 0, left < WAIT_SLICE_MS? (int) left: WAIT_SLICE_MS);
    }
    return true;
}

static void
child_stop (tako_supervisor_t *self, child_t *child)
{
    child->stopped = true;
    if (child->pid <= 0)
        return;
    tako_info (LOG, "stopping %s (pid %d)", child->name, (int) child->pid);
    kill (child->pid, SIGTERM);
    if (!child_wait_exit (self, child, self->policy.stop_grace_ms)) {
        tako_warning (LOG, "%s did not stop within %d ms: killing it", child->name,
                      self->policy.stop_grace_ms);
        kill (child->pid, SIGKILL);
        child_wait_exit (self, child, self->policy.stop_grace_ms);
    }
}

//  --------------------------------------------------------------------------
//  Public API

tako_supervisor_t *
tako_supervisor_new (const tako_supervisor_policy_t *policy)
{
    tako_supervisor_t *self = calloc (1, sizeof (tako_supervisor_t));
    if (!self)
        return NULL;
    tako_supervisor_policy_t given = policy? *policy: (tako_supervisor_policy_t) { 0 };
    self->policy.backoff_first_ms = given.backoff_first_ms > 0? given.backoff_first_ms
                                                              : TAKO_SUPERVISOR_BACKOFF_FIRST_MS;
    self->policy.backoff_max_ms = given.backoff_max_ms > 0? given.backoff_max_ms
                                                          : TAKO_SUPERVISOR_BACKOFF_MAX_MS;
    self->policy.stable_ms = given.stable_ms > 0? given.stable_ms: TAKO_SUPERVISOR_STABLE_MS;
    self->policy.stop_grace_ms = given.stop_grace_ms > 0? given.stop_grace_ms
                                                        : TAKO_SUPERVISOR_STOP_GRACE_MS;
    if (self->policy.backoff_max_ms < self->policy.backoff_first_ms)
        self->policy.backoff_max_ms = self->policy.backoff_first_ms;
    return self;
}

void
tako_supervisor_destroy (tako_supervisor_t **self_p)
{
    tako_supervisor_t *self = *self_p;
    if (!self)
        return;
    tako_supervisor_stop_all (self);
    for (size_t i = 0; i < self->count; i++)
        child_destroy (&self->children [i]);
    free (self);
    *self_p = NULL;
}

int
tako_supervisor_add (tako_supervisor_t *self, const char *name,
                     const char *const *argv, const char *const *env)
{
    if (!name || !*name || strlen (name) > TAKO_SUPERVISOR_NAME_MAX
    ||  !argv || !argv [0] || child_find (self, name)
    ||  self->count >= TAKO_SUPERVISOR_CHILDREN_MAX)
        return -1;
    child_t *child = calloc (1, sizeof (child_t));
    if (!child)
        return -1;
    snprintf (child->name, sizeof child->name, "%s", name);
    child->argv = strings_copy (argv);
    child->env = strings_copy (env);
    child->pidfd = -1;
    child->backoff_ms = self->policy.backoff_first_ms;
    if (!child->argv || !child->env) {
        child_destroy (&child);
        return -1;
    }
    self->children [self->count++] = child;
    child_start (self, child);
    return 0;
}

//  Milliseconds until the earliest restart falls due, capped at limit.
static int
restart_due_ms (tako_supervisor_t *self, int limit, int64_t now)
{
    int64_t due = limit;
    for (size_t i = 0; i < self->count; i++) {
        child_t *child = self->children [i];
        if (child->pid == 0 && !child->stopped && child->restart_at - now < due)
            due = child->restart_at - now;
    }
    return due > 0? (int) due: 0;
}

int
tako_supervisor_wait (tako_supervisor_t *self, int timeout_ms, int wake_fd)
{
    struct pollfd items [TAKO_SUPERVISOR_CHILDREN_MAX + 1];
    nfds_t count = 0;
    if (wake_fd >= 0)
        items [count++] = (struct pollfd) { wake_fd, POLLIN, 0 };
    bool any_without_pidfd = false;
    for (size_t i = 0; i < self->count; i++) {
        child_t *child = self->children [i];
        if (child->pid > 0 && child->pidfd >= 0)
            items [count++] = (struct pollfd) { child->pidfd, POLLIN, 0 };
        any_without_pidfd |= child->pid > 0 && child->pidfd < 0;
    }
    int wait_ms = restart_due_ms (self, timeout_ms < 0? INT32_MAX: timeout_ms, now_ms ());
    if (any_without_pidfd && wait_ms > WAIT_SLICE_MS)
        wait_ms = WAIT_SLICE_MS;
    poll (items, count, wait_ms);       //  EINTR: a signal; fall through

    int died = 0;
    for (size_t i = 0; i < self->count; i++) {
        child_t *child = self->children [i];
        if (child->pid > 0 && child_reap (self, child))
            died++;
    }
    int64_t now = now_ms ();
    for (size_t i = 0; i < self->count; i++) {
        child_t *child = self->children [i];
        if (child->pid == 0 && !child->stopped && now >= child->restart_at) {
            child->restarts++;
            child_start (self, child);
        }
    }
    return died;
}

int
tako_supervisor_stop (tako_supervisor_t *self, const char *name)
{
    child_t *child = child_find (self, name);
    if (!child)
        return -1;
    child_stop (self, child);
    return 0;
}

void
tako_supervisor_stop_all (tako_supervisor_t *self)
{
    for (size_t i = self->count; i > 0; i--)
        child_stop (self, self->children [i - 1]);
}

pid_t
tako_supervisor_pid (tako_supervisor_t *self, const char *name)
{
    child_t *child = child_find (self, name);
    return child? child->pid: -1;
}

int
tako_supervisor_restarts (tako_supervisor_t *self, const char *name)
{
    child_t *child = child_find (self, name);
    return child? child->restarts: -1;
}

//  --------------------------------------------------------------------------
//  Self-test

//  Call tako_supervisor_wait until the child runs with a pid other than
//  `old`; the new pid, or 0 after timeout_ms.
static pid_t
test_wait_restart (tako_supervisor_t *supervisor, const char *name, pid_t old, int timeout_ms)
{
    int64_t deadline = now_ms () + timeout_ms;
    while (now_ms () < deadline) {
        tako_supervisor_wait (supervisor, WAIT_SLICE_MS, -1);
        pid_t pid = tako_supervisor_pid (supervisor, name);
        if (pid > 0 && pid != old)
            return pid;
    }
    return 0;
}

void
tako_supervisor_test (bool verbose)
{
    (void) verbose;
    tako_log_set_level (TAKO_LOG_CRITICAL);     //  restarts log warnings
    //  Short delays so the test is quick: 10 ms doubling to 40 ms.
    tako_supervisor_policy_t policy = { 10, 40, 60000, 2000 };
    tako_supervisor_t *supervisor = tako_supervisor_new (&policy);
    assert (supervisor);

    //  A child runs at once and comes back after SIGKILL, with a new pid.
    const char *sleeper [] = { "/bin/sh", "-c", "exec sleep 30", NULL };
    assert (tako_supervisor_add (supervisor, "sleeper", sleeper, NULL) == 0);
    assert (tako_supervisor_add (supervisor, "sleeper", sleeper, NULL) == -1);
    pid_t first = tako_supervisor_pid (supervisor, "sleeper");
    assert (first > 0);
    assert (kill (first, SIGKILL) == 0);
    pid_t second = test_wait_restart (supervisor, "sleeper", first, 5000);
    assert (second > 0 && second != first);
    assert (tako_supervisor_restarts (supervisor, "sleeper") == 1);

    //  Extra environment reaches the child: this one exits at once
    //  (and would be restarted) if the variable is missing.
    const char *probe [] = { "/bin/sh", "-c", "[ \"$TAKO_SUPERVISOR_PROBE\" = yes ] && exec sleep 30", NULL };
    const char *probe_env [] = { "TAKO_SUPERVISOR_PROBE=yes", NULL };
    assert (tako_supervisor_add (supervisor, "probe", probe, probe_env) == 0);

    //  A child that always fails is restarted again and again, with the
    //  delay doubling up to the cap: about 10+20+40+40... ms apart.
    const char *failing [] = { "/bin/sh", "-c", "exit 3", NULL };
    assert (tako_supervisor_add (supervisor, "failing", failing, NULL) == 0);
    //  Wait for three restarts (a deadline, not a fixed time: under
    //  valgrind on a loaded machine each fork is slow); the backoff
    //  allows at most one restart per 10 ms of elapsed time.
    int64_t started = now_ms ();
    int64_t until = started + 10000;
    while (tako_supervisor_restarts (supervisor, "failing") < 3 && now_ms () < until)
        tako_supervisor_wait (supervisor, WAIT_SLICE_MS, -1);
    int restarts = tako_supervisor_restarts (supervisor, "failing");
    int64_t elapsed = now_ms () - started;
    assert (restarts >= 3 && restarts <= elapsed / 10 + 1);
    assert (tako_supervisor_restarts (supervisor, "probe") == 0);
    assert (tako_supervisor_pid (supervisor, "probe") > 0);

    //  A readable wake_fd (e.g. a signalfd) ends the wait at once (with
    //  no restart due, it would otherwise last the whole timeout).
    assert (tako_supervisor_stop (supervisor, "failing") == 0);
    int wake [2];
    assert (pipe (wake) == 0);
    assert (write (wake [1], "x", 1) == 1);
    int64_t before = now_ms ();
    tako_supervisor_wait (supervisor, 5000, wake [0]);
    assert (now_ms () - before < 1000);
    close (wake [0]);
    close (wake [1]);

    //  A stopped child is gone for good.
    assert (tako_supervisor_stop (supervisor, "sleeper") == 0);
    assert (tako_supervisor_pid (supervisor, "sleeper") == 0);
    assert (kill (second, 0) == -1 && errno == ESRCH);
    tako_supervisor_wait (supervisor, 50, -1);
    assert (tako_supervisor_pid (supervisor, "sleeper") == 0);
    assert (tako_supervisor_stop (supervisor, "nobody") == -1);
    assert (tako_supervisor_pid (supervisor, "nobody") == -1);

    pid_t probe_pid = tako_supervisor_pid (supervisor, "probe");
    tako_supervisor_destroy (&supervisor);
    tako_supervisor_destroy (&supervisor);
    assert (supervisor == NULL);
    assert (kill (probe_pid, 0) == -1 && errno == ESRCH);
    tako_log_set_level (TAKO_LOG_INFO);
}
