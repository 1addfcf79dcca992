/*  tako_pgcluster — a private PostgreSQL cluster under data_dir/pg.

    When database_url is empty, tako-vm keeps its records in a cluster of
    its own: initialised once, started on demand, reachable only through a
    unix socket (no TCP port is opened), with trust authentication for
    whoever can open that socket (the directory and the socket are 0700).

        tako_pgcluster_t *cluster = tako_pgcluster_new ("/var/lib/tako_vm");
        if (tako_pgcluster_start (cluster) == 0)        //  initdb if needed
            printf ("%s\n", tako_pgcluster_url (cluster));
        else
            fprintf (stderr, "%s\n", tako_pgcluster_error (cluster));
        tako_pgcluster_stop (cluster);
        tako_pgcluster_destroy (&cluster);

    Layout: data_dir/pg/data (PGDATA), data_dir/pg/run (socket),
    data_dir/pg/postgres.log (server log), data_dir/pg/tools.log (initdb,
    pg_ctl). When data_dir/pg/run would make the socket path longer than
    a unix socket allows, the socket goes to /tmp/tako-pg-<hash> instead.

    PostgreSQL refuses to run as root: when the effective uid is 0, initdb
    and the server run as the `postgres` system user, which must be able
    to search every parent directory of data_dir. The rest of tako-vm
    stays root. Operations on one data_dir are serialised with a lock
    file, so concurrent starters are safe.                                */

#ifndef TAKO_PGCLUSTER_H_INCLUDED
#define TAKO_PGCLUSTER_H_INCLUDED

#include <stdbool.h>
#include <sys/types.h>

//  The database every tako-vm cluster holds (created on first start).
#define TAKO_PGCLUSTER_DATABASE "tako_vm"

//  The superuser role initdb creates; the URL connects as it.
#define TAKO_PGCLUSTER_ROLE "tako"

//  The system user that runs PostgreSQL when tako-vm runs as root.
#define TAKO_PGCLUSTER_SYSTEM_USER "postgres"

typedef enum {
    TAKO_PGCLUSTER_ABSENT = 0,      //  never initialised
    TAKO_PGCLUSTER_STOPPED,         //  initialised, no server running
    TAKO_PGCLUSTER_RUNNING          //  our postmaster is alive
} tako_pgcluster_status_t;

typedef struct _tako_pgcluster_t tako_pgcluster_t;

//  Describe the cluster under data_dir (made absolute). Creates nothing
//  on disk. NULL if data_dir is empty or too long.
tako_pgcluster_t *tako_pgcluster_new (const char *data_dir);

//  Free the object; the server, if running, keeps running.
void tako_pgcluster_destroy (tako_pgcluster_t **self_p);

//  Run initdb unless the cluster exists. 0 or -1.
int tako_pgcluster_init (tako_pgcluster_t *self);

//  Initialise if needed, start the server (waits until it accepts
//  connections) and create the tako_vm database. Already running is
//  success. A postmaster.pid left by a killed server is cleaned up.
int tako_pgcluster_start (tako_pgcluster_t *self);

//  Stop the server (fast shutdown: sessions are cut, no data is lost).
//  Not running is success.
int tako_pgcluster_stop (tako_pgcluster_t *self);

//  Whether the cluster exists and its server runs.
tako_pgcluster_status_t tako_pgcluster_status (tako_pgcluster_t *self);

//  The postmaster's pid, or 0 when it is not running.
pid_t tako_pgcluster_pid (tako_pgcluster_t *self);

//  libpq connection URI for the tako_vm database, e.g.
//  postgresql:///tako_vm?host=/var/lib/tako_vm/pg/run&port=5432&user=tako
const char *tako_pgcluster_url (tako_pgcluster_t *self);

//  The directory holding the server's unix socket.
const char *tako_pgcluster_socket_dir (tako_pgcluster_t *self);

//  The server log file, for operators.
const char *tako_pgcluster_log_path (tako_pgcluster_t *self);

//  Why the last call failed (operator-facing; may name host paths).
const char *tako_pgcluster_error (tako_pgcluster_t *self);

void tako_pgcluster_test (bool verbose);

#endif
