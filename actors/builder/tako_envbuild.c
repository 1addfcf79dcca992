/*  tako_envbuild — build a job type's environment with pip. See
    tako_envbuild.h.

    Layout under data_dir/envs:

        <digest>/                       a built environment (complete)
        <digest>/.tako_env.json         its spec, digest, built_at
        .locks/<digest>.lock            flock'ed while building
        .tmp-<digest>-XXXXXX/           scratch of a build in progress
            env/                        pip's --target, renamed to <digest>
            links/<n>/                  mount points of pip_find_links (root)

    The child that runs pip is forked from a threaded process, so between
    fork and exec it only makes system calls: every string it needs is
    prepared before the fork.                                            */

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <czmq.h>
#include <jansson.h>
#include "tako_envbuild.h"
#include "tako_log.h"
#include "tako_sha256.h"

#define LOG "builder"

//  The unprivileged user pip runs as when we are root.
#define BUILD_UID               65534
#define BUILD_GID               65534
//  Where the scratch directory appears inside the build sandbox.
#define SANDBOX_ROOT            "/tmp"
//  pip's output kept while it runs (the reason needs only the tail).
#define OUTPUT_KEEP             (16 * 1024)
//  One line of pip's output passed to progress.
#define PROGRESS_LINE_MAX       240
//  How often the build looks at its deadline and its cancel flag.
#define WAIT_SLICE_MS           100
//  Most pip_find_links directories (each is one mount in the sandbox).
#define FIND_LINKS_MAX          16
//  Arguments of the pip command line besides requirements and links.
#define PIP_FIXED_ARGS          24
//  Exit code of a child that could not set up the sandbox or exec.
#define CHILD_SETUP_FAILED      126
#define MS_PER_SECOND           1000
//  File descriptors nftw may hold open while walking a tree.
#define WALK_FDS_MAX            16
//  Variables of pip's environment (see pip_envp), and the NULL after them.
#define PIP_ENV_COUNT           6

typedef struct {
    const tako_envbuild_options_t *options;
    tako_envspec_t *spec;
    tako_envbuild_result_t *result;
    const char *data_dir;
    char *envs;                 //  data_dir/envs
    char *final;                //  data_dir/envs/<digest>
    char *scratch;              //  data_dir/envs/.tmp-<digest>-XXXXXX
    int64_t started;            //  monotonic ms
    int64_t deadline;           //  monotonic ms
    bool sandboxed;             //  root: namespaces and user nobody
} build_t;

//  What the child needs, all prepared before fork.
typedef struct {
    const char *python;
    char **argv;
    char **envp;
    const char *scratch;
    const char *sandbox_root;
    size_t link_count;
    const char *link_sources [FIND_LINKS_MAX];
    char *link_targets [FIND_LINKS_MAX];
    bool sandboxed;
    bool offline;
    int output_fd;
} child_plan_t;

//  ---------------------------------------------------------------------
//  Small helpers

static void
progress (build_t *self, const char *phase, const char *detail)
{
    if (self->options->progress)
        self->options->progress (self->options->progress_arg, phase, detail);
}

static int
fail (build_t *self, const char *error_type, const char *reason)
{
    tako_envbuild_result_t *result = self->result;
    free (result->error_type);
    free (result->reason);
    result->error_type = strdup (error_type);
    result->reason = strdup (reason);
    return -1;
}

static bool
is_directory (const char *path)
{
    struct stat info;
    return lstat (path, &info) == 0 && S_ISDIR (info.st_mode);
}

static bool
cancelled (build_t *self)
{
    return self->options->cancel && atomic_load (self->options->cancel);
}

//  mkdir that accepts an existing directory (never a link to one).
static int
directory_make (const char *path, mode_t mode)
{
    if (mkdir (path, mode) == 0 || (errno == EEXIST && is_directory (path)))
        return 0;
    return -1;
}

//  mkdir -p: data_dir may not exist yet on a first build.
static int
directory_make_parents (const char *path, mode_t mode)
{
    char *copy = strdup (path);
    int rc = copy? 0: -1;
    for (char *slash = copy? strchr (copy + 1, '/'): NULL; rc == 0 && slash;
         slash = strchr (slash + 1, '/')) {
        *slash = 0;
        struct stat info;
        if (stat (copy, &info))
            rc = directory_make (copy, mode);
        *slash = '/';
    }
    if (rc == 0)
        rc = directory_make (path, mode);
    free (copy);
    return rc;
}

static int
remove_entry (const char *path, const struct stat *info, int flag, struct FTW *walk)
{
    (void) info; (void) flag; (void) walk;
    if (remove (path) && errno != ENOENT)
        tako_debug (LOG, "cannot remove a build leftover: %s", strerror (errno));
    return 0;
}

//  Remove a directory tree without following links or crossing mounts.
static void
tree_remove (const char *path)
{
    if (path && is_directory (path))
        nftw (path, remove_entry, WALK_FDS_MAX, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

//  Files pip wrote as nobody become root's, readable by everyone and
//  writable by no one else, so no later build (or job) running as nobody
//  can change an environment, and every sandbox user can read it.
static int
seal_entry (const char *path, const struct stat *info, int flag, struct FTW *walk)
{
    (void) walk;
    if (lchown (path, 0, 0))
        return -1;
    if (flag == FTW_SL)
        return 0;
    mode_t readable = flag == FTW_D? S_IRUSR | S_IXUSR | S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH:
                                     S_IRUSR | S_IRGRP | S_IROTH;
    return chmod (path, (info->st_mode & ~(mode_t) (S_IWGRP | S_IWOTH)) | readable);
}

static char *
now_iso8601 (void)
{
    char text [32];
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return strdup (text);
}

//  ---------------------------------------------------------------------
//  Reasons: pip's last lines without host paths

//  True if c may precede the first '/' of a path inside a line.
static bool
path_may_start_after (const char *line, const char *c)
{
    return c == line || strchr (" '\"(=:<", c [-1]) != NULL;
}

static bool
path_ends_at (char c)
{
    return c == 0 || strchr (" '\"),>\n", c) != NULL;
}

//  Copy line into out (size bytes) with each absolute path replaced by
//  its last component and anything but printable ASCII replaced by '?'.
static void
line_sanitize (const char *line, char *out, size_t size)
{
    size_t used = 0;
    for (const char *c = line; *c && used + 1 < size; ) {
        if (*c == '/' && path_may_start_after (line, c)) {
            const char *end = c;
            while (!path_ends_at (*end))
                end++;
            const char *last = end;
            while (last > c && last [-1] == '/')
                last--;
            const char *base = last;
            while (base > c && base [-1] != '/')
                base--;
            for (const char *b = base; b < last && used + 1 < size; b++)
                out [used++] = *b;
            c = end;
            continue;
        }
        unsigned char byte = (unsigned char) *c++;
        out [used++] = byte >= ' ' && byte < 0x7f? (char) byte: '?';
    }
    out [used] = 0;
}

//  pip says this when it has nothing to add; it is not a reason.
static bool
line_is_noise (const char *line)
{
    while (*line == ' ')
        line++;
    return *line == 0 || strncmp (line, "[notice]", 8) == 0
        || strncmp (line, "Looking in ", 11) == 0
        || strncmp (line, "WARNING: Running pip as", 23) == 0;
}

//  The last TAKO_ENVBUILD_REASON_LINES meaningful lines of output,
//  sanitized and joined by "; ". A fresh string, or NULL.
static char *
reason_from_output (const char *output, const char *fallback)
{
    const char *lines [TAKO_ENVBUILD_REASON_LINES] = { NULL };
    size_t lengths [TAKO_ENVBUILD_REASON_LINES] = { 0 };
    size_t found = 0;
    const char *end = output + strlen (output);
    while (end > output && found < TAKO_ENVBUILD_REASON_LINES) {
        const char *start = end;
        while (start > output && start [-1] != '\n')
            start--;
        char probe [PROGRESS_LINE_MAX];
        snprintf (probe, sizeof probe, "%.*s", (int) (end - start), start);
        if (!line_is_noise (probe)) {
            lines [found] = start;
            lengths [found++] = (size_t) (end - start);
        }
        end = start > output? start - 1: start;
    }
    if (found == 0)
        return strdup (fallback);
    char *reason = (char *) calloc (1, TAKO_ENVBUILD_REASON_MAX);
    if (!reason)
        return NULL;
    size_t used = 0;
    for (size_t i = found; i-- > 0 && used + 3 < TAKO_ENVBUILD_REASON_MAX; ) {
        char *raw = strndup (lines [i], lengths [i]);
        if (!raw)
            break;
        if (used)
            used += (size_t) snprintf (reason + used, TAKO_ENVBUILD_REASON_MAX - used, "; ");
        line_sanitize (raw, reason + used, TAKO_ENVBUILD_REASON_MAX - used);
        used += strlen (reason + used);
        free (raw);
    }
    return reason;
}

//  ---------------------------------------------------------------------
//  The pip child

//  Write a message to the output pipe and end the child.
static void
child_die (int fd, const char *message)
{
    ssize_t ignored = write (fd, message, strlen (message));
    (void) ignored;
    _exit (CHILD_SETUP_FAILED);
}

//  In the child: the build sandbox. System calls only.
static void
child_enter_sandbox (const child_plan_t *plan)
{
    int fd = plan->output_fd;
    int flags = CLONE_NEWNS | (plan->offline? CLONE_NEWNET: 0);
    if (unshare (flags))
        child_die (fd, "build sandbox: cannot create namespaces\n");
    if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
        child_die (fd, "build sandbox: cannot make mounts private\n");
    for (size_t i = 0; i < plan->link_count; i++) {
        if (mount (plan->link_sources [i], plan->link_targets [i], NULL, MS_BIND, NULL)
        ||  mount (NULL, plan->link_targets [i], NULL,
                   MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL))
            child_die (fd, "build sandbox: a pip_find_links directory cannot be mounted\n");
    }
    if (mount (plan->scratch, plan->sandbox_root, NULL, MS_BIND | MS_REC, NULL))
        child_die (fd, "build sandbox: cannot mount the build directory\n");
    if (chdir (plan->sandbox_root))
        child_die (fd, "build sandbox: cannot enter the build directory\n");
    if (setgroups (0, NULL) || setgid (BUILD_GID) || setuid (BUILD_UID))
        child_die (fd, "build sandbox: cannot drop privileges\n");
}

static void
child_run (const child_plan_t *plan)
{
    int fd = plan->output_fd;
    setpgid (0, 0);
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    int null = open ("/dev/null", O_RDONLY);
    if (null < 0 || dup2 (null, STDIN_FILENO) < 0
    ||  dup2 (fd, STDOUT_FILENO) < 0 || dup2 (fd, STDERR_FILENO) < 0)
        child_die (fd, "build: cannot redirect pip's output\n");
    fd = STDERR_FILENO;
    umask (022);
    if (plan->sandboxed) {
        child_plan_t moved = *plan;
        moved.output_fd = fd;
        child_enter_sandbox (&moved);
    }
    else
    if (chdir (plan->scratch))
        child_die (fd, "build: cannot enter the build directory\n");
    prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    closefrom (STDERR_FILENO + 1);
    execve (plan->python, plan->argv, plan->envp);
    child_die (fd, "build: cannot run the Python interpreter\n");
}

//  ---------------------------------------------------------------------
//  Preparing pip's command line

//  The interpreter for this spec: python_version names /usr/bin/pythonX.Y,
//  else the sandbox's. NULL (reported) when it is not there.
static char *
python_for (build_t *self)
{
    const char *version = tako_envspec_python_version (self->spec);
    //  "3.11.4" runs as python3.11: one interpreter per minor version.
    const char *first_dot = strchr (version, '.');
    const char *second_dot = first_dot? strchr (first_dot + 1, '.'): NULL;
    int length = second_dot? (int) (second_dot - version): (int) strlen (version);
    char *python = *version? zsys_sprintf ("/usr/bin/python%.*s", length, version):
                             strdup (self->options->config->sandbox_python);
    if (python && access (python, X_OK) == 0)
        return python;
    char *reason = zsys_sprintf ("Python %s is not installed on this host",
                                 *version? version: "(sandbox_python)");
    fail (self, TAKO_ENVBUILD_BUILD_ERROR, reason? reason: "Python is not installed");
    zstr_free (&reason);
    zstr_free (&python);
    return NULL;
}

static void
strings_free (char **strings)
{
    for (size_t i = 0; strings && strings [i]; i++)
        free (strings [i]);
    free (strings);
}

//  argv for `python -m pip install --target ...`; NULL when out of memory.
static char **
pip_argv (build_t *self, const char *python, const char *root, size_t link_count)
{
    const tako_config_t *config = self->options->config;
    size_t count = 0;
    const char *const *requirements = tako_envspec_requirements (self->spec, &count);
    char **argv = (char **) calloc (PIP_FIXED_ARGS + 2 * link_count + count + 1, sizeof (char *));
    if (!argv)
        return NULL;
    size_t n = 0;
    const char *fixed [] = { python, "-m", "pip", "install", "--no-input",
        "--disable-pip-version-check", "--no-cache-dir", "--progress-bar", "off",
        "--no-warn-script-location", NULL };
    for (size_t i = 0; fixed [i]; i++)
        argv [n++] = strdup (fixed [i]);
    argv [n++] = strdup ("--target");
    argv [n++] = zsys_sprintf ("%s/env", root);
    if (config->pip_index_url && *config->pip_index_url) {
        argv [n++] = strdup ("--index-url");
        argv [n++] = strdup (config->pip_index_url);
    }
    else
    if (link_count > 0)
        argv [n++] = strdup ("--no-index");
    for (size_t i = 0; i < link_count; i++) {
        argv [n++] = strdup ("--find-links");
        argv [n++] = self->sandboxed? zsys_sprintf ("%s/links/%zu", root, i):
                                      strdup (config->pip_find_links.items [i]);
    }
    argv [n++] = strdup ("--");
    for (size_t i = 0; i < count; i++)
        argv [n++] = strdup (requirements [i]);
    for (size_t i = 0; i < n; i++)
        if (!argv [i]) {
            for (size_t j = 0; j < n; j++)
                free (argv [j]);
            free (argv);
            return NULL;
        }
    return argv;
}

//  An environment built from nothing: no host variable reaches pip.
static char **
pip_envp (const char *root)
{
    char **envp = (char **) calloc (PIP_ENV_COUNT + 1, sizeof (char *));
    if (!envp)
        return NULL;
    envp [0] = strdup ("PATH=/usr/local/bin:/usr/bin:/bin");
    envp [1] = zsys_sprintf ("HOME=%s", root);
    envp [2] = zsys_sprintf ("TMPDIR=%s", root);
    envp [3] = strdup ("LANG=C.UTF-8");
    envp [4] = strdup ("PIP_CONFIG_FILE=/dev/null");
    envp [5] = strdup ("PYTHONNOUSERSITE=1");
    for (size_t i = 0; i < PIP_ENV_COUNT; i++)
        if (!envp [i]) {
            strings_free (envp);
            return NULL;
        }
    return envp;
}

//  ---------------------------------------------------------------------
//  Running pip

//  Pass complete lines that say what pip is doing to progress.
static void
output_progress (build_t *self, const char *line)
{
    static const char *interesting [] = { "Collecting ", "Processing ", "Downloading ",
        "Installing collected packages", "Successfully installed", NULL };
    for (size_t i = 0; interesting [i]; i++)
        if (strncmp (line, interesting [i], strlen (interesting [i])) == 0) {
            char clean [PROGRESS_LINE_MAX];
            line_sanitize (line, clean, sizeof clean);
            progress (self, "installing", clean);
            return;
        }
}

//  Read what pip wrote: keep the tail, report whole lines.
static void
output_read (build_t *self, int fd, char *output, size_t *used, size_t *line_start)
{
    char chunk [4096];
    ssize_t got = read (fd, chunk, sizeof chunk);
    if (got <= 0)
        return;
    if (*used + (size_t) got >= OUTPUT_KEEP) {
        size_t drop = *used + (size_t) got - OUTPUT_KEEP / 2;
        drop = drop > *used? *used: drop;
        memmove (output, output + drop, *used - drop);
        *used -= drop;
        *line_start = *line_start > drop? *line_start - drop: 0;
    }
    memcpy (output + *used, chunk, (size_t) got);
    *used += (size_t) got;
    output [*used] = 0;
    for (char *newline; (newline = memchr (output + *line_start, '\n', *used - *line_start)); ) {
        *newline = 0;
        output_progress (self, output + *line_start);
        *newline = '\n';
        *line_start = (size_t) (newline + 1 - output);
    }
}

//  Wait for pip, reading its output, until it exits, the deadline passes
//  or the build is cancelled. Returns its wait status, or -1 if killed.
static int
pip_wait (build_t *self, pid_t pid, int fd, char *output)
{
    size_t used = 0, line_start = 0;
    bool open = true;
    int status = 0;
    while (true) {
        if (zclock_mono () >= self->deadline || cancelled (self)) {
            kill (-pid, SIGKILL);
            waitpid (pid, NULL, 0);
            return -1;
        }
        if (open) {
            struct pollfd item = { fd, POLLIN, 0 };
            if (poll (&item, 1, WAIT_SLICE_MS) > 0) {
                size_t before = used;
                output_read (self, fd, output, &used, &line_start);
                open = used != before || !(item.revents & (POLLHUP | POLLERR));
            }
        }
        else
            zclock_sleep (WAIT_SLICE_MS / 10);
        pid_t done = waitpid (pid, &status, WNOHANG);
        if (done == pid) {
            //  Anything pip left running in its group goes too; then
            //  what is still in the pipe (the read end does not block).
            kill (-pid, SIGKILL);
            for (size_t before = SIZE_MAX; open && used != before; ) {
                before = used;
                output_read (self, fd, output, &used, &line_start);
            }
            return status;
        }
    }
}

//  Mount points for pip_find_links inside the scratch directory.
static int
links_prepare (build_t *self, child_plan_t *plan)
{
    const tako_config_t *config = self->options->config;
    plan->link_count = config->pip_find_links.count;
    if (plan->link_count > FIND_LINKS_MAX)
        return fail (self, TAKO_ENVBUILD_BUILD_ERROR, "too many pip_find_links directories");
    if (!self->sandboxed || plan->link_count == 0)
        return 0;
    char *links = zsys_sprintf ("%s/links", self->scratch);
    int rc = links && directory_make (links, 0755) == 0? 0: -1;
    for (size_t i = 0; rc == 0 && i < plan->link_count; i++) {
        plan->link_sources [i] = config->pip_find_links.items [i];
        plan->link_targets [i] = zsys_sprintf ("%s/%zu", links, i);
        if (!plan->link_targets [i] || directory_make (plan->link_targets [i], 0755))
            rc = -1;
    }
    zstr_free (&links);
    return rc? fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot prepare the build directory"): 0;
}

static void
plan_clear (child_plan_t *plan)
{
    strings_free (plan->argv);
    strings_free (plan->envp);
    for (size_t i = 0; i < FIND_LINKS_MAX; i++)
        zstr_free (&plan->link_targets [i]);
}

//  Run pip into scratch/env. 0, or -1 (reported).
static int
pip_install (build_t *self)
{
    char *python = python_for (self);
    if (!python)
        return -1;
    const tako_config_t *config = self->options->config;
    child_plan_t plan = { .python = python, .scratch = self->scratch,
                          .sandbox_root = SANDBOX_ROOT, .sandboxed = self->sandboxed };
    bool index = config->pip_index_url && *config->pip_index_url;
    plan.offline = !index && config->pip_find_links.count > 0;
    const char *root = self->sandboxed? SANDBOX_ROOT: self->scratch;
    int rc = links_prepare (self, &plan);
    if (rc == 0) {
        plan.argv = pip_argv (self, python, root, plan.link_count);
        plan.envp = pip_envp (root);
        if (!plan.argv || !plan.envp)
            rc = fail (self, TAKO_ENVBUILD_BUILD_ERROR, "out of memory");
    }
    int pipe_fds [2] = { -1, -1 };
    //  Only our end is non-blocking: pip's writes must not fail.
    if (rc == 0 && (pipe2 (pipe_fds, O_CLOEXEC)
                ||  fcntl (pipe_fds [0], F_SETFL, O_NONBLOCK)))
        rc = fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot start pip");
    pid_t pid = -1;
    if (rc == 0) {
        plan.output_fd = pipe_fds [1];
        pid = fork ();
        if (pid == 0)
            child_run (&plan);
        close (pipe_fds [1]);
        if (pid < 0)
            rc = fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot start pip");
    }
    if (rc == 0) {
        size_t count = 0;
        tako_envspec_requirements (self->spec, &count);
        char *detail = zsys_sprintf ("pip install %zu requirement%s", count, count == 1? "": "s");
        progress (self, "installing", detail? detail: "pip install");
        zstr_free (&detail);
        char *output = (char *) calloc (1, OUTPUT_KEEP + 1);
        int status = output? pip_wait (self, pid, pipe_fds [0], output): -1;
        char *env = zsys_sprintf ("%s/env", self->scratch);
        bool succeeded = status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0
                      && env && is_directory (env);
        if (!succeeded) {
            char *reason = NULL;
            if (cancelled (self))
                reason = strdup ("the build was cancelled");
            else
            if (status == -1)
                reason = zsys_sprintf ("pip did not finish within %d s",
                                       (int) ((self->deadline - self->started) / MS_PER_SECOND));
            else
            if (output && strstr (output, "No module named pip"))
                reason = strdup ("pip is not installed for this Python (install python3-pip)");
            else
                reason = reason_from_output (output? output: "", "pip failed");
            bool setup = status != -1 && WIFEXITED (status)
                      && WEXITSTATUS (status) == CHILD_SETUP_FAILED;
            rc = fail (self, setup? TAKO_ENVBUILD_BUILD_ERROR: TAKO_ENVBUILD_DEPENDENCY_ERROR,
                       reason? reason: "pip failed");
            free (reason);
        }
        zstr_free (&env);
        free (output);
    }
    if (pipe_fds [0] >= 0)
        close (pipe_fds [0]);
    plan_clear (&plan);
    zstr_free (&python);
    return rc;
}

//  ---------------------------------------------------------------------
//  The build

static int
meta_write (build_t *self, const char *env)
{
    char *path = zsys_sprintf ("%s/%s", env, TAKO_ENVBUILD_META_FILE);
    json_t *spec = json_loads (tako_envspec_canonical (self->spec), 0, NULL);
    json_t *meta = json_pack ("{s:s, s:o, s:s}", "digest", tako_envspec_digest (self->spec),
                              "spec", spec? spec: json_null (),
                              "built_at", self->result->built_at);
    int rc = path && meta? json_dump_file (meta, path, JSON_SORT_KEYS | JSON_INDENT (2)): -1;
    json_decref (meta);
    zstr_free (&path);
    return rc;
}

//  Wait for the digest's lock (another build of the same environment may
//  hold it). The lock fd, or -1 (reported).
static int
lock_take (build_t *self)
{
    char *locks = zsys_sprintf ("%s/.locks", self->envs);
    char *path = locks? zsys_sprintf ("%s/%s.lock", locks, tako_envspec_digest (self->spec)): NULL;
    int fd = path && directory_make (locks, 0700) == 0?
        open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600): -1;
    zstr_free (&path);
    zstr_free (&locks);
    if (fd < 0)
        return fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot create the build lock");
    bool told = false;
    while (flock (fd, LOCK_EX | LOCK_NB)) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        if (!told) {
            progress (self, "waiting", "another build of this environment is running");
            told = true;
        }
        if (zclock_mono () >= self->deadline || cancelled (self)) {
            close (fd);
            return fail (self, TAKO_ENVBUILD_BUILD_ERROR,
                         "timed out waiting for another build of this environment");
        }
        zclock_sleep (WAIT_SLICE_MS);
    }
    return fd;
}

//  Move scratch/env into place; with force an existing one is swapped
//  out (jobs that mounted it keep it) and removed with the scratch.
static int
env_publish (build_t *self)
{
    char *env = zsys_sprintf ("%s/env", self->scratch);
    int rc = env? 0: -1;
    if (rc == 0 && self->sandboxed && nftw (env, seal_entry, WALK_FDS_MAX, FTW_PHYS | FTW_MOUNT))
        rc = -1;
    if (rc == 0 && meta_write (self, env))
        rc = -1;
    if (rc == 0 && is_directory (self->final))
        rc = renameat2 (AT_FDCWD, env, AT_FDCWD, self->final, RENAME_EXCHANGE);
    else
    if (rc == 0)
        rc = rename (env, self->final);
    zstr_free (&env);
    return rc? fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot move the environment into place"): 0;
}

//  Scratch directories of this digest left by a build that was killed:
//  we hold the digest's lock, so no live build owns one.
static void
stale_scratch_remove (build_t *self)
{
    char *prefix = zsys_sprintf (".tmp-%s-", tako_envspec_digest (self->spec));
    DIR *directory = prefix? opendir (self->envs): NULL;
    for (struct dirent *entry; directory && (entry = readdir (directory)); )
        if (strncmp (entry->d_name, prefix, strlen (prefix)) == 0) {
            char *path = zsys_sprintf ("%s/%s", self->envs, entry->d_name);
            tree_remove (path);
            zstr_free (&path);
        }
    if (directory)
        closedir (directory);
    zstr_free (&prefix);
}

static int
build_locked (build_t *self)
{
    if (!self->options->force && is_directory (self->final)) {
        self->result->cached = true;
        return 0;
    }
    stale_scratch_remove (self);
    self->scratch = zsys_sprintf ("%s/.tmp-%s-XXXXXX", self->envs, tako_envspec_digest (self->spec));
    if (!self->scratch || !mkdtemp (self->scratch)) {
        zstr_free (&self->scratch);
        return fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot create the build directory");
    }
    self->result->built_at = now_iso8601 ();
    size_t count = 0;
    tako_envspec_requirements (self->spec, &count);
    int rc = 0;
    if (count == 0) {
        char *env = zsys_sprintf ("%s/env", self->scratch);
        rc = env && mkdir (env, 0755) == 0? 0:
             fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot create the environment");
        zstr_free (&env);
    }
    else {
        if (self->sandboxed && (chown (self->scratch, BUILD_UID, BUILD_GID)
                            ||  chmod (self->scratch, 0755)))
            rc = fail (self, TAKO_ENVBUILD_BUILD_ERROR, "cannot prepare the build directory");
        if (rc == 0)
            rc = pip_install (self);
    }
    if (rc == 0)
        rc = env_publish (self);
    tree_remove (self->scratch);
    return rc;
}

int
tako_envbuild_run (tako_envspec_t *spec, const tako_envbuild_options_t *options,
                   tako_envbuild_result_t *result)
{
    assert (spec && options && options->config && result);
    const tako_config_t *config = options->config;
    build_t self = { .options = options, .spec = spec, .result = result,
                     .data_dir = config->data_dir, .started = zclock_mono () };
    int timeout_s = options->timeout_s > 0? options->timeout_s: config->max_startup_timeout;
    self.deadline = self.started + (int64_t) timeout_s * MS_PER_SECOND;
    self.sandboxed = geteuid () == 0;
    progress (&self, "resolving", tako_envspec_job_ref (spec));
    self.envs = zsys_sprintf ("%s/%s", config->data_dir, TAKO_ENVBUILD_DIR);
    self.final = tako_envbuild_env_path (config->data_dir, tako_envspec_digest (spec));
    int rc = 0;
    if (!self.envs || !self.final
    ||  directory_make_parents (config->data_dir, 0755) || directory_make (self.envs, 0755))
        rc = fail (&self, TAKO_ENVBUILD_BUILD_ERROR, "cannot create the environments directory");
    if (rc == 0 && !options->force && is_directory (self.final))
        result->cached = true;
    else
    if (rc == 0) {
        int lock = lock_take (&self);
        rc = lock < 0? -1: build_locked (&self);
        if (lock >= 0)
            close (lock);
    }
    if (rc == 0) {
        result->env_path = strdup (self.final);
        if (!result->built_at) {
            //  Cached: the environment says when it was built.
            char *meta = zsys_sprintf ("%s/%s", self.final, TAKO_ENVBUILD_META_FILE);
            json_t *info = meta? json_load_file (meta, 0, NULL): NULL;
            const char *built_at = json_string_value (json_object_get (info, "built_at"));
            result->built_at = built_at? strdup (built_at): now_iso8601 ();
            json_decref (info);
            zstr_free (&meta);
        }
    }
    result->duration_ms = zclock_mono () - self.started;
    if (rc == 0) {
        char *detail = zsys_sprintf ("%s in %.1f s", result->cached? "cached": "built",
                                     (double) result->duration_ms / MS_PER_SECOND);
        progress (&self, "done", detail? detail: "done");
        zstr_free (&detail);
    }
    zstr_free (&self.scratch);
    zstr_free (&self.envs);
    zstr_free (&self.final);
    return rc;
}

void
tako_envbuild_result_clear (tako_envbuild_result_t *result)
{
    assert (result);
    free (result->env_path);
    free (result->built_at);
    free (result->error_type);
    free (result->reason);
    memset (result, 0, sizeof *result);
}

char *
tako_envbuild_env_path (const char *data_dir, const char *digest)
{
    if (!data_dir || !digest)
        return NULL;
    return zsys_sprintf ("%s/%s/%s", data_dir, TAKO_ENVBUILD_DIR, digest);
}

bool
tako_envbuild_exists (const char *data_dir, const char *digest)
{
    char *path = tako_envbuild_env_path (data_dir, digest);
    bool exists = path && is_directory (path);
    zstr_free (&path);
    return exists;
}

char *
tako_envbuild_find (const char *data_dir, const char *job_ref)
{
    if (!data_dir || !tako_envspec_is_job_ref (job_ref))
        return NULL;
    char *envs = zsys_sprintf ("%s/%s", data_dir, TAKO_ENVBUILD_DIR);
    DIR *directory = envs? opendir (envs): NULL;
    zstr_free (&envs);
    if (!directory)
        return NULL;
    char *found = NULL;
    size_t matches = 0;
    for (struct dirent *entry; (entry = readdir (directory)); )
        if (strlen (entry->d_name) == TAKO_SHA256_HEX_SIZE - 1
        &&  tako_envspec_ref_matches (job_ref, entry->d_name)
        &&  matches++ == 0)
            found = strdup (entry->d_name);
    closedir (directory);
    if (matches > 1)
        zstr_free (&found);
    return found;
}

char *
tako_envbuild_path_for_job (const tako_config_t *config, const tako_config_job_type_t *job_type,
                            const char *const *requirements, size_t count,
                            const char *job_ref, char **error)
{
    assert (config && job_type);
    char *pinned = job_ref? tako_envbuild_find (config->data_dir, job_ref): NULL;
    if (pinned) {
        char *path = tako_envbuild_env_path (config->data_dir, pinned);
        zstr_free (&pinned);
        return path;
    }
    tako_envspec_t *spec = tako_envspec_new (job_type, requirements, count, error);
    const char *digest = spec? tako_envspec_digest (spec): NULL;
    char *path = digest && tako_envbuild_exists (config->data_dir, digest)?
                 tako_envbuild_env_path (config->data_dir, digest): NULL;
    tako_envspec_destroy (&spec);
    return path;
}

//  ---------------------------------------------------------------------
//  Self-test

static void
test_progress (void *arg, const char *phase, const char *detail)
{
    (void) detail;
    int *calls = (int *) arg;
    if (streq (phase, "done"))
        (*calls)++;
}

void
tako_envbuild_test (bool verbose)
{
    (void) verbose;
    //  Reasons keep pip's last lines, without host paths or noise.
    char *reason = reason_from_output (
        "Looking in links: /srv/wheels\n"
        "ERROR: Could not find a version that satisfies the requirement nope==1 (from versions: none)\n"
        "ERROR: Could not open '/home/alice/secret/x.whl'\n"
        "\n[notice] A new release of pip is available\n", "fallback");
    assert (reason);
    assert (strstr (reason, "nope==1"));
    assert (strstr (reason, "'x.whl'"));
    assert (!strstr (reason, "/home") && !strstr (reason, "alice") && !strstr (reason, "notice"));
    zstr_free (&reason);
    reason = reason_from_output ("", "fallback");
    assert (reason && streq (reason, "fallback"));
    zstr_free (&reason);
    char clean [64];
    line_sanitize ("Processing file:///var/lib/x/pkg-1.0.whl (a/b)", clean, sizeof clean);
    assert (streq (clean, "Processing file:pkg-1.0.whl (a/b)"));

    //  A job type without requirements: an empty environment, at once,
    //  then cached with the same built_at.
    char root [] = "/tmp/tako-envbuild-test-XXXXXX";
    assert (mkdtemp (root));
    tako_config_t *config = tako_config_new ();
    assert (config);
    free (config->data_dir);
    config->data_dir = strdup (root);
    tako_config_job_type_t job_type = { .name = "plain", .python_version = "", .base = "" };
    tako_envspec_t *spec = tako_envspec_new (&job_type, NULL, 0, NULL);
    assert (spec);
    int done = 0;
    tako_envbuild_options_t options = { .config = config, .progress = test_progress,
                                        .progress_arg = &done };
    tako_envbuild_result_t result = { 0 };
    assert (tako_envbuild_run (spec, &options, &result) == 0);
    assert (!result.cached && result.env_path && result.built_at && done == 1);
    assert (tako_envbuild_exists (root, tako_envspec_digest (spec)));
    char *first_built_at = strdup (result.built_at);
    tako_envbuild_result_clear (&result);
    assert (tako_envbuild_run (spec, &options, &result) == 0);
    assert (result.cached && streq (result.built_at, first_built_at) && done == 2);
    tako_envbuild_result_clear (&result);
    free (first_built_at);

    //  What a job of this type runs with, without building anything.
    char *path = tako_envbuild_path_for_job (config, &job_type, NULL, 0, NULL, NULL);
    char *expected = tako_envbuild_env_path (root, tako_envspec_digest (spec));
    assert (path && expected && streq (path, expected));
    zstr_free (&path);
    const char *extra [] = { "six" };
    assert (tako_envbuild_path_for_job (config, &job_type, extra, 1, NULL, NULL) == NULL);
    char *error = NULL;
    const char *bad [] = { "-r /etc/passwd" };
    assert (tako_envbuild_path_for_job (config, &job_type, bad, 1, NULL, &error) == NULL && error);
    zstr_free (&error);
    //  A pinned job_ref wins over the job type's current spec.
    path = tako_envbuild_path_for_job (config, &job_type, extra, 1,
                                       tako_envspec_job_ref (spec), NULL);
    assert (path && streq (path, expected));
    zstr_free (&path);
    zstr_free (&expected);

    //  The job_ref finds it again.
    char *digest = tako_envbuild_find (root, tako_envspec_job_ref (spec));
    assert (digest && streq (digest, tako_envspec_digest (spec)));
    zstr_free (&digest);
    assert (tako_envbuild_find (root, "plain@sha256:000000000000") == NULL);

    //  A Python that is not there is a build error, not a crash.
    tako_config_job_type_t old_python = job_type;
    old_python.python_version = "9.9";
    char *needs_pip [] = { "pkg==1.0", NULL };
    old_python.requirements.count = 1;
    old_python.requirements.items = needs_pip;
    tako_envspec_t *missing = tako_envspec_new (&old_python, NULL, 0, NULL);
    assert (tako_envbuild_run (missing, &options, &result) == -1);
    assert (streq (result.error_type, TAKO_ENVBUILD_BUILD_ERROR) && strstr (result.reason, "9.9"));
    tako_envbuild_result_clear (&result);
    tako_envspec_destroy (&missing);

    //  A build killed earlier left its scratch directory: the next build
    //  of that digest removes it.
    char *stale = zsys_sprintf ("%s/envs/.tmp-%s-dead01", root, tako_envspec_digest (spec));
    assert (stale && mkdir (stale, 0755) == 0);
    options.force = true;
    assert (tako_envbuild_run (spec, &options, &result) == 0 && !result.cached);
    assert (!is_directory (stale));
    options.force = false;
    tako_envbuild_result_clear (&result);
    zstr_free (&stale);

    //  A cancelled build fails and leaves nothing.
    char *items [] = { "pkg==1.0", NULL };
    job_type.requirements.count = 1;
    job_type.requirements.items = items;
    tako_envspec_t *other = tako_envspec_new (&job_type, NULL, 0, NULL);
    atomic_bool cancel = true;
    options.cancel = &cancel;
    assert (tako_envbuild_run (other, &options, &result) == -1);
    assert (result.error_type && result.reason && !result.env_path);
    assert (!tako_envbuild_exists (root, tako_envspec_digest (other)));
    tako_envbuild_result_clear (&result);
    tako_envspec_destroy (&other);

    tako_envspec_destroy (&spec);
    tree_remove (root);
    tako_config_destroy (&config);
}
