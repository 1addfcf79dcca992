/*  sandbox_cgroup — one group per sandbox, v1 or v2.  */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "sandbox_cgroup.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
//  Largest cgroup control file we read (cgroup.procs of a small group,
//  memory.oom_control, cpu.stat...).
#define CONTROL_FILE_MAX  16384
#define PROC_CGROUP_MAX   8192
#define KILL_ROUNDS       50

typedef enum {
    ROLE_V2,            //  pure v2 group with controllers
    ROLE_MEMORY,        //  v1
    ROLE_PIDS,          //  v1
    ROLE_CPU,           //  v1
    ROLE_CPUACCT,       //  v1, CPU accounting when no unified group
    ROLE_UNIFIED,       //  controller-less v2 next to v1: kill + cpu.stat
    ROLE_COUNT
} role_t;

struct tako_sandbox_cgroup_t {
    char *dirs [ROLE_COUNT];        //  NULL where not used
    bool pure_v2;
};

//  ---------------------------------------------------------------------

static int
control_write (const char *dir, const char *file, const char *text)
{
    char path [PATH_MAX];
    if (snprintf (path, sizeof (path), "%s/%s", dir, file) >= (int) sizeof (path))
        return -1;
    int fd = open (path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t size = (ssize_t) strlen (text);
    int rc = write (fd, text, (size_t) size) == size? 0: -1;
    close (fd);
    return rc;
}

//  Read a control file into buffer (NUL-terminated). Returns 0 or -1.
static int
control_read (const char *dir, const char *file, char *buffer, size_t size)
{
    char path [PATH_MAX];
    if (snprintf (path, sizeof (path), "%s/%s", dir, file) >= (int) sizeof (path))
        return -1;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t filled = 0;
    ssize_t got;
    while (filled + 1 < size && (got = read (fd, buffer + filled, size - 1 - filled)) > 0)
        filled += (size_t) got;
    close (fd);
    buffer [filled] = '\0';
    return 0;
}

//  The value after "key " in a "key value" list (cpu.stat, memory.events).
static bool
keyed_value (const char *text, const char *key, int64_t *value)
{
    size_t key_size = strlen (key);
    for (const char *line = text; line && *line; line = strchr (line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp (line, key, key_size) == 0 && line [key_size] == ' ') {
            *value = strtoll (line + key_size + 1, NULL, 10);
            return true;
        }
    }
    return false;
}

static bool
is_cgroup2 (const char *path)
{
    struct statfs status;
    return statfs (path, &status) == 0 && status.f_type == CGROUP2_SUPER_MAGIC;
}

//  Our own path in the hierarchy that holds controller (v1), or in the v2
//  hierarchy when controller is "". Returns 0 and fills path, else -1.
//  hierarchy gets the name of the mount directory ("cpu,cpuacct").
static int
own_cgroup_path (const char *controller, char *hierarchy, size_t hierarchy_size,
                 char *path, size_t path_size)
{
    char text [PROC_CGROUP_MAX];
    if (control_read ("/proc/self", "cgroup", text, sizeof (text)) != 0)
        return -1;
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *first = strchr (line, ':');
        char *second = first? strchr (first + 1, ':'): NULL;
        if (!second)
            continue;
        *second = '\0';
        const char *controllers = first + 1;
        bool match = false;
        if (*controller == '\0')
            match = strcmp (line, "0") == 0 && *controllers == '\0';
        else {
            char list [256];
            snprintf (list, sizeof (list), ",%s,", controllers);
            char wanted [64];
            snprintf (wanted, sizeof (wanted), ",%s,", controller);
            match = strstr (list, wanted) != NULL;
        }
        if (match) {
            snprintf (hierarchy, hierarchy_size, "%s", controllers);
            snprintf (path, path_size, "%s", strcmp (second + 1, "/") == 0? "": second + 1);
            return 0;
        }
    }
    return -1;
}

static bool procs_kill (const char *dir);

//  A group named tako-sandbox-<pid>-... whose creating process is gone was
//  left by a creator that was killed (SIGKILL leaves no chance to clean
//  up). Its processes died with the creator (parent-death signal), so it
//  is empty or nearly: kill what is left and remove it. A live creator's
//  groups, or a reused pid's, are left alone.
static void
stale_groups_sweep (const char *dir)
{
    DIR *listing = opendir (dir);
    if (!listing)
        return;
    struct dirent *entry;
    while ((entry = readdir (listing))) {
        int creator = 0;
        if (sscanf (entry->d_name, TAKO_SANDBOX_CGROUP_PREFIX "%d-", &creator) != 1
        ||  creator <= 0 || creator == (int) getpid ()
        ||  kill (creator, 0) == 0 || errno != ESRCH)
            continue;
        char path [PATH_MAX];
        if (snprintf (path, sizeof (path), "%s/%s", dir, entry->d_name) >= (int) sizeof (path))
            continue;
        for (int round = 0; round < KILL_ROUNDS && !procs_kill (path); round++)
            ;
        rmdir (path);
    }
    closedir (listing);
}

static char *
group_create (const char *mount, const char *parent, const char *name)
{
    char dir [PATH_MAX], path [PATH_MAX];
    if (snprintf (dir, sizeof (dir), "%s%s", mount, parent) >= (int) sizeof (dir))
        return NULL;
    stale_groups_sweep (dir);
    if (snprintf (path, sizeof (path), "%s/%s", dir, name) >= (int) sizeof (path)
    ||  mkdir (path, 0755) != 0)
        return NULL;
    return strdup (path);
}

static int
v1_group_add (tako_sandbox_cgroup_t *self, role_t role, const char *controller, const char *name)
{
    char hierarchy [256], parent [PATH_MAX], mount [PATH_MAX];
    if (own_cgroup_path (controller, hierarchy, sizeof (hierarchy), parent, sizeof (parent)) != 0)
        return -1;
    snprintf (mount, sizeof (mount), "%s/%s", TAKO_SANDBOX_CGROUP_ROOT, hierarchy);
    struct stat status;
    if (stat (mount, &status) != 0 || !S_ISDIR (status.st_mode))
        return -1;
    self->dirs [role] = group_create (mount, parent, name);
    return self->dirs [role]? 0: -1;
}

static int
v1_memory_limit (const char *dir, int64_t bytes)
{
    char text [32];
    snprintf (text, sizeof (text), "%" PRId64, bytes);
    if (control_write (dir, "memory.limit_in_bytes", text) != 0)
        return -1;
    //  memory+swap equal to memory: no swap. Absent without swap accounting.
    char path [PATH_MAX];
    snprintf (path, sizeof (path), "%s/memory.memsw.limit_in_bytes", dir);
    if (access (path, F_OK) == 0 && control_write (dir, "memory.memsw.limit_in_bytes", text) != 0)
        return -1;
    return 0;
}

static int
v1_setup (tako_sandbox_cgroup_t *self, const char *name,
          const tako_sandbox_cgroup_limits_t *limits, const char **error)
{
    char text [64];
    if (v1_group_add (self, ROLE_MEMORY, "memory", name) != 0) {
        if (limits->memory_bytes > 0) {
            *error = "no usable memory controller";
            return -1;
        }
    }
    else
    if (limits->memory_bytes > 0 && v1_memory_limit (self->dirs [ROLE_MEMORY], limits->memory_bytes) != 0) {
        *error = "cannot set the memory limit";
        return -1;
    }
    if (v1_group_add (self, ROLE_PIDS, "pids", name) != 0) {
        if (limits->pids_max > 0) {
            *error = "no usable pids controller";
            return -1;
        }
    }
    else
    if (limits->pids_max > 0) {
        snprintf (text, sizeof (text), "%d", limits->pids_max);
        if (control_write (self->dirs [ROLE_PIDS], "pids.max", text) != 0) {
            *error = "cannot set the pids limit";
            return -1;
        }
    }
    if (v1_group_add (self, ROLE_CPU, "cpu", name) != 0) {
        if (limits->cpu_cores > 0) {
            *error = "no usable cpu controller";
            return -1;
        }
    }
    else
    if (limits->cpu_cores > 0) {
        snprintf (text, sizeof (text), "%d", TAKO_SANDBOX_CPU_PERIOD_US);
        int rc = control_write (self->dirs [ROLE_CPU], "cpu.cfs_period_us", text);
        snprintf (text, sizeof (text), "%lld",
                  (long long) (limits->cpu_cores * TAKO_SANDBOX_CPU_PERIOD_US));
        if (rc != 0 || control_write (self->dirs [ROLE_CPU], "cpu.cfs_quota_us", text) != 0) {
            *error = "cannot set the cpu quota";
            return -1;
        }
    }
    //  Kill and CPU accounting from the controller-less v2 tree if mounted.
    char unified [PATH_MAX];
    snprintf (unified, sizeof (unified), "%s/unified", TAKO_SANDBOX_CGROUP_ROOT);
    char hierarchy [256], parent [PATH_MAX];
    if (is_cgroup2 (unified)
    &&  own_cgroup_path ("", hierarchy, sizeof (hierarchy), parent, sizeof (parent)) == 0)
        self->dirs [ROLE_UNIFIED] = group_create (unified, parent, name);
    if (!self->dirs [ROLE_UNIFIED] && self->dirs [ROLE_CPU]
    &&  strstr (self->dirs [ROLE_CPU], "cpuacct") == NULL)
        v1_group_add (self, ROLE_CPUACCT, "cpuacct", name);
    return 0;
}

static int
v2_setup (tako_sandbox_cgroup_t *self, const char *name,
          const tako_sandbox_cgroup_limits_t *limits, const char **error)
{
    char hierarchy [256], parent [PATH_MAX], parent_dir [PATH_MAX];
    if (own_cgroup_path ("", hierarchy, sizeof (hierarchy), parent, sizeof (parent)) != 0) {
        *error = "cannot find our own cgroup";
        return -1;
    }
    if (snprintf (parent_dir, sizeof (parent_dir), "%s%s", TAKO_SANDBOX_CGROUP_ROOT, parent)
        >= (int) sizeof (parent_dir)) {
        *error = "cgroup path too long";
        return -1;
    }
    //  A group with processes cannot delegate controllers (no internal
    //  processes rule): the executor must then run in a leaf of its own.
    if (control_write (parent_dir, "cgroup.subtree_control", "+memory +pids +cpu") != 0) {
        *error = "cannot enable memory, pids and cpu controllers for sandboxes";
        return -1;
    }
    self->dirs [ROLE_V2] = group_create (TAKO_SANDBOX_CGROUP_ROOT, parent, name);
    if (!self->dirs [ROLE_V2]) {
        *error = "cannot create the sandbox cgroup";
        return -1;
    }
    const char *dir = self->dirs [ROLE_V2];
    char text [64];
    if (limits->memory_bytes > 0) {
        snprintf (text, sizeof (text), "%" PRId64, limits->memory_bytes);
        if (control_write (dir, "memory.max", text) != 0) {
            *error = "cannot set the memory limit";
            return -1;
        }
        control_write (dir, "memory.swap.max", "0");   //  absent without swap
    }
    if (limits->pids_max > 0) {
        snprintf (text, sizeof (text), "%d", limits->pids_max);
        if (control_write (dir, "pids.max", text) != 0) {
            *error = "cannot set the pids limit";
            return -1;
        }
    }
    if (limits->cpu_cores > 0) {
        snprintf (text, sizeof (text), "%lld %d",
                  (long long) (limits->cpu_cores * TAKO_SANDBOX_CPU_PERIOD_US), TAKO_SANDBOX_CPU_PERIOD_US);
        if (control_write (dir, "cpu.max", text) != 0) {
            *error = "cannot set the cpu quota";
            return -1;
        }
    }
    return 0;
}

tako_sandbox_cgroup_t *
tako_sandbox_cgroup_new (const char *name, const tako_sandbox_cgroup_limits_t *limits,
                         const char **error)
{
    if (!name || !*name || strchr (name, '/') || strcmp (name, "..") == 0) {
        *error = "invalid cgroup name";
        return NULL;
    }
    tako_sandbox_cgroup_t *self = calloc (1, sizeof (tako_sandbox_cgroup_t));
    if (!self) {
        *error = "out of memory";
        return NULL;
    }
    self->pure_v2 = is_cgroup2 (TAKO_SANDBOX_CGROUP_ROOT);
    int rc = self->pure_v2? v2_setup (self, name, limits, error): v1_setup (self, name, limits, error);
    if (rc != 0)
        tako_sandbox_cgroup_destroy (&self);
    return self;
}

//  SIGKILL each pid listed in dir/cgroup.procs; true when it was empty.
//  True when no process is listed (or the list cannot be read).
static bool
procs_empty (const char *dir)
{
    char text [CONTROL_FILE_MAX];
    if (control_read (dir, "cgroup.procs", text, sizeof (text)) != 0)
        return true;
    for (const char *c = text; *c; c++)
        if (*c >= '0' && *c <= '9')
            return false;
    return true;
}

static bool
procs_kill (const char *dir)
{
    char text [CONTROL_FILE_MAX];
    if (control_read (dir, "cgroup.procs", text, sizeof (text)) != 0)
        return true;
    bool empty = true;
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        pid_t pid = (pid_t) strtol (line, NULL, 10);
        if (pid > 0) {
            kill (pid, SIGKILL);
            empty = false;
        }
    }
    return empty;
}

int
tako_sandbox_cgroup_kill (tako_sandbox_cgroup_t *self)
{
    //  Usually the tree is gone already (the pid namespace died with its
    //  reaper): reading cgroup.procs is cheaper than writing cgroup.kill,
    //  which costs ~5 ms even on an empty group.
    bool empty = true;
    for (int role = 0; empty && role < ROLE_COUNT; role++)
        if (self->dirs [role])
            empty = procs_empty (self->dirs [role]);
    if (empty)
        return 0;
    const char *killable = self->dirs [ROLE_V2]? self->dirs [ROLE_V2]: self->dirs [ROLE_UNIFIED];
    if (killable && control_write (killable, "cgroup.kill", "1") == 0)
        return 0;
    //  No cgroup.kill: kill what is listed until nothing is (new forks
    //  are bounded by pids.max and die with the pid namespace anyway).
    for (int round = 0; round < KILL_ROUNDS; round++) {
        bool empty = true;
        for (int role = 0; role < ROLE_COUNT; role++)
            if (self->dirs [role] && !procs_kill (self->dirs [role]))
                empty = false;
        if (empty)
            return 0;
        usleep (TAKO_SANDBOX_CGROUP_RETRY_US);
    }
    return -1;
}

int
tako_sandbox_cgroup_attach (tako_sandbox_cgroup_t *self, pid_t pid)
{
    char text [32];
    snprintf (text, sizeof (text), "%d", (int) pid);
    for (int role = 0; role < ROLE_COUNT; role++)
        if (self->dirs [role] && control_write (self->dirs [role], "cgroup.procs", text) != 0)
            return -1;
    return 0;
}

//  v1 hierarchies have a tasks file; v2 groups (and the unified helper)
//  only cgroup.procs, whose "0" moves the whole process under the lock.
static bool
role_joinable (int role)
{
    return role == ROLE_MEMORY || role == ROLE_PIDS || role == ROLE_CPU || role == ROLE_CPUACCT;
}

int
tako_sandbox_cgroup_join_open (tako_sandbox_cgroup_t *self, int *fds)
{
    int count = 0;
    for (int role = 0; role < ROLE_COUNT; role++) {
        if (!self->dirs [role] || !role_joinable (role))
            continue;
        char path [PATH_MAX];
        int fd = -1;
        if (snprintf (path, sizeof (path), "%s/tasks", self->dirs [role]) < (int) sizeof (path))
            fd = open (path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || count == TAKO_SANDBOX_CGROUP_JOIN_MAX) {
            if (fd >= 0)
                close (fd);
            while (count > 0)
                close (fds [--count]);
            return -1;
        }
        fds [count++] = fd;
    }
    return count;
}

int
tako_sandbox_cgroup_attach_unjoined (tako_sandbox_cgroup_t *self, pid_t pid)
{
    char text [32];
    snprintf (text, sizeof (text), "%d", (int) pid);
    for (int role = 0; role < ROLE_COUNT; role++)
        if (self->dirs [role] && !role_joinable (role)
        &&  control_write (self->dirs [role], "cgroup.procs", text) != 0)
            return -1;
    return 0;
}

int
tako_sandbox_cgroup_join (const int *fds, int count)
{
    int rc = 0;
    for (int i = 0; i < count; i++) {
        if (rc == 0 && write (fds [i], "0", 1) != 1)
            rc = -1;
        int saved = errno;
        close (fds [i]);
        errno = saved;
    }
    return rc;
}

static void
usage_cpu (tako_sandbox_cgroup_t *self, tako_sandbox_cgroup_usage_t *usage)
{
    char text [CONTROL_FILE_MAX];
    const char *stat_dir = self->dirs [ROLE_V2]? self->dirs [ROLE_V2]: self->dirs [ROLE_UNIFIED];
    if (stat_dir && control_read (stat_dir, "cpu.stat", text, sizeof (text)) == 0
    &&  keyed_value (text, "usage_usec", &usage->cpu_usec))
        usage->have_cpu = true;
    else {
        const char *acct = self->dirs [ROLE_CPUACCT]? self->dirs [ROLE_CPUACCT]: self->dirs [ROLE_CPU];
        if (acct && control_read (acct, "cpuacct.usage", text, sizeof (text)) == 0 && *text) {
            usage->cpu_usec = strtoll (text, NULL, 10) / 1000;
            usage->have_cpu = true;
        }
    }
}

void
tako_sandbox_cgroup_usage (tako_sandbox_cgroup_t *self, tako_sandbox_cgroup_usage_t *usage)
{
    memset (usage, 0, sizeof (*usage));
    char text [CONTROL_FILE_MAX];
    int64_t value = 0;
    if (self->dirs [ROLE_V2]) {
        const char *dir = self->dirs [ROLE_V2];
        if (control_read (dir, "memory.peak", text, sizeof (text)) == 0 && *text) {
            usage->peak_bytes = strtoll (text, NULL, 10);
            usage->have_peak = true;
        }
        if (control_read (dir, "memory.events", text, sizeof (text)) == 0
        &&  keyed_value (text, "oom_kill", &value) && value > 0)
            usage->oom_killed = true;
    }
    else
    if (self->dirs [ROLE_MEMORY]) {
        const char *dir = self->dirs [ROLE_MEMORY];
        if (control_read (dir, "memory.max_usage_in_bytes", text, sizeof (text)) == 0 && *text) {
            usage->peak_bytes = strtoll (text, NULL, 10);
            usage->have_peak = true;
        }
        if (control_read (dir, "memory.oom_control", text, sizeof (text)) == 0
        &&  keyed_value (text, "oom_kill", &value) && value > 0)
            usage->oom_killed = true;
    }
    usage_cpu (self, usage);
}

const char *
tako_sandbox_cgroup_version (tako_sandbox_cgroup_t *self)
{
    return self->pure_v2? "v2": "v1";
}

size_t
tako_sandbox_cgroup_dir_count (tako_sandbox_cgroup_t *self)
{
    size_t count = 0;
    for (int role = 0; role < ROLE_COUNT; role++)
        if (self->dirs [role])
            count++;
    return count;
}

const char *
tako_sandbox_cgroup_dir (tako_sandbox_cgroup_t *self, size_t index)
{
    for (int role = 0; role < ROLE_COUNT; role++)
        if (self->dirs [role] && index-- == 0)
            return self->dirs [role];
    return NULL;
}

void
tako_sandbox_cgroup_destroy (tako_sandbox_cgroup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_sandbox_cgroup_t *self = *self_p;
    tako_sandbox_cgroup_kill (self);
    for (int role = 0; role < ROLE_COUNT; role++) {
        if (!self->dirs [role])
            continue;
        for (int attempt = 0; attempt < TAKO_SANDBOX_CGROUP_RMDIR_TRIES; attempt++) {
            if (rmdir (self->dirs [role]) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY)
                break;
            procs_kill (self->dirs [role]);
            usleep (TAKO_SANDBOX_CGROUP_RETRY_US);
        }
        free (self->dirs [role]);
    }
    free (self);
    *self_p = NULL;
}
