/*  tako_pgcluster: the whole life of a private cluster, for real.

    Each test makes its own data directory under the build directory and
    removes it at the end. One test uses a deep directory on purpose, so
    the socket has to go to /tmp.                                        */

#include <criterion/criterion.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "tako_pgcluster.h"

#define TEST_TIMEOUT_SECONDS 120
#define WAIT_SECONDS 20

static void
data_dir_make (char *out, size_t size, const char *tail)
{
    char exe [1024];
    ssize_t length = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert (length > 0);
    exe [length] = 0;
    snprintf (out, size, "%s/unit-pgcluster-%d%s", dirname (exe), (int) getpid (), tail);
}

static void
tree_remove (const char *data_dir)
{
    char top [1024];
    data_dir_make (top, sizeof top, "");
    cr_assert (strncmp (data_dir, top, strlen (top)) == 0);
    char command [1200];
    snprintf (command, sizeof command, "rm -rf '%s'", top);
    cr_assert (system (command) == 0);
}

static bool
database_answers (tako_pgcluster_t *cluster)
{
    PGconn *conn = PQconnectdb (tako_pgcluster_url (cluster));
    bool ok = PQstatus (conn) == CONNECTION_OK;
    if (ok) {
        PGresult *result = PQexec (conn, "SELECT current_database ()");
        ok = PQresultStatus (result) == PGRES_TUPLES_OK
          && strcmp (PQgetvalue (result, 0, 0), TAKO_PGCLUSTER_DATABASE) == 0;
        PQclear (result);
    }
    PQfinish (conn);
    return ok;
}

//  A SIGKILLed postmaster may linger as a zombie for a moment; status
//  stops calling it ours as soon as it is no longer a live postgres.
static bool
wait_stopped (tako_pgcluster_t *cluster)
{
    time_t deadline = time (NULL) + WAIT_SECONDS;
    while (time (NULL) < deadline) {
        if (tako_pgcluster_status (cluster) == TAKO_PGCLUSTER_STOPPED)
            return true;
        usleep (20 * 1000);
    }
    return false;
}

TestSuite (pgcluster, .timeout = TEST_TIMEOUT_SECONDS);

Test (pgcluster, life_cycle)
{
    char data_dir [1024];
    data_dir_make (data_dir, sizeof data_dir, "");
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    cr_assert (cluster);
    cr_assert_eq (tako_pgcluster_status (cluster), TAKO_PGCLUSTER_ABSENT);
    cr_assert (tako_pgcluster_stop (cluster) == 0, "stopping nothing is fine");

    cr_assert (tako_pgcluster_init (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    cr_assert (tako_pgcluster_init (cluster) == 0, "init twice is fine");
    cr_assert_eq (tako_pgcluster_status (cluster), TAKO_PGCLUSTER_STOPPED);

    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    cr_assert_eq (tako_pgcluster_status (cluster), TAKO_PGCLUSTER_RUNNING);
    pid_t pid = tako_pgcluster_pid (cluster);
    cr_assert (pid > 0);
    cr_assert (database_answers (cluster));

    //  Start again: same server, nothing restarted.
    cr_assert (tako_pgcluster_start (cluster) == 0);
    cr_assert_eq (tako_pgcluster_pid (cluster), pid);

    //  PostgreSQL runs as the postgres user when we are root, and its data
    //  directory is private.
    struct stat info;
    char pgdata [1100];
    snprintf (pgdata, sizeof pgdata, "%s/pg/data", data_dir);
    cr_assert (stat (pgdata, &info) == 0);
    cr_assert_eq (info.st_mode & 077, 0);
    if (geteuid () == 0)
        cr_assert_neq (info.st_uid, 0);

    //  Another object for the same directory sees the same server.
    tako_pgcluster_t *other = tako_pgcluster_new (data_dir);
    cr_assert_eq (tako_pgcluster_status (other), TAKO_PGCLUSTER_RUNNING);
    cr_assert_str_eq (tako_pgcluster_url (other), tako_pgcluster_url (cluster));
    tako_pgcluster_destroy (&other);

    cr_assert (tako_pgcluster_stop (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    cr_assert_eq (tako_pgcluster_status (cluster), TAKO_PGCLUSTER_STOPPED);
    cr_assert (!database_answers (cluster));
    cr_assert (tako_pgcluster_stop (cluster) == 0, "stopping twice is fine");
    tako_pgcluster_destroy (&cluster);
    tree_remove (data_dir);
}

Test (pgcluster, restarts_after_sigkill_and_stale_pid_file)
{
    char data_dir [1024];
    data_dir_make (data_dir, sizeof data_dir, "");
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    pid_t pid = tako_pgcluster_pid (cluster);
    cr_assert (kill (pid, SIGKILL) == 0);
    cr_assert (wait_stopped (cluster), "a killed server reads as stopped");

    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    cr_assert (database_answers (cluster));
    cr_assert (tako_pgcluster_stop (cluster) == 0);

    //  A postmaster.pid naming a live process that is not our server (this
    //  test, say, after pid reuse) must not block the start.
    char pid_file [1100];
    snprintf (pid_file, sizeof pid_file, "%s/pg/data/postmaster.pid", data_dir);
    FILE *file = fopen (pid_file, "w");
    cr_assert (file);
    fprintf (file, "%d\n", (int) getpid ());
    fclose (file);
    cr_assert_eq (tako_pgcluster_status (cluster), TAKO_PGCLUSTER_STOPPED);
    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    cr_assert (database_answers (cluster));
    cr_assert (tako_pgcluster_stop (cluster) == 0);
    tako_pgcluster_destroy (&cluster);
    tree_remove (data_dir);
}

Test (pgcluster, deep_data_dir_puts_the_socket_in_tmp)
{
    char data_dir [1024];
    data_dir_make (data_dir, sizeof data_dir,
                   "/a-rather-long-directory-name/another-rather-long-directory-name");
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    const char *socket_dir = tako_pgcluster_socket_dir (cluster);
    cr_assert (strncmp (socket_dir, "/tmp/tako-pg-", 13) == 0, "%s", socket_dir);
    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    cr_assert (database_answers (cluster));
    struct stat info;
    cr_assert (lstat (socket_dir, &info) == 0 && S_ISDIR (info.st_mode));
    cr_assert_eq (info.st_mode & 077, 0, "nobody else may enter the socket directory");
    cr_assert (tako_pgcluster_stop (cluster) == 0);
    cr_assert (rmdir (socket_dir) == 0);
    tako_pgcluster_destroy (&cluster);
    tree_remove (data_dir);
}

Test (pgcluster, refuses_a_planted_socket_directory)
{
    char data_dir [1024];
    data_dir_make (data_dir, sizeof data_dir,
                   "/a-rather-long-directory-name/another-rather-long-directory-name/planted");
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    const char *socket_dir = tako_pgcluster_socket_dir (cluster);
    //  Someone else made "our" /tmp directory first, open to everyone.
    cr_assert (mkdir (socket_dir, 0777) == 0);
    cr_assert (chmod (socket_dir, 0777) == 0);
    if (geteuid () == 0)
        cr_assert (chown (socket_dir, 65534, 65534) == 0);
    int rc = tako_pgcluster_start (cluster);
    if (geteuid () == 0) {
        cr_assert (rc == -1);
        cr_assert (strstr (tako_pgcluster_error (cluster), "another user"),
                   "%s", tako_pgcluster_error (cluster));
    }
    tako_pgcluster_stop (cluster);
    rmdir (socket_dir);
    tako_pgcluster_destroy (&cluster);
    tree_remove (data_dir);
}
