/*  Peers against a real `tako-vm broker` process ($TAKO_BIN, set by
    tests/run.sh): they find each other through it, and when the process is
    SIGKILLed and started again on the same endpoint they register again by
    themselves and traffic resumes. SIGTERM stops it with status 0.        */

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tako_peer.h"
#include "tako_proto.h"

#define BEAT_MS        100
#define LIVENESS       5
#define WAIT_MS        10000        //  every wait here is bounded by this
#define LINE_MAX_SIZE  512
#define LOG_PREFIX     "service broker on "

static const tako_heartbeat_t beat = { BEAT_MS, LIVENESS };

typedef struct {
    pid_t pid;
    int log_fd;                     //  the broker's stderr
    char endpoint [LINE_MAX_SIZE];
} broker_process_t;

//  Read the child's stderr until the line announcing its endpoint.
//  Returns 0, or -1 if it exited or said nothing in time.
static int
read_endpoint (broker_process_t *broker)
{
    char buffer [4 * LINE_MAX_SIZE] = "";
    size_t used = 0;
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline && used < sizeof buffer - 1) {
        struct pollfd item = { broker->log_fd, POLLIN, 0 };
        if (poll (&item, 1, 50) <= 0)
            continue;
        ssize_t got = read (broker->log_fd, buffer + used, sizeof buffer - 1 - used);
        if (got <= 0)
            return -1;
        used += (size_t) got;
        buffer [used] = '\0';
        char *found = strstr (buffer, LOG_PREFIX);
        char *end = found? strchr (found, ',') : NULL;
        if (end) {
            found += strlen (LOG_PREFIX);
            snprintf (broker->endpoint, sizeof broker->endpoint, "%.*s", (int) (end - found), found);
            return 0;
        }
    }
    return -1;
}

static int
broker_spawn (broker_process_t *broker, const char *bind)
{
    const char *binary = getenv ("TAKO_BIN");
    int pipe_fds [2];
    cr_assert_eq (pipe (pipe_fds), 0);
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0) {
        dup2 (pipe_fds [1], STDERR_FILENO);
        close (pipe_fds [0]);
        close (pipe_fds [1]);
        execl (binary, binary, "broker", "--bind", bind,
               "--events-in", "tcp://127.0.0.1:0", "--events-out", "tcp://127.0.0.1:0",
               "--heartbeat", "100", "--liveness", "5", (char *) NULL);
        _exit (127);
    }
    close (pipe_fds [1]);
    broker->pid = pid;
    broker->log_fd = pipe_fds [0];
    if (read_endpoint (broker) == 0)
        return 0;
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    close (broker->log_fd);
    return -1;
}

//  Wait for the process to exit; its status, or -1 on timeout.
static int
broker_reap (broker_process_t *broker)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    int status = 0;
    while (zclock_mono () < deadline) {
        pid_t done = waitpid (broker->pid, &status, WNOHANG);
        if (done == broker->pid) {
            close (broker->log_fd);
            return status;
        }
        zclock_sleep (10);
    }
    return -1;
}

//  The worker answers one QUERY if there is one.
static void
worker_serve (tako_peer_t *worker)
{
    tako_msg_t *request = tako_peer_recv (worker, 10);
    if (request && streq (tako_msg_command (request), "QUERY")) {
        tako_msg_t *reply = tako_msg_new ("REPLY");
        tako_msg_set_address (reply, tako_msg_address (request));
        tako_msg_set_str (reply, "request_id", tako_msg_str (request, "request_id"));
        tako_msg_set_int (reply, "code", 200);
        tako_peer_send (worker, &reply);
    }
    tako_msg_destroy (&request);
}

//  The client asks "echo" until the worker answers: while peers are still
//  (re)registering the broker says 503 or "register first", and a request
//  may be lost in a restart, so each attempt has its own short deadline.
static bool
round_trip (tako_peer_t *client, tako_peer_t *worker)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        tako_msg_t *query = tako_msg_new ("QUERY");
        tako_msg_set_address (query, "echo");
        tako_msg_set_str (query, "request_id", "r-1");
        tako_msg_set_str (query, "query", "ping");
        tako_peer_send (client, &query);
        int64_t attempt_deadline = zclock_mono () + 5 * BEAT_MS;
        while (zclock_mono () < attempt_deadline) {
            worker_serve (worker);
            tako_msg_t *answer = tako_peer_recv (client, 10);
            bool replied = answer && streq (tako_msg_command (answer), "REPLY")
                        && streq (tako_msg_address (answer), tako_peer_instance (worker));
            bool refused = answer && streq (tako_msg_command (answer), "ERROR");
            tako_msg_destroy (&answer);
            if (replied)
                return true;
            if (refused)
                break;
        }
    }
    return false;
}

Test (peer, survives_broker_process_restart)
{
    if (!getenv ("TAKO_BIN"))
        cr_skip_test ("TAKO_BIN not set (run through tests/run.sh)");
    broker_process_t broker;
    cr_assert_eq (broker_spawn (&broker, "tcp://127.0.0.1:0"), 0, "broker did not start");
    cr_assert_eq (strncmp (broker.endpoint, "tcp://127.0.0.1:", 16), 0, "endpoint %s", broker.endpoint);

    tako_peer_t *worker = tako_peer_new (broker.endpoint, "echo", &beat);
    tako_peer_t *client = tako_peer_new_client (broker.endpoint, "test", &beat);
    cr_assert (round_trip (client, worker), "no answer through the first broker");

    //  Kill it hard: nothing is said to the peers.
    cr_assert_eq (kill (broker.pid, SIGKILL), 0);
    int status = broker_reap (&broker);
    cr_assert (WIFSIGNALED (status));

    //  Same endpoint, new process. The old port is free once the process
    //  is gone; retry briefly in case the kernel is slow to let go.
    char endpoint [LINE_MAX_SIZE];
    snprintf (endpoint, sizeof endpoint, "%s", broker.endpoint);
    int64_t deadline = zclock_mono () + WAIT_MS;
    int spawned = -1;
    while (spawned != 0 && zclock_mono () < deadline)
        spawned = broker_spawn (&broker, endpoint);
    cr_assert_eq (spawned, 0, "broker did not restart on %s", endpoint);
    cr_assert_str_eq (broker.endpoint, endpoint);

    cr_assert (round_trip (client, worker), "no answer through the restarted broker");
    cr_assert_geq (tako_peer_registrations (worker), 2);
    cr_assert_geq (tako_peer_registrations (client), 2);

    tako_peer_destroy (&client);
    tako_peer_destroy (&worker);
    cr_assert_eq (kill (broker.pid, SIGTERM), 0);
    status = broker_reap (&broker);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
}
