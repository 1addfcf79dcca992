/*  tako_supervisor — keep a set of child processes running.

    `tako-vm server --processes` runs the broker and every actor as a child
    process and uses a supervisor to keep them alive: each child is
    started at once (fork + exec), and when one dies it is started again
    after a back-off that doubles from backoff_first_ms up to
    backoff_max_ms and starts over once a child has stayed up stable_ms.
    The other children keep running meanwhile.

    Children are tied to the supervisor: each gets PR_SET_PDEATHSIG
    (SIGTERM) so it stops when the supervising thread dies, checks that
    its parent is still the supervisor before exec, runs in its own
    process group (a terminal's Ctrl-C reaches the supervisor only, which
    then stops the children in order), and inherits no descriptor but
    stdin, stdout and stderr.

        tako_supervisor_t *supervisor = tako_supervisor_new (NULL);
        const char *argv [] = { "/usr/bin/tako-vm", "broker", NULL };
        tako_supervisor_add (supervisor, "broker", argv, NULL);
        while (!zsys_interrupted)
            tako_supervisor_wait (supervisor, 1000, -1); //  reaps, restarts
        tako_supervisor_destroy (&supervisor);           //  stops, last added first

    The supervisor must be used from one thread, the one that created it
    (the death signal follows the thread that forked).                     */

#ifndef TAKO_SUPERVISOR_H_INCLUDED
#define TAKO_SUPERVISOR_H_INCLUDED

#include <stdbool.h>
#include <sys/types.h>

//  Default policy.
#define TAKO_SUPERVISOR_BACKOFF_FIRST_MS  100
#define TAKO_SUPERVISOR_BACKOFF_MAX_MS    5000
#define TAKO_SUPERVISOR_STABLE_MS         10000
#define TAKO_SUPERVISOR_STOP_GRACE_MS     10000
//  Most children one supervisor keeps; names are at most this long.
#define TAKO_SUPERVISOR_CHILDREN_MAX      32
#define TAKO_SUPERVISOR_NAME_MAX          32

typedef struct {
    int backoff_first_ms;       //  first restart delay; <= 0: default
    int backoff_max_ms;         //  the delay doubles up to this; <= 0: default
    int stable_ms;              //  up this long = healthy, delay resets; <= 0: default
    int stop_grace_ms;          //  SIGTERM, then SIGKILL after this; <= 0: default
} tako_supervisor_policy_t;

typedef struct _tako_supervisor_t tako_supervisor_t;

//  A supervisor with this policy (NULL: the defaults), or NULL.
tako_supervisor_t *tako_supervisor_new (const tako_supervisor_policy_t *policy);

//  Stop every child (last added first), free, NULL *self_p; safe twice.
void tako_supervisor_destroy (tako_supervisor_t **self_p);

//  Add a child and start it now. argv [0] is the program's path; env
//  lists extra "NAME=VALUE" entries added to this process's environment
//  (NULL: none). Both are copied. 0, or -1 if the name is taken, too
//  long, or there are too many children.
int tako_supervisor_add (tako_supervisor_t *self, const char *name,
                         const char *const *argv, const char *const *env);

//  Wait up to timeout_ms for a child to exit or a restart to fall due,
//  then reap dead children and start those whose delay has passed.
//  Returns early when a signal interrupts the wait or wake_fd (>= 0, e.g.
//  a signalfd; -1: none) becomes readable. Returns how many children
//  died during the call.
int tako_supervisor_wait (tako_supervisor_t *self, int timeout_ms, int wake_fd);

//  Stop one child (SIGTERM, SIGKILL after the grace period) and never
//  restart it. 0, or -1 if there is no such child.
int tako_supervisor_stop (tako_supervisor_t *self, const char *name);

//  Stop every child, last added first.
void tako_supervisor_stop_all (tako_supervisor_t *self);

//  The child's pid, 0 while it waits for a restart or after a stop, -1
//  if there is no such child.
pid_t tako_supervisor_pid (tako_supervisor_t *self, const char *name);

//  How many times the child was restarted after dying; -1 if unknown.
int tako_supervisor_restarts (tako_supervisor_t *self, const char *name);

void tako_supervisor_test (bool verbose);

#endif
