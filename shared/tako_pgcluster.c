/*  tako_pgcluster — initdb / pg_ctl around a private cluster.  */

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "tako_log.h"
#include "tako_pgcluster.h"

//  sun_path holds 108 bytes with its NUL; PostgreSQL refuses longer paths.
#define SOCKET_PATH_MAX 107
//  The port only names the socket file (.s.PGSQL.5432); no TCP is opened.
#define SERVER_PORT "5432"
#define SOCKET_NAME ".s.PGSQL." SERVER_PORT
//  Fallback socket directory when data_dir is deep: /tmp/tako-pg-<16 hex>.
#define SOCKET_FALLBACK_PREFIX "/tmp/tako-pg-"
//  pg_ctl waits this long for start and stop.
#define PG_CTL_WAIT_SECONDS "60"
//  Small footprint: tako-vm's tables are modest and the host runs sandboxes.
#define SERVER_SHARED_BUFFERS "16MB"
#define SERVER_MAX_CONNECTIONS "50"
//  Where Debian puts the server binaries, one directory per major version.
#define BINDIR_GLOB "/usr/lib/postgresql/*/bin"
#define SERVER_CONF_NAME "tako_vm.conf"
#define PATH_SIZE PATH_MAX
#define ERROR_SIZE 512
#define ARGV_MAX 24

struct _tako_pgcluster_t {
    char data_dir [PATH_SIZE];
    char pg_dir [PATH_SIZE];        //  data_dir/pg, owned by the run user
    char pgdata [PATH_SIZE];        //  data_dir/pg/data
    char socket_dir [PATH_SIZE];
    char log_path [PATH_SIZE];
    char tools_log [PATH_SIZE];
    char lock_path [PATH_SIZE];
    char url [PATH_SIZE * 3 + 128];
    char bindir [PATH_SIZE];
    uid_t run_uid;                  //  who runs initdb and the server
    gid_t run_gid;
    bool drop_privileges;           //  true when we are root
    int lock_fd;
    char error [ERROR_SIZE];
};

//  snprintf for paths and messages: every buffer is sized so that a path
//  under a data_dir of at most PATH_SIZE / 2 fits; a cut is still safe.
static void
text_format (char *out, size_t size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
text_format (char *out, size_t size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (out, size, format, args);
    va_end (args);
}

static void
error_set (tako_pgcluster_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
error_set (tako_pgcluster_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

//  FNV-1a: only names a directory, so a fast non-cryptographic hash does.
static uint64_t
path_hash (const char *path)
{
    uint64_t hash = 14695981039346656037ULL;
    for (const unsigned char *c = (const unsigned char *) path; *c; c++) {
        hash ^= *c;
        hash *= 1099511628211ULL;
    }
    return hash;
}

//  Choose data_dir/pg/run unless the socket path would not fit.
static void
socket_dir_choose (const char *pg_dir, char *out, size_t size)
{
    text_format (out, size, "%s/run", pg_dir);
    if (strlen (out) + 1 + strlen (SOCKET_NAME) > SOCKET_PATH_MAX)
        text_format (out, size, SOCKET_FALLBACK_PREFIX "%016llx",
                     (unsigned long long) path_hash (pg_dir));
}

//  Percent-encode for a URI query value; '/' stays readable.
static void
uri_encode (const char *in, char *out, size_t size)
{
    size_t used = 0;
    for (const unsigned char *c = (const unsigned char *) in; *c && used + 4 < size; c++) {
        if (isalnum (*c) || strchr ("-._~/", *c))
            out [used++] = (char) *c;
        else
            used += snprintf (out + used, size - used, "%%%02X", *c);
    }
    out [used] = 0;
}

//  Highest installed major version wins.
static int
bindir_find (char *out, size_t size)
{
    glob_t found;
    long best_version = -1;
    if (glob (BINDIR_GLOB, GLOB_NOSORT, NULL, &found) == 0) {
        for (size_t i = 0; i < found.gl_pathc; i++) {
            const char *version = found.gl_pathv [i] + strlen ("/usr/lib/postgresql/");
            long major = strtol (version, NULL, 10);
            char pg_ctl [PATH_SIZE];
            text_format (pg_ctl, sizeof pg_ctl, "%s/pg_ctl", found.gl_pathv [i]);
            if (major > best_version && access (pg_ctl, X_OK) == 0) {
                best_version = major;
                text_format (out, size, "%s", found.gl_pathv [i]);
            }
        }
        globfree (&found);
    }
    return best_version >= 0? 0: -1;
}

static int
run_user_resolve (tako_pgcluster_t *self)
{
    self->drop_privileges = geteuid () == 0;
    if (!self->drop_privileges) {
        self->run_uid = geteuid ();
        self->run_gid = getegid ();
        return 0;
    }
    struct passwd entry, *result = NULL;
    char buffer [4096];
    if (getpwnam_r (TAKO_PGCLUSTER_SYSTEM_USER, &entry, buffer, sizeof buffer, &result) != 0
    ||  !result) {
        error_set (self, "PostgreSQL refuses to run as root and there is no '%s' "
                   "system user (install the postgresql package)", TAKO_PGCLUSTER_SYSTEM_USER);
        return -1;
    }
    self->run_uid = entry.pw_uid;
    self->run_gid = entry.pw_gid;
    return 0;
}

tako_pgcluster_t *
tako_pgcluster_new (const char *data_dir)
{
    if (!data_dir || !*data_dir || strlen (data_dir) > PATH_SIZE / 2)
        return NULL;
    tako_pgcluster_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->lock_fd = -1;
    char cwd [PATH_SIZE] = "";
    if (data_dir [0] != '/' && !getcwd (cwd, sizeof cwd)) {
        free (self);
        return NULL;
    }
    text_format (self->data_dir, sizeof self->data_dir, "%s%s%s", cwd, *cwd? "/": "", data_dir);
    //  Trailing slashes would make two names for one cluster (and two hashes).
    size_t length = strlen (self->data_dir);
    while (length > 1 && self->data_dir [length - 1] == '/')
        self->data_dir [--length] = 0;
    text_format (self->pg_dir, sizeof self->pg_dir, "%s/pg", self->data_dir);
    text_format (self->pgdata, sizeof self->pgdata, "%s/data", self->pg_dir);
    text_format (self->log_path, sizeof self->log_path, "%s/postgres.log", self->pg_dir);
    text_format (self->tools_log, sizeof self->tools_log, "%s/tools.log", self->pg_dir);
    text_format (self->lock_path, sizeof self->lock_path, "%s/pg.lock", self->data_dir);
    socket_dir_choose (self->pg_dir, self->socket_dir, sizeof self->socket_dir);
    char encoded [PATH_SIZE * 3];
    uri_encode (self->socket_dir, encoded, sizeof encoded);
    //  Known early so that status works without a start; a missing
    //  postgres user is reported by the calls that need it.
    run_user_resolve (self);
    text_format (self->url, sizeof self->url, "postgresql:///%s?host=%s&port=%s&user=%s",
              TAKO_PGCLUSTER_DATABASE, encoded, SERVER_PORT, TAKO_PGCLUSTER_ROLE);
    return self;
}

void
tako_pgcluster_destroy (tako_pgcluster_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_pgcluster_t *self = *self_p;
    if (self->lock_fd >= 0)
        close (self->lock_fd);
    free (self);
    *self_p = NULL;
}

const char *
tako_pgcluster_url (tako_pgcluster_t *self)
{
    return self->url;
}

const char *
tako_pgcluster_socket_dir (tako_pgcluster_t *self)
{
    return self->socket_dir;
}

const char *
tako_pgcluster_log_path (tako_pgcluster_t *self)
{
    return self->log_path;
}

const char *
tako_pgcluster_error (tako_pgcluster_t *self)
{
    return self->error;
}

//  ---------------------------------------------------------------------
//  Directories and the lock

static int
mkdir_parents (tako_pgcluster_t *self, const char *path)
{
    char partial [PATH_SIZE];
    text_format (partial, sizeof partial, "%s", path);
    for (char *slash = partial + 1; ; slash++) {
        bool end = *slash == 0;
        if (*slash == '/' || end) {
            *slash = 0;
            //  0755: the run user must be able to search down to pg/.
            if (mkdir (partial, 0755) != 0 && errno != EEXIST) {
                error_set (self, "cannot create %s: %s", partial, strerror (errno));
                return -1;
            }
            if (end)
                break;
            *slash = '/';
        }
    }
    return 0;
}

//  A directory only the run user may enter. An existing one must be a real
//  directory (no symlink) that nobody else controls: in /tmp anyone could
//  have created it first.
static int
private_dir_ensure (tako_pgcluster_t *self, const char *path, bool adopt)
{
    bool created = mkdir (path, 0700) == 0;
    if (!created && errno != EEXIST) {
        error_set (self, "cannot create %s: %s", path, strerror (errno));
        return -1;
    }
    //  What we just made is ours to hand to the run user.
    adopt = adopt || created;
    struct stat info;
    if (lstat (path, &info) != 0 || !S_ISDIR (info.st_mode)) {
        error_set (self, "%s is not a directory", path);
        return -1;
    }
    if (info.st_uid != self->run_uid) {
        if (!adopt || !self->drop_privileges
        ||  lchown (path, self->run_uid, self->run_gid) != 0) {
            error_set (self, "%s belongs to another user", path);
            return -1;
        }
    }
    if ((info.st_mode & 077) != 0 && chmod (path, 0700) != 0) {
        error_set (self, "cannot make %s private: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

static int
dirs_prepare (tako_pgcluster_t *self)
{
    if (mkdir_parents (self, self->data_dir)
    ||  private_dir_ensure (self, self->pg_dir, true))
        return -1;
    //  Our own socket directory may be adopted; a /tmp one never.
    bool in_tmp = strncmp (self->socket_dir, SOCKET_FALLBACK_PREFIX,
                           strlen (SOCKET_FALLBACK_PREFIX)) == 0;
    return private_dir_ensure (self, self->socket_dir, !in_tmp);
}

//  One tako-vm at a time initialises, starts or stops a given cluster.
static int
lock_take (tako_pgcluster_t *self)
{
    if (mkdir_parents (self, self->data_dir))
        return -1;
    self->lock_fd = open (self->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (self->lock_fd < 0 || flock (self->lock_fd, LOCK_EX) != 0) {
        error_set (self, "cannot lock %s: %s", self->lock_path, strerror (errno));
        if (self->lock_fd >= 0)
            close (self->lock_fd);
        self->lock_fd = -1;
        return -1;
    }
    return 0;
}

static void
lock_release (tako_pgcluster_t *self)
{
    if (self->lock_fd >= 0)
        close (self->lock_fd);
    self->lock_fd = -1;
}

//  ---------------------------------------------------------------------
//  Running initdb and pg_ctl as the run user

//  Exit codes of the child before exec, so the parent can say what failed.
#define CHILD_CANNOT_SWITCH_USER 125
#define CHILD_CANNOT_REACH_DIR   124
#define CHILD_CANNOT_EXEC        123

//  In the child only async-signal-safe calls: the caller may have threads.
static void
child_exec (tako_pgcluster_t *self, char *const argv [], char *const envp [])
{
    if (self->drop_privileges
    && (setgroups (0, NULL) != 0 || setgid (self->run_gid) != 0
    ||  setuid (self->run_uid) != 0))
        _exit (CHILD_CANNOT_SWITCH_USER);
    umask (077);
    //  The caller's threads may block signals; the server must not inherit that.
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    if (chdir (self->pg_dir) != 0)
        _exit (CHILD_CANNOT_REACH_DIR);
    int null_fd = open ("/dev/null", O_RDONLY);
    int log_fd = open ("tools.log", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0600);
    if (null_fd < 0 || log_fd < 0)
        _exit (CHILD_CANNOT_REACH_DIR);
    dup2 (null_fd, STDIN_FILENO);
    dup2 (log_fd, STDOUT_FILENO);
    dup2 (log_fd, STDERR_FILENO);
    //  Nothing of ours (the lock, sockets) may leak into the postmaster.
    close_range (STDERR_FILENO + 1, ~0U, 0);
    execve (argv [0], argv, envp);
    _exit (CHILD_CANNOT_EXEC);
}

//  argv [0] is a tool name in bindir. Returns the tool's exit status or -1.
static int
tool_run (tako_pgcluster_t *self, const char *tool, const char *const args [])
{
    char path [PATH_SIZE];
    text_format (path, sizeof path, "%s/%s", self->bindir, tool);
    char *argv [ARGV_MAX] = { path };
    int argc = 1;
    for (; args [argc - 1] && argc < ARGV_MAX - 1; argc++)
        argv [argc] = (char *) args [argc - 1];
    argv [argc] = NULL;
    //  An environment built from nothing: no PG* variable of ours steers
    //  the tools somewhere else.
    char *envp [] = { "PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C", NULL };
    pid_t pid = fork ();
    if (pid < 0) {
        error_set (self, "cannot fork: %s", strerror (errno));
        return -1;
    }
    if (pid == 0)
        child_exec (self, argv, envp);
    int status;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR) {
            error_set (self, "cannot wait for %s: %s", tool, strerror (errno));
            return -1;
        }
    return WIFEXITED (status)? WEXITSTATUS (status): 128 + WTERMSIG (status);
}

static int
tool_must_succeed (tako_pgcluster_t *self, const char *tool, const char *const args [])
{
    int status = tool_run (self, tool, args);
    if (status == 0)
        return 0;
    if (status == CHILD_CANNOT_SWITCH_USER)
        error_set (self, "cannot switch to the '%s' user", TAKO_PGCLUSTER_SYSTEM_USER);
    else
    if (status == CHILD_CANNOT_REACH_DIR)
        error_set (self, "the %s cannot reach %s: make every parent directory "
                   "searchable (chmod o+x) or choose another data_dir",
                   self->drop_privileges? "'" TAKO_PGCLUSTER_SYSTEM_USER "' user": "server user",
                   self->pg_dir);
    else
    if (status == CHILD_CANNOT_EXEC)
        error_set (self, "cannot run %s/%s", self->bindir, tool);
    else
    if (status > 0)
        error_set (self, "%s failed (exit %d); see %s", tool, status, self->tools_log);
    return -1;
}

//  ---------------------------------------------------------------------
//  Init

static bool
cluster_exists (tako_pgcluster_t *self)
{
    char version [PATH_SIZE];
    text_format (version, sizeof version, "%s/PG_VERSION", self->pgdata);
    return access (version, F_OK) == 0;
}

//  Remove a tree without following links (a half-finished initdb).
static int
tree_remove (const char *path)
{
    pid_t pid = fork ();
    if (pid == 0) {
        char *argv [] = { "/bin/rm", "-rf", "--one-file-system", "--", (char *) path, NULL };
        char *envp [] = { NULL };
        execve (argv [0], argv, envp);
        _exit (127);
    }
    int status = 0;
    while (pid > 0 && waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    return pid > 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0? 0: -1;
}

//  The settings that make this cluster private, written on every start so
//  that a moved data_dir gets its new socket directory.
static int
server_conf_write (tako_pgcluster_t *self)
{
    char path [PATH_SIZE], temporary [PATH_SIZE];
    text_format (path, sizeof path, "%s/" SERVER_CONF_NAME, self->pgdata);
    text_format (temporary, sizeof temporary, "%s.new", path);
    //  PGDATA belongs to the run user: never write through anything it
    //  may have left at this name.
    unlink (temporary);
    int fd = open (temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    FILE *file = fd >= 0? fdopen (fd, "w"): NULL;
    if (!file) {
        if (fd >= 0)
            close (fd);
        error_set (self, "cannot write %s: %s", temporary, strerror (errno));
        return -1;
    }
    fprintf (file,
        "# Written by tako-vm at every start; edits here are overwritten.\n"
        "listen_addresses = ''\n"
        "port = " SERVER_PORT "\n"
        "unix_socket_directories = '");
    //  Quotes in a configuration value are doubled.
    for (const char *c = self->socket_dir; *c; c++)
        fputs (*c == '\''? "''": (char []) { *c, 0 }, file);
    fprintf (file, "'\n"
        "unix_socket_permissions = 0700\n"
        "shared_buffers = " SERVER_SHARED_BUFFERS "\n"
        "max_connections = " SERVER_MAX_CONNECTIONS "\n"
        "fsync = on\n"
        "logging_collector = off\n");
    bool ok = fflush (file) == 0 && fsync (fd) == 0
           && (!self->drop_privileges || fchown (fd, self->run_uid, self->run_gid) == 0);
    ok = (fclose (file) == 0) && ok;
    if (!ok || rename (temporary, path) != 0) {
        error_set (self, "cannot write %s: %s", path, strerror (errno));
        unlink (temporary);
        return -1;
    }
    return 0;
}

static int
server_conf_include (tako_pgcluster_t *self, const char *pgdata)
{
    char path [PATH_SIZE];
    text_format (path, sizeof path, "%s/postgresql.conf", pgdata);
    FILE *file = fopen (path, "ae");
    if (!file) {
        error_set (self, "cannot open %s: %s", path, strerror (errno));
        return -1;
    }
    fprintf (file, "\n# tako-vm: private settings (no TCP, socket directory)\n"
                   "include_if_exists = '" SERVER_CONF_NAME "'\n");
    if (fclose (file) != 0) {
        error_set (self, "cannot write %s", path);
        return -1;
    }
    return 0;
}

static int
cluster_create (tako_pgcluster_t *self)
{
    //  initdb into a side directory and rename: a crash halfway leaves no
    //  PGDATA that looks initialised.
    char building [PATH_SIZE];
    text_format (building, sizeof building, "%s/data.initdb", self->pg_dir);
    if (access (building, F_OK) == 0 && tree_remove (building) != 0) {
        error_set (self, "cannot remove the unfinished %s", building);
        return -1;
    }
    //  Trust on the socket only: the socket and its directory are 0700,
    //  so "who can connect" is exactly "who owns the cluster" (and root).
    const char *args [] = {
        "-D", building, "-U", TAKO_PGCLUSTER_ROLE, "-E", "UTF8", "--locale=C",
        "--auth-local=trust", "--auth-host=reject", "--no-instructions", NULL
    };
    if (tool_must_succeed (self, "initdb", args)
    ||  server_conf_include (self, building))
        return -1;
    if (rename (building, self->pgdata) != 0) {
        error_set (self, "cannot rename %s: %s", building, strerror (errno));
        return -1;
    }
    tako_info ("pgcluster", "initialised a PostgreSQL cluster in %s", self->pgdata);
    return 0;
}

static int
prepare (tako_pgcluster_t *self)
{
    if (!*self->bindir && bindir_find (self->bindir, sizeof self->bindir) != 0) {
        error_set (self, "PostgreSQL server binaries not found in %s", BINDIR_GLOB);
        return -1;
    }
    return run_user_resolve (self);
}

static int
init_locked (tako_pgcluster_t *self)
{
    if (dirs_prepare (self))
        return -1;
    return cluster_exists (self)? 0: cluster_create (self);
}

int
tako_pgcluster_init (tako_pgcluster_t *self)
{
    if (prepare (self) || lock_take (self))
        return -1;
    int rc = init_locked (self);
    lock_release (self);
    return rc;
}

//  ---------------------------------------------------------------------
//  Status

static pid_t
pid_file_read (const char *pgdata)
{
    char path [PATH_SIZE];
    text_format (path, sizeof path, "%s/postmaster.pid", pgdata);
    FILE *file = fopen (path, "re");
    if (!file)
        return 0;
    long pid = 0;
    if (fscanf (file, "%ld", &pid) != 1)
        pid = 0;
    fclose (file);
    return pid > 0 && pid < INT_MAX? (pid_t) pid: 0;
}

static bool
process_named_postgres (pid_t pid)
{
    char path [64], comm [32] = "";
    text_format (path, sizeof path, "/proc/%d/comm", (int) pid);
    FILE *file = fopen (path, "re");
    if (!file)
        return false;
    bool named = fgets (comm, sizeof comm, file) && strncmp (comm, "postgres", 8) == 0;
    fclose (file);
    return named;
}

//  A pid in postmaster.pid may belong to anyone after a SIGKILL and pid
//  reuse. It is our postmaster only if that process is a postgres whose
//  working directory is our PGDATA (a zombie has none). Where /proc hides
//  the working directory (no CAP_SYS_PTRACE), a postgres of the run user
//  counts as ours: wrongly calling a live server stale would delete its
//  lock file, far worse than a refused start.
static bool
pid_is_our_postmaster (tako_pgcluster_t *self, pid_t pid)
{
    if (!process_named_postgres (pid))
        return false;
    char link [64], cwd [PATH_SIZE], real_pgdata [PATH_SIZE];
    text_format (link, sizeof link, "/proc/%d/cwd", (int) pid);
    ssize_t length = readlink (link, cwd, sizeof cwd - 1);
    if (length < 0 && (errno == EACCES || errno == EPERM)) {
        struct stat info;
        text_format (link, sizeof link, "/proc/%d", (int) pid);
        return stat (link, &info) == 0 && info.st_uid == self->run_uid;
    }
    if (length <= 0 || !realpath (self->pgdata, real_pgdata))
        return false;
    cwd [length] = 0;
    return strcmp (cwd, real_pgdata) == 0;
}

pid_t
tako_pgcluster_pid (tako_pgcluster_t *self)
{
    pid_t pid = pid_file_read (self->pgdata);
    return pid && pid_is_our_postmaster (self, pid)? pid: 0;
}

tako_pgcluster_status_t
tako_pgcluster_status (tako_pgcluster_t *self)
{
    if (!cluster_exists (self))
        return TAKO_PGCLUSTER_ABSENT;
    return tako_pgcluster_pid (self)? TAKO_PGCLUSTER_RUNNING: TAKO_PGCLUSTER_STOPPED;
}

//  ---------------------------------------------------------------------
//  Start and stop

//  Remove what a killed server left behind, so that a pid reused by an
//  unrelated process cannot block the start.
static void
stale_files_remove (tako_pgcluster_t *self)
{
    char path [PATH_SIZE];
    text_format (path, sizeof path, "%s/postmaster.pid", self->pgdata);
    if (unlink (path) == 0)
        tako_warning ("pgcluster", "removed a stale postmaster.pid in %s", self->pgdata);
    text_format (path, sizeof path, "%s/" SOCKET_NAME ".lock", self->socket_dir);
    unlink (path);
    text_format (path, sizeof path, "%s/" SOCKET_NAME, self->socket_dir);
    unlink (path);
}

static int
database_create (tako_pgcluster_t *self)
{
    const char *keywords [] = { "host", "port", "user", "dbname", "connect_timeout", NULL };
    const char *values [] = { self->socket_dir, SERVER_PORT, TAKO_PGCLUSTER_ROLE,
                              "postgres", "10", NULL };
    PGconn *conn = PQconnectdbParams (keywords, values, 0);
    if (PQstatus (conn) != CONNECTION_OK) {
        error_set (self, "cannot connect to the new server: %s", PQerrorMessage (conn));
        PQfinish (conn);
        return -1;
    }
    int rc = 0;
    const char *name [] = { TAKO_PGCLUSTER_DATABASE };
    PGresult *found = PQexecParams (conn, "SELECT 1 FROM pg_database WHERE datname = $1",
                                    1, NULL, name, NULL, NULL, 0);
    if (PQresultStatus (found) == PGRES_TUPLES_OK && PQntuples (found) == 0) {
        PGresult *result = PQexec (conn, "CREATE DATABASE " TAKO_PGCLUSTER_DATABASE);
        //  42P04: someone created it meanwhile, which is what we want.
        const char *state = PQresultErrorField (result, PG_DIAG_SQLSTATE);
        if (PQresultStatus (result) != PGRES_COMMAND_OK
        &&  !(state && strcmp (state, "42P04") == 0))
            rc = -1;
        PQclear (result);
    }
    else
    if (PQresultStatus (found) != PGRES_TUPLES_OK)
        rc = -1;
    if (rc)
        error_set (self, "cannot create the database: %s", PQerrorMessage (conn));
    PQclear (found);
    PQfinish (conn);
    return rc;
}

static int
start_locked (tako_pgcluster_t *self)
{
    if (init_locked (self))
        return -1;
    //  Running already: still make sure the database exists.
    if (tako_pgcluster_pid (self))
        return database_create (self);
    stale_files_remove (self);
    if (server_conf_write (self))
        return -1;
    const char *args [] = {
        "start", "-w", "-s", "-t", PG_CTL_WAIT_SECONDS, "-D", self->pgdata,
        "-l", self->log_path, NULL
    };
    if (tool_must_succeed (self, "pg_ctl", args)) {
        error_set (self, "the PostgreSQL server did not start; see %s", self->log_path);
        return -1;
    }
    tako_info ("pgcluster", "PostgreSQL running, socket in %s", self->socket_dir);
    return database_create (self);
}

int
tako_pgcluster_start (tako_pgcluster_t *self)
{
    if (prepare (self) || lock_take (self))
        return -1;
    int rc = start_locked (self);
    lock_release (self);
    return rc;
}

int
tako_pgcluster_stop (tako_pgcluster_t *self)
{
    if (tako_pgcluster_status (self) != TAKO_PGCLUSTER_RUNNING)
        return 0;
    if (prepare (self) || lock_take (self))
        return -1;
    int rc = 0;
    if (tako_pgcluster_pid (self)) {
        const char *args [] = {
            "stop", "-w", "-s", "-m", "fast", "-t", PG_CTL_WAIT_SECONDS, "-D", self->pgdata, NULL
        };
        rc = tool_must_succeed (self, "pg_ctl", args);
    }
    lock_release (self);
    return rc;
}

//  ---------------------------------------------------------------------
//  Self-test: what can be checked without starting a server. The full
//  life cycle (initdb, start, SIGKILL, restart, stop) is in
//  tests/unit/test_pgcluster.c.

void
tako_pgcluster_test (bool verbose)
{
    (void) verbose;
    assert (tako_pgcluster_new (NULL) == NULL);
    assert (tako_pgcluster_new ("") == NULL);

    tako_pgcluster_t *cluster = tako_pgcluster_new ("/var/lib/tako_vm/");
    assert (cluster);
    assert (strcmp (tako_pgcluster_socket_dir (cluster), "/var/lib/tako_vm/pg/run") == 0);
    assert (strcmp (tako_pgcluster_url (cluster),
        "postgresql:///tako_vm?host=/var/lib/tako_vm/pg/run&port=5432&user=tako") == 0);
    assert (strcmp (tako_pgcluster_log_path (cluster), "/var/lib/tako_vm/pg/postgres.log") == 0);
    tako_pgcluster_destroy (&cluster);
    tako_pgcluster_destroy (&cluster);
    assert (cluster == NULL);

    //  A deep data_dir puts the socket in /tmp, under a name that depends
    //  only on the path, so every process finds the same one.
    char deep [300] = "/srv";
    while (strlen (deep) < 120)
        strcat (deep, "/deeper");
    cluster = tako_pgcluster_new (deep);
    const char *socket_dir = tako_pgcluster_socket_dir (cluster);
    assert (strncmp (socket_dir, SOCKET_FALLBACK_PREFIX, strlen (SOCKET_FALLBACK_PREFIX)) == 0);
    assert (strlen (socket_dir) + 1 + strlen (SOCKET_NAME) <= SOCKET_PATH_MAX);
    tako_pgcluster_t *same = tako_pgcluster_new (deep);
    assert (strcmp (tako_pgcluster_socket_dir (same), socket_dir) == 0);
    tako_pgcluster_destroy (&same);
    tako_pgcluster_destroy (&cluster);

    //  Unusual characters are percent-encoded in the URL.
    cluster = tako_pgcluster_new ("/srv/my data");
    assert (strstr (tako_pgcluster_url (cluster), "host=/srv/my%20data/pg/run&"));
    //  Nothing exists there, so nothing runs.
    assert (tako_pgcluster_status (cluster) == TAKO_PGCLUSTER_ABSENT);
    assert (tako_pgcluster_pid (cluster) == 0);
    tako_pgcluster_destroy (&cluster);
}
