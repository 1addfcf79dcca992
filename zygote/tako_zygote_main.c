/*  tako-zygote — one started interpreter, cloned into a sandbox per job.

    Started by the executor (tako_zygote.h explains why and the wire):
        tako-zygote EXECUTOR_PID      with its socket on fd 3
    It becomes an unprivileged host user, reads the job type's spec, builds
    the template sandbox from it (the same plan the executor would use),
    starts Python with the job type's environment, flags and preload
    modules, and answers "OK". Then, per request, it clones a sandbox's
    first process; that process's interpreter child continues this
    interpreter (run_job) instead of exec'ing one.

    Never runs job code, never reads anything but its socket, one thread.  */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "tako_sandbox.h"
#include "tako_zygote.h"
#include "sandbox_bootstrap.h"

#define SOCKET_FD   3

//  In the job's interpreter, before the bootstrap: the job's sys.path as
//  `python -S -c` with the job's PYTHONPATH would have it ('' first, which
//  the bootstrap turns into /code), fresh import caches (the zygote saw
//  none of /env, /shared or /code), the bootstrap's argv (the preload
//  names; they are imported already), and the mark that makes the
//  bootstrap end the job without finalizing the interpreter.
static const char prologue [] =
    "import os, sys, importlib\n"
    "_tako = sys.__dict__.pop('_tako_zygote')\n"
    "if _tako[2]:\n"
    "    os.environ['PYTHONPATH'] = _tako[2]\n"
    "sys.path[:] = [''] + [p for p in _tako[2].split(os.pathsep) if p] + _tako[0]\n"
    "sys.path_importer_cache.clear()\n"
    "importlib.invalidate_caches()\n"
    "sys.argv[:] = ['-c'] + _tako[1]\n"
    "sys._tako_forked = True\n"
    "del _tako, importlib\n";

static void
answer (const char *text)
{
    ssize_t rc = send (SOCKET_FD, text, strlen (text), MSG_NOSIGNAL);
    (void) rc;
}

static void __attribute__ ((noreturn))
refuse (const char *format, const char *detail)
{
    char text [1024];
    snprintf (text, sizeof (text), format, detail? detail: "");
    answer (text);
    exit (1);
}

//  The prologue and the bootstrap, compiled once in the zygote: each job
//  runs them as PyRun_SimpleString would, without parsing them again.
static PyObject *prologue_code;
static PyObject *bootstrap_code;

//  Run code in __main__; on an exception, print it as Python would (a
//  SystemExit exits there). 0 or -1.
static int
run_main (PyObject *code)
{
    PyObject *main = PyImport_AddModule ("__main__");
    PyObject *globals = main? PyModule_GetDict (main): NULL;
    PyObject *result = globals? PyEval_EvalCode (code, globals, globals): NULL;
    if (!result) {
        if (PyErr_Occurred ())
            PyErr_Print ();
        return -1;
    }
    Py_DECREF (result);
    return 0;
}

//  The interpreter child of a clone: every layer is in place.
static void
run_job (void)
{
    PyOS_AfterFork_Child ();
    if (run_main (prologue_code) == 0 && run_main (bootstrap_code) == 0) {
        //  A forked job's bootstrap returns its exit code in
        //  sys._tako_exit_code instead of finalizing the interpreter:
        //  C's exit still flushes C stdio and runs C atexit handlers.
        PyObject *code = PySys_GetObject ("_tako_exit_code");
        long value = code? PyLong_AsLong (code): 1;
        if (value == -1 && PyErr_Occurred ())
            value = 1;
        exit ((int) (value & 0xff));
    }
    _exit (1);
}

//  Unprivileged, and dead with the executor.
static void
identity_drop (pid_t executor)
{
    if (geteuid () == 0) {
        gid_t id = TAKO_ZYGOTE_HOST_ID;
        if (setgroups (0, NULL) != 0 || setresgid (id, id, id) != 0 || setresuid (id, id, id) != 0)
            refuse ("ERR cannot become an unprivileged user: %s", strerror (errno));
    }
    prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid () != executor)
        exit (1);
}

static tako_sandbox_t *
template_receive (tako_sandbox_spec_t *spec, void **storage)
{
    char *buffer = malloc (TAKO_ZYGOTE_SPEC_MAX + 1);
    ssize_t size = buffer? recv (SOCKET_FD, buffer, TAKO_ZYGOTE_SPEC_MAX, 0): -1;
    if (size <= 0)
        exit (1);
    json_t *json = json_loadb (buffer, (size_t) size, 0, NULL);
    free (buffer);
    if (!json || tako_zygote_spec_decode (json, spec, storage) != 0)
        refuse ("ERR the spec is malformed%s", NULL);
    json_decref (json);
    tako_sandbox_t *template = tako_sandbox_new (spec);
    if (!template)
        refuse ("ERR the spec is invalid%s", NULL);
    if (tako_sandbox_error (template))
        refuse ("ERR %s", tako_sandbox_error (template));
    return template;
}

static int
threads_count (void)
{
    FILE *file = fopen ("/proc/self/status", "re");
    char line [256];
    int threads = -1;
    while (file && fgets (line, sizeof (line), file))
        if (sscanf (line, "Threads: %d", &threads) == 1)
            break;
    if (file)
        fclose (file);
    return threads;
}

static void
config_string (PyConfig *config, wchar_t **field, const char *value)
{
    PyStatus status = PyConfig_SetBytesString (config, field, value);
    if (PyStatus_Exception (status))
        refuse ("ERR cannot configure the interpreter: %s", status.err_msg);
}

//  Python as `python3 -S -c` (or -s with system packages) would start in
//  the sandbox: the job type's environment, unbuffered, no bytecode.
//  The job's PYTHONPATH names sandbox paths (/env, /shared) that must not
//  be searched on the host while the interpreter starts: it is set after.
static const char *job_pythonpath;

static void
interpreter_start (tako_sandbox_t *template, const tako_sandbox_spec_t *spec)
{
    clearenv ();
    for (char *const *entry = tako_sandbox_envp (template); entry && *entry; entry++) {
        if (strncmp (*entry, "PYTHONPATH=", 11) == 0) {
            job_pythonpath = *entry + 11;
            continue;
        }
        if (putenv (*entry) != 0)
            refuse ("ERR cannot set the environment%s", NULL);
    }
    PyConfig config;
    PyConfig_InitPythonConfig (&config);
    config.site_import = spec->system_packages? 1: 0;
    config.user_site_directory = 0;
    config.buffered_stdio = 0;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    config_string (&config, &config.program_name, spec->python_path);
    config_string (&config, &config.executable, spec->python_path);
    char *argv [] = { "-c", NULL };
    PyStatus status = PyConfig_SetBytesArgv (&config, 1, argv);
    if (!PyStatus_Exception (status))
        status = Py_InitializeFromConfig (&config);
    PyConfig_Clear (&config);
    if (PyStatus_Exception (status))
        refuse ("ERR the interpreter did not start: %s", status.err_msg);
}

//  sys.path without the job's PYTHONPATH (not there on this host), the
//  prologue and bootstrap compiled, the modules they import (importlib,
//  _sitebuiltins) and the preload modules imported, objects frozen (the clones do not copy pages
//  for the collector's sake), and what the prologue needs.
static void
interpreter_prepare (const tako_sandbox_spec_t *spec)
{
    PyObject *preload = PyList_New (0);
    for (size_t i = 0; preload && i < spec->preload_count; i++) {
        PyObject *name = PyUnicode_DecodeFSDefault (spec->preload [i]);
        if (!name || PyList_Append (preload, name) != 0)
            refuse ("ERR out of memory%s", NULL);
        Py_DECREF (name);
    }
    if (!preload || PySys_SetObject ("_tako_preload", preload) != 0)
        refuse ("ERR out of memory%s", NULL);
    Py_DECREF (preload);
    PyObject *pythonpath = PyUnicode_DecodeFSDefault (job_pythonpath? job_pythonpath: "");
    if (!pythonpath || PySys_SetObject ("_tako_pythonpath", pythonpath) != 0)
        refuse ("ERR out of memory%s", NULL);
    Py_DECREF (pythonpath);
    static const char setup [] =
        "import os, sys, gc\n"
        "def _tako_setup():\n"
        "    sys.path[:] = [p for p in sys.path if p != '']\n"
        "    sys.path_importer_cache.clear()\n"
        "    import importlib, _sitebuiltins\n"
        "    for name in sys._tako_preload:\n"
        "        __import__(name)\n"
        "    sys._tako_zygote = (list(sys.path), list(sys._tako_preload), sys._tako_pythonpath)\n"
        "    del sys._tako_preload, sys._tako_pythonpath\n"
        "    gc.collect()\n"
        "    gc.freeze()\n"
        "try:\n"
        "    _tako_setup()\n"
        "finally:\n"
        "    del _tako_setup\n";
    prologue_code = Py_CompileString (prologue, "<string>", Py_file_input);
    bootstrap_code = Py_CompileString (tako_sandbox_bootstrap_source, "<string>", Py_file_input);
    if (!prologue_code || !bootstrap_code)
        refuse ("ERR the bootstrap does not compile%s", NULL);
    PyObject *main = PyImport_AddModule ("__main__");
    PyObject *globals = main? PyModule_GetDict (main): NULL;
    PyObject *result = globals? PyRun_String (setup, Py_file_input, globals, globals): NULL;
    if (!result) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch (&type, &value, &traceback);
        PyObject *text = value? PyObject_Str (value): NULL;
        const char *message = text? PyUnicode_AsUTF8 (text): NULL;
        refuse ("ERR a preload module did not import: %s", message? message: "unknown error");
    }
    Py_DECREF (result);
    if (threads_count () != 1)
        refuse ("ERR a preload module started a thread; forking it is unsafe%s", NULL);
}

//  One request: the pipe ends in, a pid (or -errno) out.
static int
request_serve (tako_sandbox_t *template)
{
    char body [16];
    char control [CMSG_SPACE (sizeof (int) * TAKO_SANDBOX_ZYGOTE_FDS_MAX)];
    struct iovec vector = { body, sizeof (body) };
    struct msghdr message = { 0 };
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof (control);
    ssize_t size = recvmsg (SOCKET_FD, &message, MSG_CMSG_CLOEXEC);
    if (size < 0 && errno == EINTR)
        return 0;
    if (size <= 0)
        return -1;                  //  the executor is done with us
    int fds [TAKO_SANDBOX_ZYGOTE_FDS_MAX];
    size_t count = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR (&message); header;
         header = CMSG_NXTHDR (&message, header))
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
            size_t got = (header->cmsg_len - CMSG_LEN (0)) / sizeof (int);
            for (size_t i = 0; i < got; i++) {
                int fd;
                memcpy (&fd, CMSG_DATA (header) + i * sizeof (int), sizeof (int));
                if (count < TAKO_SANDBOX_ZYGOTE_FDS_MAX)
                    fds [count++] = fd;
                else
                    close (fd);
            }
        }
    int32_t reply = -EINVAL;
    if (size == 5 && memcmp (body, "SPAWN", 5) == 0 && count >= TAKO_SANDBOX_ZYGOTE_FDS
    &&  !(message.msg_flags & MSG_CTRUNC)) {
        PyOS_BeforeFork ();
        pid_t pid = tako_sandbox_zygote_clone (template, fds, count, run_job);
        int saved = errno;
        PyOS_AfterFork_Parent ();
        reply = pid > 0? (int32_t) pid: -saved;
    }
    for (size_t i = 0; i < count; i++)
        close (fds [i]);
    if (send (SOCKET_FD, &reply, sizeof (reply), MSG_NOSIGNAL) != sizeof (reply))
        return -1;
    return 0;
}

int
main (int argc, char *argv [])
{
    struct stat socket_stat;
    if (argc != 2 || fstat (SOCKET_FD, &socket_stat) != 0 || !S_ISSOCK (socket_stat.st_mode)) {
        fprintf (stderr, "tako-zygote is started by the tako-vm executor, not by hand\n");
        return 2;
    }
    //  Started from a memfd, our name would be its fd number.
    prctl (PR_SET_NAME, TAKO_ZYGOTE_PROGRAM, 0, 0, 0);
    identity_drop ((pid_t) atoi (argv [1]));
    syscall (SYS_close_range, SOCKET_FD + 1, ~0U, 0);
    tako_sandbox_spec_t spec;
    void *storage = NULL;
    tako_sandbox_t *template = template_receive (&spec, &storage);
    interpreter_start (template, &spec);
    interpreter_prepare (&spec);
    answer ("OK");
    while (request_serve (template) == 0)
        ;
    //  The executor closed its end: nothing of ours runs any more (the
    //  sandboxes are the executor's children).
    _exit (0);
}
