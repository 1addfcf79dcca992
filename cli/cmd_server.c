/*  tako-vm server [--processes] — run everything on this host.

    Starts the service broker and the event hub on the configured
    endpoints; the private PostgreSQL under data_dir when database_url is
    empty; then the recorder, scheduler, dlq and executor actors — as
    threads of this process, or with --processes each (and the broker) as
    a supervised child process that is restarted when it dies.

    SIGINT and SIGTERM stop everything in order: running jobs are
    cancelled through the scheduler while the scheduler and recorder still
    run (so each is recorded as cancelled), then the executor stops, then
    the other actors, then the broker, and the database last. Exit 0 after
    a clean stop, 1 when something could not start or an actor thread
    ended on its own.

    The signals are blocked in every thread and read from a signalfd, so
    no actor sees them: czmq's zsys_interrupted would otherwise stop each
    actor on its own, in no particular order.                            */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <czmq.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_log.h"
#include "tako_actors.h"
#include "tako_client.h"
#include "tako_pgcluster.h"
#include "tako_supervisor.h"
#include "brokers/tako_broker.h"
#include "brokers/tako_hub.h"

#define SERVER_CLI_COMPONENT "server"

//  Shutdown: how long running jobs get to be cancelled and recorded,
//  how long one question to the scheduler or recorder may take, how
//  often the recorder is asked whether jobs still run.
#define DRAIN_TIMEOUT_MS        5000
#define DRAIN_QUERY_MS          2000
#define DRAIN_POLL_MS           100
#define DRAIN_LIST_LIMIT        1000
//  How often the threads loop looks at the signalfd.
#define SIGNAL_CHECK_MS         100
//  Longest command line of a child: program, globals, actor options.
#define CHILD_ARGS_MAX          16
//  The configuration override that hands the recorder child its database.
#define DATABASE_URL_ENV        "TAKO_VM_DATABASE_URL"

typedef struct {
    tako_cli_t *cli;
    tako_config_t *config;
    bool processes;
    int signal_fd;
    tako_pgcluster_t *cluster;      //  the private PostgreSQL, or NULL
    const char *database_url;       //  what the recorder connects to
} server_t;

//  --------------------------------------------------------------------------
//  Signals

//  Block SIGINT and SIGTERM in this thread and every thread it starts
//  from now on, and return a signalfd that reads them (-1 on failure).
static int
signals_take (void)
{
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGINT);
    sigaddset (&set, SIGTERM);
    if (pthread_sigmask (SIG_BLOCK, &set, NULL) != 0)
        return -1;
    return signalfd (-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

//  True (and logs it) if SIGINT or SIGTERM arrived.
static bool
signal_received (int signal_fd)
{
    struct signalfd_siginfo info;
    if (read (signal_fd, &info, sizeof info) != (ssize_t) sizeof info)
        return false;
    tako_info (SERVER_CLI_COMPONENT, "%s received: stopping",
               info.ssi_signo == SIGINT? "SIGINT": "SIGTERM");
    return true;
}

//  --------------------------------------------------------------------------
//  Database

static int
database_start (server_t *self)
{
    if (self->config->database_url && *self->config->database_url) {
        self->database_url = self->config->database_url;
        tako_info (SERVER_CLI_COMPONENT, "database: the configured database_url");
        return 0;
    }
    self->cluster = tako_pgcluster_new (self->config->data_dir);
    if (!self->cluster) {
        fprintf (stderr, "tako-vm server: data_dir is empty or too long\n");
        return -1;
    }
    if (tako_pgcluster_start (self->cluster)) {
        fprintf (stderr, "tako-vm server: cannot start PostgreSQL: %s\n",
                 tako_pgcluster_error (self->cluster));
        tako_pgcluster_destroy (&self->cluster);
        return -1;
    }
    self->database_url = tako_pgcluster_url (self->cluster);
    tako_info (SERVER_CLI_COMPONENT, "database: private PostgreSQL (pid %d), log in %s",
               (int) tako_pgcluster_pid (self->cluster), tako_pgcluster_log_path (self->cluster));
    return 0;
}

static void
database_stop (server_t *self)
{
    if (!self->cluster)
        return;
    if (tako_pgcluster_stop (self->cluster))
        tako_error (SERVER_CLI_COMPONENT, "cannot stop PostgreSQL: %s",
                    tako_pgcluster_error (self->cluster));
    else
        tako_info (SERVER_CLI_COMPONENT, "database stopped");
    tako_pgcluster_destroy (&self->cluster);
}

//  --------------------------------------------------------------------------
//  Shutdown: cancel running jobs while their results can still be recorded

//  Ids of the jobs the recorder has as running (a new array), or NULL
//  when it does not answer.
static json_t *
jobs_running (tako_client_t *client)
{
    json_t *params = json_pack ("{s:s, s:i}", "status", "running", "limit", DRAIN_LIST_LIMIT);
    json_t *page = NULL;
    int code = tako_client_query (client, "recorder", "job.list", params, DRAIN_QUERY_MS,
                                  &page, NULL);
    json_decref (params);
    json_t *ids = code == 200? json_array (): NULL;
    size_t index;
    json_t *item;
    json_array_foreach (json_object_get (page, "items"), index, item) {
        json_t *id = json_object_get (item, "execution_id");
        if (json_is_string (id))
            json_array_append (ids, id);
    }
    json_decref (page);
    return ids;
}

static void
job_cancel (tako_client_t *client, const char *job_id)
{
    tako_msg_t *cancel = tako_msg_new ("CANCEL");
    tako_msg_set_address (cancel, "scheduler");
    tako_msg_set_str (cancel, "job_id", job_id);
    tako_msg_set_str (cancel, "reason", "server shutting down");
    tako_msg_t *answer = tako_client_request (client, &cancel, DRAIN_QUERY_MS);
    if (!answer || tako_msg_int (answer, "code", 0) != 200)
        tako_warning (SERVER_CLI_COMPONENT, "job %s: cancel not confirmed", job_id);
    tako_msg_destroy (&answer);
}

//  Cancel every running job through the scheduler, then wait (bounded)
//  until the recorder has none running. Best effort: when the scheduler
//  or the recorder is gone, the jobs stay running in the record and a
//  restarted scheduler retries them.
static void
jobs_drain (server_t *self)
{
    tako_client_t *client = tako_client_new (self->config->broker_endpoint, NULL);
    if (!client)
        return;
    int64_t deadline = zclock_mono () + DRAIN_TIMEOUT_MS;
    json_t *running = jobs_running (client);
    size_t count = json_array_size (running);
    if (count > 0)
        tako_info (SERVER_CLI_COMPONENT, "cancelling %zu running job%s", count, count == 1? "": "s");
    size_t index;
    json_t *job_id;
    json_array_foreach (running, index, job_id)
        job_cancel (client, json_string_value (job_id));
    json_decref (running);
    while (count > 0 && zclock_mono () < deadline) {
        running = jobs_running (client);
        count = running? json_array_size (running): 0;
        json_decref (running);
        if (count > 0)
            zclock_sleep (DRAIN_POLL_MS);
    }
    if (count > 0)
        tako_warning (SERVER_CLI_COMPONENT, "%zu job%s still running at shutdown", count,
                      count == 1? "": "s");
    tako_client_destroy (&client);
}

//  --------------------------------------------------------------------------
//  Threads: everything in this process

//  Start the actors in order; 0, or -1 (reported) if one would not start.
static int
actors_start (tako_actors_t *actors)
{
    for (const char *const *name = tako_actors_start_order (); *name; name++)
        if (tako_actors_start (actors, *name)) {
            fprintf (stderr, "tako-vm server: cannot start the %s\n", *name);
            return -1;
        }
    return 0;
}

//  Until a signal (0) or until something stops on its own (1).
static int
threads_wait (server_t *self, zactor_t *broker, zactor_t *hub, tako_actors_t *actors)
{
    zpoller_t *poller = zpoller_new (broker, hub, NULL);
    tako_actors_poll (actors, poller);
    //  Our signals are blocked, so zsys_interrupted never ends this wait.
    zpoller_set_nonstop (poller, true);
    int rc = 0;
    while (!signal_received (self->signal_fd)) {
        void *which = zpoller_wait (poller, SIGNAL_CHECK_MS);
        if (!which)
            continue;
        const char *name = which == broker? "broker": which == hub? "event hub"
                                                                  : tako_actors_check (actors, which);
        tako_error (SERVER_CLI_COMPONENT, "the %s stopped on its own: stopping everything",
                    name? name: "unknown actor");
        rc = 1;
        break;
    }
    zpoller_destroy (&poller);
    return rc;
}

//  In one process the actors reach the broker and the hub in-process:
//  a message then goes from thread to thread, not through TCP and
//  ZeroMQ's I/O thread. The configured endpoints stay bound for the CLI
//  and for actors of other processes.
#define INPROC_BROKER         "inproc://tako-broker"
#define INPROC_EVENTS_IN      "inproc://tako-events-in"
#define INPROC_EVENTS_OUT     "inproc://tako-events-out"

static void
config_endpoint_set (char **field, const char *endpoint)
{
    char *copy = strdup (endpoint);
    if (copy) {
        free (*field);
        *field = copy;
    }
}

static int
serve_threads (server_t *self)
{
    tako_broker_args_t broker_args = { self->config->broker_endpoint, 0, 0, INPROC_BROKER };
    tako_hub_args_t hub_args = { self->config->event_publish_endpoint,
                                 self->config->event_subscribe_endpoint,
                                 INPROC_EVENTS_IN, INPROC_EVENTS_OUT };
    zactor_t *broker = zactor_new (tako_broker_actor, &broker_args);
    zactor_t *hub = zactor_new (tako_hub_actor, &hub_args);
    char *endpoint = broker? tako_broker_endpoint (broker): NULL;
    char *publish = NULL, *subscribe = NULL;
    int hub_rc = hub? tako_hub_endpoints (hub, &publish, &subscribe): -1;
    if (endpoint && hub_rc == 0) {
        config_endpoint_set (&self->config->broker_endpoint, INPROC_BROKER);
        config_endpoint_set (&self->config->event_publish_endpoint, INPROC_EVENTS_IN);
        config_endpoint_set (&self->config->event_subscribe_endpoint, INPROC_EVENTS_OUT);
    }
    tako_actors_options_t options = { .config = self->config, .database_url = self->database_url };
    tako_actors_t *actors = tako_actors_new (&options);
    int rc = 1;
    if (!endpoint || hub_rc != 0)
        fprintf (stderr, "tako-vm server: cannot bind %s\n", endpoint? "the event hub": "the service broker");
    else
    if (actors && actors_start (actors) == 0) {
        tako_info (SERVER_CLI_COMPONENT, "service broker on %s; events in %s, out %s",
                   endpoint, publish, subscribe);
        tako_info (SERVER_CLI_COMPONENT, "running (threads, pid %d)", (int) getpid ());
        rc = threads_wait (self, broker, hub, actors);
        jobs_drain (self);
        tako_actors_stop (actors, "executor");
    }
    tako_actors_destroy (&actors);      //  the others, last started first
    zstr_free (&endpoint);
    zstr_free (&publish);
    zstr_free (&subscribe);
    zactor_destroy (&hub);
    zactor_destroy (&broker);
    return rc;
}

//  --------------------------------------------------------------------------
//  Processes: the broker and each actor as a supervised child

//  Append "tako-vm [--config F] [-v]" to args; returns how many.
static int
child_args_base (server_t *self, const char *program, const char **args)
{
    int count = 0;
    args [count++] = program;
    if (self->cli->config_path) {
        args [count++] = "--config";
        args [count++] = self->cli->config_path;
    }
    if (self->cli->verbose)
        args [count++] = "-v";
    return count;
}

static int
children_add (server_t *self, tako_supervisor_t *supervisor, const char *program)
{
    const char *args [CHILD_ARGS_MAX];
    int count = child_args_base (self, program, args);
    args [count++] = "broker";
    args [count] = NULL;
    if (tako_supervisor_add (supervisor, "broker", args, NULL))
        return -1;
    char *database_env = NULL;
    if (asprintf (&database_env, "%s=%s", DATABASE_URL_ENV, self->database_url) < 0)
        return -1;
    int rc = 0;
    for (const char *const *name = tako_actors_start_order (); *name; name++) {
        count = child_args_base (self, program, args);
        args [count++] = "actor";
        args [count++] = *name;
        args [count++] = "--connect";
        args [count++] = self->config->broker_endpoint;
        args [count] = NULL;
        //  The recorder learns the URL from its environment, not its
        //  command line, which every local user can read.
        const char *env [] = { database_env, NULL };
        if (tako_supervisor_add (supervisor, *name, args, streq (*name, "recorder")? env: NULL))
            rc = -1;
    }
    free (database_env);
    return rc;
}

static int
serve_processes (server_t *self)
{
    char program [PATH_MAX];
    ssize_t length = readlink ("/proc/self/exe", program, sizeof program - 1);
    if (length <= 0) {
        fprintf (stderr, "tako-vm server: cannot find its own executable: %s\n", strerror (errno));
        return 1;
    }
    program [length] = '\0';
    tako_supervisor_t *supervisor = tako_supervisor_new (NULL);
    if (!supervisor || children_add (self, supervisor, program)) {
        fprintf (stderr, "tako-vm server: cannot start the child processes\n");
        tako_supervisor_destroy (&supervisor);
        return 1;
    }
    tako_info (SERVER_CLI_COMPONENT, "running (processes, supervisor pid %d)", (int) getpid ());
    while (!signal_received (self->signal_fd))
        tako_supervisor_wait (supervisor, -1, self->signal_fd);
    jobs_drain (self);
    tako_supervisor_stop (supervisor, "executor");
    tako_supervisor_destroy (&supervisor);  //  the others, last started first
    return 0;
}

//  --------------------------------------------------------------------------
//  Command

static int
server_parse (int argc, char **argv, bool *processes)
{
    for (int arg = 1; arg < argc; arg++) {
        if (streq (argv [arg], "--processes"))
            *processes = true;
        else {
            fprintf (stderr, "tako-vm server: unknown argument '%s' (see tako-vm server --help)\n",
                     argv [arg]);
            return 2;
        }
    }
    return 0;
}

static int
server_run (tako_cli_t *cli, int argc, char **argv)
{
    server_t self = { .cli = cli, .signal_fd = -1 };
    int rc = server_parse (argc, argv, &self.processes);
    if (rc)
        return rc;
    //  Before any thread exists, so that every thread inherits the mask.
    self.signal_fd = signals_take ();
    if (self.signal_fd < 0) {
        fprintf (stderr, "tako-vm server: cannot take SIGINT/SIGTERM: %s\n", strerror (errno));
        return 1;
    }
    char *problems = NULL;
    self.config = tako_config_load (cli->config_path, &problems);
    if (!self.config) {
        fputs (problems? problems: "tako-vm server: cannot load the configuration\n", stderr);
        free (problems);
        close (self.signal_fd);
        return 1;
    }
    tako_log_set_level (cli->verbose? TAKO_LOG_DEBUG: self.config->log_level);
    zsys_handler_set (NULL);
    zsys_init ();
    rc = 1;
    if (database_start (&self) == 0) {
        rc = self.processes? serve_processes (&self): serve_threads (&self);
        database_stop (&self);
    }
    tako_info (SERVER_CLI_COMPONENT, "stopped");
    tako_config_destroy (&self.config);
    close (self.signal_fd);
    return rc;
}

const tako_command_t tako_command_server = {
    "server", "[--processes]",
    "run the broker, the database and every actor on this host", server_run,
    "Runs the service broker and event hub (broker_endpoint,\n"
    "event_publish_endpoint, event_subscribe_endpoint), the private PostgreSQL\n"
    "under data_dir when database_url is empty, and the recorder, scheduler,\n"
    "dlq and executor actors, until SIGINT or SIGTERM.\n"
    "\n"
    "On SIGINT/SIGTERM running jobs are cancelled (and recorded as cancelled),\n"
    "then the actors stop, the executor first, then the broker, and the\n"
    "database last; the exit status is 0.\n"
    "\n"
    "options:\n"
    "  --processes   run the broker and each actor as a child process\n"
    "                (`tako-vm broker`, `tako-vm actor NAME`) and restart any\n"
    "                that dies, after 100 ms doubling up to 5 s; the others\n"
    "                keep working meanwhile\n"
};
