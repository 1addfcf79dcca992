/*  tako_zygote — the executor's side of a zygote. See the header.  */

#include <assert.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tako_zygote.h"
#include "sandbox_mounts.h"

#define streq(a, b) (strcmp ((a), (b)) == 0)

#define ANSWER_MAX  1024

struct _tako_zygote_t {
    _Atomic pid_t pid;          //  -1 once it is gone
    int socket;                 //  our end; -1 once the zygote is gone
    char *spec_text;            //  the encoded spec, to compare
    pthread_mutex_t lock;       //  one request at a time on the socket;
    int references;             //  and these
};

//  --------------------------------------------------------------------------
//  The spec on the wire

static json_t *
strings_pairs (const void *items, size_t count, size_t stride, size_t second)
{
    json_t *array = json_array ();
    for (size_t i = 0; array && i < count; i++) {
        const char *const *pair = (const char *const *) ((const char *) items + i * stride);
        const char *b = *(const char *const *) ((const char *) pair + second);
        json_array_append_new (array, json_pack ("[ss]", pair [0]? pair [0]: "", b? b: ""));
    }
    return array;
}

json_t *
tako_zygote_spec_encode (const tako_sandbox_spec_t *spec)
{
    json_t *preload = json_array ();
    for (size_t i = 0; preload && i < spec->preload_count; i++)
        json_array_append_new (preload, json_string (spec->preload [i]? spec->preload [i]: ""));
    json_t *json = json_pack ("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                              " s:b, s:b, s:b, s:s, s:o, s:o, s:o}",
        "timeout_ms", (json_int_t) spec->timeout_ms,
        "startup_timeout_ms", (json_int_t) spec->startup_timeout_ms,
        "nofile_soft", (json_int_t) spec->nofile_soft,
        "nofile_hard", (json_int_t) spec->nofile_hard,
        "nproc_soft", (json_int_t) spec->nproc_soft,
        "nproc_hard", (json_int_t) spec->nproc_hard,
        "fsize_bytes", (json_int_t) spec->fsize_bytes,
        "tmpfs_size_bytes", (json_int_t) spec->tmpfs_size_bytes,
        "max_total_artifacts_bytes", (json_int_t) spec->max_total_artifacts_bytes,
        "max_code_bytes", (json_int_t) spec->max_code_bytes,
        "max_input_bytes", (json_int_t) spec->max_input_bytes,
        "max_stdout_bytes", (json_int_t) spec->max_stdout_bytes,
        "max_stderr_bytes", (json_int_t) spec->max_stderr_bytes,
        "network_enabled", spec->network_enabled,
        "seccomp_enabled", spec->seccomp_enabled,
        "system_packages", spec->system_packages,
        "python_path", spec->python_path? spec->python_path: TAKO_SANDBOX_DEFAULT_PYTHON,
        "env", strings_pairs (spec->env, spec->env_count, sizeof (tako_sandbox_env_t),
                              offsetof (tako_sandbox_env_t, value)),
        "binds", strings_pairs (spec->binds, spec->bind_count, sizeof (tako_sandbox_bind_t),
                                offsetof (tako_sandbox_bind_t, target)),
        "preload", preload);
    return json;
}

typedef struct {
    json_t *json;
    tako_sandbox_env_t *env;
    tako_sandbox_bind_t *binds;
    const char **preload;
} spec_storage_t;

void
tako_zygote_spec_free (void **storage_p)
{
    spec_storage_t *storage = storage_p? (spec_storage_t *) *storage_p: NULL;
    if (!storage)
        return;
    json_decref (storage->json);
    free (storage->env);
    free (storage->binds);
    free (storage->preload);
    free (storage);
    *storage_p = NULL;
}

//  Two strings of array item index; NULL when not a pair of strings.
static int
pair_get (json_t *array, size_t index, const char **a, const char **b)
{
    json_t *pair = json_array_get (array, index);
    *a = json_string_value (json_array_get (pair, 0));
    *b = json_string_value (json_array_get (pair, 1));
    return *a && *b && json_array_size (pair) == 2? 0: -1;
}

int
tako_zygote_spec_decode (json_t *json, tako_sandbox_spec_t *spec, void **storage_p)
{
    tako_sandbox_spec_defaults (spec);
    json_int_t values [13];
    int network = 0, seccomp = 0, system_packages = 0;
    const char *python_path = NULL;
    json_t *env = NULL, *binds = NULL, *preload = NULL;
    if (json_unpack (json, "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                           " s:b, s:b, s:b, s:s, s:o, s:o, s:o}",
            "timeout_ms", &values [0], "startup_timeout_ms", &values [1],
            "nofile_soft", &values [2], "nofile_hard", &values [3],
            "nproc_soft", &values [4], "nproc_hard", &values [5],
            "fsize_bytes", &values [6], "tmpfs_size_bytes", &values [7],
            "max_total_artifacts_bytes", &values [8], "max_code_bytes", &values [9],
            "max_input_bytes", &values [10], "max_stdout_bytes", &values [11],
            "max_stderr_bytes", &values [12],
            "network_enabled", &network, "seccomp_enabled", &seccomp,
            "system_packages", &system_packages, "python_path", &python_path,
            "env", &env, "binds", &binds, "preload", &preload) != 0
    ||  !json_is_array (env) || !json_is_array (binds) || !json_is_array (preload)
    ||  json_array_size (env) > TAKO_SANDBOX_ENV_MAX
    ||  json_array_size (preload) > TAKO_SANDBOX_PRELOAD_MAX
    ||  json_array_size (binds) > TAKO_SANDBOX_MOUNT_OPS_MAX)
        return -1;
    spec_storage_t *storage = calloc (1, sizeof (spec_storage_t));
    if (!storage)
        return -1;
    storage->json = json_incref (json);
    storage->env = calloc (json_array_size (env) + 1, sizeof (tako_sandbox_env_t));
    storage->binds = calloc (json_array_size (binds) + 1, sizeof (tako_sandbox_bind_t));
    storage->preload = calloc (json_array_size (preload) + 1, sizeof (char *));
    *storage_p = storage;
    if (!storage->env || !storage->binds || !storage->preload)
        return -1;
    for (size_t i = 0; i < json_array_size (env); i++)
        if (pair_get (env, i, &storage->env [i].name, &storage->env [i].value) != 0)
            return -1;
    for (size_t i = 0; i < json_array_size (binds); i++)
        if (pair_get (binds, i, &storage->binds [i].source, &storage->binds [i].target) != 0)
            return -1;
    for (size_t i = 0; i < json_array_size (preload); i++)
        if (!(storage->preload [i] = json_string_value (json_array_get (preload, i))))
            return -1;
    spec->timeout_ms = values [0];
    spec->startup_timeout_ms = values [1];
    spec->nofile_soft = values [2];
    spec->nofile_hard = values [3];
    spec->nproc_soft = values [4];
    spec->nproc_hard = values [5];
    spec->fsize_bytes = values [6];
    spec->tmpfs_size_bytes = values [7];
    spec->max_total_artifacts_bytes = values [8];
    spec->max_code_bytes = values [9];
    spec->max_input_bytes = values [10];
    spec->max_stdout_bytes = values [11];
    spec->max_stderr_bytes = values [12];
    spec->network_enabled = network;
    spec->seccomp_enabled = seccomp;
    spec->system_packages = system_packages;
    spec->python_path = python_path;
    spec->env = storage->env;
    spec->env_count = json_array_size (env);
    spec->binds = storage->binds;
    spec->bind_count = json_array_size (binds);
    spec->preload = storage->preload;
    spec->preload_count = json_array_size (preload);
    return 0;
}

static char *
spec_text (const tako_sandbox_spec_t *spec)
{
    json_t *json = tako_zygote_spec_encode (spec);
    char *text = json? json_dumps (json, JSON_COMPACT | JSON_SORT_KEYS): NULL;
    json_decref (json);
    return text;
}

//  --------------------------------------------------------------------------
//  The process

bool
tako_zygote_usable (const tako_sandbox_spec_t *spec)
{
    const char *python = spec->python_path? spec->python_path: TAKO_SANDBOX_DEFAULT_PYTHON;
    return streq (python, TAKO_SANDBOX_DEFAULT_PYTHON)
        && (!spec->rootfs || !*spec->rootfs) && !spec->runtime_runsc;
}

char *
tako_zygote_program (void)
{
    const char *forced = getenv ("TAKO_ZYGOTE_PATH");
    char path [PATH_MAX];
    if (forced && *forced)
        snprintf (path, sizeof (path), "%s", forced);
    else {
        ssize_t size = readlink ("/proc/self/exe", path, sizeof (path) - 1);
        if (size <= 0)
            return NULL;
        path [size] = '\0';
        char *slash = strrchr (path, '/');
        if (!slash || (size_t) (slash - path) + sizeof ("/" TAKO_ZYGOTE_PROGRAM) > sizeof (path))
            return NULL;
        strcpy (slash + 1, TAKO_ZYGOTE_PROGRAM);
    }
    return access (path, X_OK) == 0? strdup (path): NULL;
}

static int64_t
now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  One message from the zygote within timeout_ms: its size, or -1.
static ssize_t
answer_read (tako_zygote_t *self, char *buffer, size_t size, int64_t timeout_ms)
{
    int64_t deadline = now_ms () + timeout_ms;
    while (self->socket >= 0) {
        int64_t left = deadline - now_ms ();
        if (left <= 0)
            return -1;
        struct pollfd readable = { self->socket, POLLIN, 0 };
        int ready = poll (&readable, 1, (int) left);
        if (ready < 0 && errno != EINTR)
            return -1;
        if (ready <= 0)
            continue;
        ssize_t got = recv (self->socket, buffer, size, 0);
        if (got < 0 && errno == EINTR)
            continue;
        return got > 0? got: -1;
    }
    return -1;
}

static void
zygote_kill (tako_zygote_t *self)
{
    if (self->socket >= 0)
        close (self->socket);
    self->socket = -1;
    pid_t pid = atomic_exchange (&self->pid, -1);
    if (pid > 0) {
        kill (pid, SIGKILL);
        while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
}

//  A copy of the program in memory, to exec from: every job's memory map
//  shows the executable its interpreter came from, and a host path (where
//  tako-vm is installed) is none of the job's business.
static int
program_copy (const char *program)
{
    int source = open (program, O_RDONLY | O_CLOEXEC);
    int copy = source >= 0? memfd_create (TAKO_ZYGOTE_PROGRAM, MFD_CLOEXEC | MFD_ALLOW_SEALING): -1;
    char buffer [65536];
    ssize_t got = 0;
    while (copy >= 0 && (got = read (source, buffer, sizeof (buffer))) > 0)
        if (write (copy, buffer, (size_t) got) != got)
            got = -1;
    //  It is every forked job's /proc/self/exe: read-only and sealed, so
    //  nobody can change it whatever the kernel's rules for running files.
    if (copy >= 0 && got == 0
    &&  (fchmod (copy, 0500) != 0
    ||   fcntl (copy, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0))
        got = -1;
    int saved = errno;
    if (source >= 0)
        close (source);
    if (copy >= 0 && got < 0) {
        close (copy);
        copy = -1;
    }
    errno = saved;
    return copy;
}

static int
zygote_spawn_process (tako_zygote_t *self, const char *program, int theirs)
{
    int copy = program_copy (program);
    if (copy < 0)
        return -1;
    char path [64];
    snprintf (path, sizeof (path), "/proc/self/fd/%d", copy);
    posix_spawn_file_actions_t actions;
    if (posix_spawn_file_actions_init (&actions) != 0)
        return -1;
    //  No stdio of the executor's: a closed fd would leave the zygote's
    //  (and so every job's) sys.stdout None, and anything a preload prints
    //  would land in the executor's output.
    posix_spawn_file_actions_addopen (&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen (&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen (&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2 (&actions, theirs, 3);
    posix_spawnattr_t attributes;
    posix_spawnattr_init (&attributes);
    //  The executor's threads may block signals; the zygote starts with none.
    sigset_t none;
    sigemptyset (&none);
    posix_spawnattr_setsigmask (&attributes, &none);
    posix_spawnattr_setflags (&attributes, POSIX_SPAWN_SETSIGMASK);
    char parent [32];
    snprintf (parent, sizeof (parent), "%d", (int) getpid ());
    char *argv [] = { (char *) TAKO_ZYGOTE_PROGRAM, parent, NULL };
    char *envp [] = { "PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL };
    pid_t pid = -1;
    int rc = posix_spawn (&pid, path, &actions, &attributes, argv, envp);
    self->pid = rc == 0? pid: -1;
    close (copy);
    posix_spawn_file_actions_destroy (&actions);
    posix_spawnattr_destroy (&attributes);
    if (rc != 0) {
        self->pid = -1;
        errno = rc;
        return -1;
    }
    return 0;
}

tako_zygote_t *
tako_zygote_new (const tako_sandbox_spec_t *spec, char **error)
{
    assert (spec && error);
    *error = NULL;
    if (!tako_zygote_usable (spec)) {
        *error = strdup ("this job type's interpreter cannot come from a zygote");
        return NULL;
    }
    char *program = tako_zygote_program ();
    if (!program) {
        *error = strdup ("the " TAKO_ZYGOTE_PROGRAM " program is not installed");
        return NULL;
    }
    tako_zygote_t *self = calloc (1, sizeof (tako_zygote_t));
    int pair [2] = { -1, -1 };
    if (!self || !(self->spec_text = spec_text (spec))
    ||  socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        *error = strdup ("out of memory or sockets");
        free (program);
        if (self)
            free (self->spec_text);
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->references = 1;
    self->socket = pair [0];
    self->pid = -1;
    int rc = zygote_spawn_process (self, program, pair [1]);
    int saved = errno;
    close (pair [1]);
    free (program);
    char answer [ANSWER_MAX + 1];
    ssize_t size = -1;
    if (rc != 0)
        snprintf (answer, sizeof (answer), "ERR cannot start " TAKO_ZYGOTE_PROGRAM ": %s", strerror (saved));
    else
    if (strlen (self->spec_text) > TAKO_ZYGOTE_SPEC_MAX
    ||  send (self->socket, self->spec_text, strlen (self->spec_text), MSG_NOSIGNAL) < 0)
        snprintf (answer, sizeof (answer), "ERR cannot send the spec: %s", strerror (errno));
    else
    if ((size = answer_read (self, answer, ANSWER_MAX, TAKO_ZYGOTE_START_MS)) < 0)
        snprintf (answer, sizeof (answer), "ERR the zygote did not start");
    else
        answer [size] = '\0';
    if (streq (answer, "OK"))
        return self;
    *error = strdup (strncmp (answer, "ERR ", 4) == 0? answer + 4: "the zygote answered nonsense");
    tako_zygote_destroy (&self);
    return NULL;
}

void
tako_zygote_destroy (tako_zygote_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_zygote_t *self = *self_p;
    *self_p = NULL;
    pthread_mutex_lock (&self->lock);
    bool last = --self->references == 0;
    pthread_mutex_unlock (&self->lock);
    if (!last)
        return;
    zygote_kill (self);
    pthread_mutex_destroy (&self->lock);
    free (self->spec_text);
    free (self);
}

tako_zygote_t *
tako_zygote_share (tako_zygote_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    self->references++;
    pthread_mutex_unlock (&self->lock);
    return self;
}

//  The parent of pid (from /proc), or -1.
static pid_t
parent_of (pid_t pid)
{
    char path [64], text [512];
    snprintf (path, sizeof (path), "/proc/%d/stat", (int) pid);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    ssize_t size = fd >= 0? read (fd, text, sizeof (text) - 1): -1;
    if (fd >= 0)
        close (fd);
    if (size <= 0)
        return -1;
    text [size] = '\0';
    const char *end = strrchr (text, ')');     //  comm may hold anything
    char state;
    int parent;
    return end && sscanf (end + 1, " %c %d", &state, &parent) == 2? (pid_t) parent: -1;
}

static pid_t
spawn_locked (tako_zygote_t *self, const int *fds, size_t fd_count)
{
    if (self->socket < 0) {
        errno = ECHILD;
        return -1;
    }
    char control [CMSG_SPACE (sizeof (int) * TAKO_SANDBOX_ZYGOTE_FDS_MAX)];
    memset (control, 0, sizeof (control));
    struct iovec body = { (void *) "SPAWN", 5 };
    struct msghdr message = { 0 };
    message.msg_iov = &body;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE (sizeof (int) * fd_count);
    struct cmsghdr *header = CMSG_FIRSTHDR (&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN (sizeof (int) * fd_count);
    memcpy (CMSG_DATA (header), fds, sizeof (int) * fd_count);
    int32_t pid = 0;
    if (sendmsg (self->socket, &message, MSG_NOSIGNAL) < 0
    ||  answer_read (self, (char *) &pid, sizeof (pid), TAKO_ZYGOTE_ANSWER_MS) != sizeof (pid)) {
        zygote_kill (self);         //  dead or stuck: never used again
        errno = ECHILD;
        return -1;
    }
    if (pid <= 0) {
        errno = pid < 0? -pid: EIO;
        return -1;
    }
    //  What we do next to that pid we do as root (uid map, cgroup, kill):
    //  it must be the child the zygote was asked for, ours.
    if (parent_of ((pid_t) pid) != getpid ()) {
        zygote_kill (self);
        errno = ECHILD;
        return -1;
    }
    return (pid_t) pid;
}

pid_t
tako_zygote_spawn (tako_zygote_t *self, const int *fds, size_t fd_count)
{
    assert (self);
    if (fd_count < TAKO_SANDBOX_ZYGOTE_FDS || fd_count > TAKO_SANDBOX_ZYGOTE_FDS_MAX) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    pid_t pid = spawn_locked (self, fds, fd_count);
    int saved = errno;
    pthread_mutex_unlock (&self->lock);
    errno = saved;
    return pid;
}

bool
tako_zygote_alive (tako_zygote_t *self)
{
    //  Busy with a request: alive as far as anybody knows (the request
    //  finds out otherwise); never wait for it here (the executor's own
    //  thread asks).
    if (pthread_mutex_trylock (&self->lock) != 0)
        return atomic_load (&self->pid) > 0;
    //  A zygote that died closed its end: the socket hangs up.
    struct pollfd hangup = { self->socket, 0, 0 };
    if (self->socket >= 0 && poll (&hangup, 1, 0) == 1 && (hangup.revents & (POLLHUP | POLLERR)))
        zygote_kill (self);
    bool alive = self->socket >= 0;
    pthread_mutex_unlock (&self->lock);
    return alive;
}

bool
tako_zygote_matches (tako_zygote_t *self, const tako_sandbox_spec_t *spec)
{
    char *text = spec_text (spec);
    bool same = text && streq (text, self->spec_text);
    free (text);
    return same;
}

pid_t
tako_zygote_pid (tako_zygote_t *self)
{
    return self->pid;
}

int64_t
tako_zygote_memory (tako_zygote_t *self)
{
    char path [64];
    snprintf (path, sizeof (path), "/proc/%d/statm", (int) atomic_load (&self->pid));
    FILE *file = fopen (path, "re");
    long long pages = 0, resident = 0;
    int fields = file? fscanf (file, "%lld %lld", &pages, &resident): 0;
    if (file)
        fclose (file);
    return fields == 2? resident * (int64_t) sysconf (_SC_PAGESIZE): 0;
}

//  --------------------------------------------------------------------------
//  Self-test: the spec's round trip (sandboxes from a zygote are tested by
//  tests/unit/test_zygote.c and the integration suites).

void
tako_zygote_test (bool verbose)
{
    if (verbose)
        printf (" * tako_zygote: ");
    tako_sandbox_spec_t spec;
    tako_sandbox_spec_defaults (&spec);
    tako_sandbox_env_t env [] = { { "A", "1" }, { "B", "x=y" } };
    tako_sandbox_bind_t binds [] = { { "/srv/env", "/env" } };
    const char *preload [] = { "json", "os.path" };
    spec.env = env;
    spec.env_count = 2;
    spec.binds = binds;
    spec.bind_count = 1;
    spec.preload = preload;
    spec.preload_count = 2;
    spec.network_enabled = true;
    spec.nproc_soft = 7;
    json_t *json = tako_zygote_spec_encode (&spec);
    assert (json);
    tako_sandbox_spec_t back;
    void *storage = NULL;
    assert (tako_zygote_spec_decode (json, &back, &storage) == 0);
    assert (back.env_count == 2 && streq (back.env [1].value, "x=y"));
    assert (back.bind_count == 1 && streq (back.binds [0].target, "/env"));
    assert (back.preload_count == 2 && streq (back.preload [1], "os.path"));
    assert (back.network_enabled && back.seccomp_enabled && back.nproc_soft == 7);
    assert (back.timeout_ms == spec.timeout_ms && back.max_input_bytes == spec.max_input_bytes);
    //  Same spec, same text; a change shows.
    char *one = spec_text (&spec), *two = spec_text (&back);
    assert (one && two && streq (one, two));
    free (one);
    free (two);
    tako_zygote_spec_free (&storage);
    assert (!storage);
    json_decref (json);
    //  Malformed: refused, nothing leaks.
    json_t *bad = json_pack ("{s:i}", "timeout_ms", 1);
    assert (tako_zygote_spec_decode (bad, &back, &storage) != 0);
    tako_zygote_spec_free (&storage);
    json_decref (bad);
    bad = json_loads ("{\"timeout_ms\":1,\"startup_timeout_ms\":1,\"nofile_soft\":1,\"nofile_hard\":1,"
                      "\"nproc_soft\":1,\"nproc_hard\":1,\"fsize_bytes\":1,\"tmpfs_size_bytes\":1,"
                      "\"max_total_artifacts_bytes\":1,\"max_code_bytes\":1,\"max_input_bytes\":1,"
                      "\"max_stdout_bytes\":1,\"max_stderr_bytes\":1,\"network_enabled\":false,"
                      "\"seccomp_enabled\":true,\"system_packages\":false,\"python_path\":\"/usr/bin/python3\","
                      "\"env\":[[\"A\"]],\"binds\":[],\"preload\":[]}", 0, NULL);
    assert (bad && tako_zygote_spec_decode (bad, &back, &storage) != 0);
    tako_zygote_spec_free (&storage);
    json_decref (bad);
    //  Usable only with the default interpreter and the native runtime.
    assert (tako_zygote_usable (&spec));
    spec.rootfs = "/srv/root";
    assert (!tako_zygote_usable (&spec));
    spec.rootfs = NULL;
    spec.python_path = "/opt/python";
    assert (!tako_zygote_usable (&spec));
    if (verbose)
        printf ("OK\n");
}
