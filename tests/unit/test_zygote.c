//  tako_zygote: sandboxes whose interpreter is a fork of a started one.
//  Real zygote process (tako-zygote next to this binary), real sandboxes.
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "actors/executor/tako_sandbox.h"
#include "actors/executor/tako_zygote.h"

static void
spec_make (tako_sandbox_spec_t *spec, const char *const *preload, size_t preload_count)
{
    tako_sandbox_spec_defaults (spec);
    spec->timeout_ms = 10000;
    spec->startup_timeout_ms = 10000;
    spec->memory_limit_bytes = 256LL * 1024 * 1024;
    spec->slot = 3100 + (int) (getpid () % 1000);
    spec->preload = preload;
    spec->preload_count = preload_count;
}

//  A zygote for spec, started (or the test fails).
static tako_zygote_t *
zygote_started (const tako_sandbox_spec_t *spec)
{
    char *error = NULL;
    tako_zygote_t *zygote = tako_zygote_new (spec, &error);
    cr_assert (zygote, "zygote: %s", error? error: "?");
    return zygote;
}

//  Run code in a sandbox cloned by zygote; the result (caller decrefs).
static json_t *
zygote_run (tako_zygote_t *zygote, tako_sandbox_spec_t *spec, const char *code)
{
    spec->zygote = zygote;
    tako_sandbox_t *sandbox = tako_sandbox_new (spec);
    cr_assert (sandbox);
    cr_assert_eq (tako_sandbox_prepare (sandbox), 0, "prepare: %s", tako_sandbox_error (sandbox));
    if (!tako_sandbox_ready (sandbox)) {
        //  Say why: the result of a sandbox whose start ended.
        json_t *ended = tako_sandbox_run (sandbox, "", 0, "{}");
        char *text = ended? json_dumps (ended, JSON_COMPACT): NULL;
        cr_assert (false, "not ready: %s", text? text: "(no result)");
    }
    cr_assert_eq (tako_sandbox_assign (sandbox, 10000, -1), 0);
    json_t *result = tako_sandbox_run (sandbox, code, strlen (code), "{\"n\": 7}");
    cr_assert (result, "run: %s", tako_sandbox_error (sandbox));
    tako_sandbox_destroy (&sandbox);
    return result;
}

static const char *
text (json_t *result, const char *key)
{
    const char *value = json_string_value (json_object_get (result, key));
    return value? value: "";
}

Test (zygote, a_job_runs_in_a_cloned_sandbox)
{
    const char *preload [] = { "json" };
    tako_sandbox_spec_t spec;
    spec_make (&spec, preload, 1);
    tako_zygote_t *zygote = zygote_started (&spec);
    cr_assert (tako_zygote_alive (zygote));
    cr_assert (tako_zygote_matches (zygote, &spec));
    cr_assert_gt (tako_zygote_memory (zygote), 0);
    json_t *result = zygote_run (zygote, &spec,
        "import json, os, sys\n"
        "data = json.load(open('/input/data.json'))\n"
        "print(data['n'] * 6, os.getpid(), os.getuid(), sys.path[0], 'json' in sys.modules)\n"
        "open('/output/result.json', 'w').write(json.dumps({'ok': True}))\n");
    cr_assert_str_eq (text (result, "status"), "succeeded", "stderr: %s", text (result, "stderr"));
    //  pid 2 (the reaper is 1), uid 1000, /code first on the path, preload done.
    cr_assert_str_eq (text (result, "stdout"), "42 2 1000 /code True\n");
    cr_assert (json_is_true (json_object_get (json_object_get (result, "output"), "ok")));
    json_decref (result);
    tako_zygote_destroy (&zygote);
    cr_assert_null (zygote);
}

Test (zygote, errors_and_exit_codes_are_those_of_python)
{
    tako_sandbox_spec_t spec;
    spec_make (&spec, NULL, 0);
    tako_zygote_t *zygote = zygote_started (&spec);
    json_t *result = zygote_run (zygote, &spec, "import sys\nprint('x')\nsys.exit(3)\n");
    cr_assert_str_eq (text (result, "status"), "failed");
    cr_assert_eq (json_integer_value (json_object_get (result, "exit_code")), 3);
    json_decref (result);
    result = zygote_run (zygote, &spec, "1/0\n");
    cr_assert_str_eq (text (result, "status"), "failed");
    json_t *failure = json_object_get (result, "error");
    cr_assert_str_eq (text (failure, "type"), "division_error");
    cr_assert (strstr (text (result, "stderr"), "ZeroDivisionError"));
    cr_assert (strstr (text (result, "stderr"), "main.py"));
    json_decref (result);
    tako_zygote_destroy (&zygote);
}

//  What a job can see of its origin: no socket to the zygote, no report
//  pipe, no host path in its command line or environment.
Test (zygote, a_job_holds_nothing_of_the_zygote)
{
    tako_sandbox_spec_t spec;
    spec_make (&spec, NULL, 0);
    tako_sandbox_env_t env [] = { { "PYTHONPATH", "/env:/shared" }, { "MY_SETTING", "on" } };
    spec.env = env;
    spec.env_count = 2;
    tako_zygote_t *zygote = zygote_started (&spec);
    json_t *result = zygote_run (zygote, &spec,
        "import os, sys\n"
        "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n"
        "kinds = []\n"
        "for fd in fds:\n"
        "    try:\n"
        "        kinds.append((fd, os.readlink('/proc/self/fd/%d' % fd)))\n"
        "    except FileNotFoundError:\n"
        "        pass\n"
        "print(kinds)\n"
        "print(open('/proc/self/cmdline', 'rb').read())\n"
        "print(os.environ.get('MY_SETTING'), os.environ.get('PYTHONPATH'), sys.path[1:3])\n"
        "print(sys.executable, sys.flags.no_site, sys.flags.dont_write_bytecode)\n"
        "paths = set(l.split(None, 5)[5].strip() for l in open('/proc/self/maps') if '/' in l)\n"
        "print(sorted(p for p in paths if not p.startswith('/usr/')))\n");
    cr_assert_str_eq (text (result, "status"), "succeeded", "stderr: %s", text (result, "stderr"));
    const char *out = text (result, "stdout");
    cr_assert (!strstr (out, "socket:"), "a socket is open in the job: %s", out);
    cr_assert (!strstr (out, "/build"), "host path: %s", out);
    cr_assert (strstr (out, "on /env:/shared ['/env', '/shared']"), "%s", out);
    cr_assert (strstr (out, "/usr/bin/python3 1 1"), "%s", out);
    //  Mapped files: the system's, and the zygote's program from memory.
    cr_assert (strstr (out, "['/memfd:tako-zygote (deleted)']"), "%s", out);
    json_decref (result);
    tako_zygote_destroy (&zygote);
}

Test (zygote, a_preload_that_fails_is_reported)
{
    const char *preload [] = { "no_such_module_here" };
    tako_sandbox_spec_t spec;
    spec_make (&spec, preload, 1);
    char *error = NULL;
    tako_zygote_t *zygote = tako_zygote_new (&spec, &error);
    cr_assert_null (zygote);
    cr_assert (error && strstr (error, "no_such_module_here"), "%s", error? error: "(none)");
    free (error);
}

Test (zygote, a_dead_zygote_is_noticed_and_its_sandboxes_live_on)
{
    tako_sandbox_spec_t spec;
    spec_make (&spec, NULL, 0);
    tako_zygote_t *zygote = zygote_started (&spec);
    //  A sandbox cloned before the zygote dies still runs its job.
    spec.zygote = zygote;
    tako_sandbox_t *sandbox = tako_sandbox_new (&spec);
    cr_assert_eq (tako_sandbox_prepare (sandbox), 0);
    cr_assert_eq (kill (tako_zygote_pid (zygote), SIGKILL), 0);
    cr_assert_eq (tako_sandbox_assign (sandbox, 10000, -1), 0);
    json_t *result = tako_sandbox_run (sandbox, "print(5)", 8, "{}");
    cr_assert (result);
    cr_assert_str_eq (text (result, "stdout"), "5\n");
    json_decref (result);
    tako_sandbox_destroy (&sandbox);
    //  The next clone fails cleanly and the zygote counts as gone.
    tako_sandbox_t *next = tako_sandbox_new (&spec);
    cr_assert_eq (tako_sandbox_prepare (next), -1);
    cr_assert (strstr (tako_sandbox_error (next), "zygote"), "%s", tako_sandbox_error (next));
    cr_assert (!tako_zygote_alive (zygote));
    tako_sandbox_destroy (&next);
    tako_zygote_destroy (&zygote);
}

//  A forked job ends without finalizing the interpreter: what a job can
//  notice of the finalization still happens, in Python's order.
Test (zygote, a_forked_job_ends_as_python_would)
{
    tako_sandbox_spec_t spec;
    spec_make (&spec, NULL, 0);
    tako_zygote_t *zygote = zygote_started (&spec);
    json_t *result = zygote_run (zygote, &spec,
        "import atexit, sys, threading, time\n"
        "left = open('/output/left-open.txt', 'w')\n"
        "left.write('kept')\n"
        "class Last:\n"
        "    def __del__(self):\n"
        "        print('del ran')\n"
        "last = Last()\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        "    print('thread done')\n"
        "threading.Thread(target=late).start()\n"
        "sys.stderr.write('no newline at the end')\n"
        "print('main done')\n");
    cr_assert_str_eq (text (result, "status"), "succeeded", "stderr: %s", text (result, "stderr"));
    cr_assert_str_eq (text (result, "stdout"), "main done\nthread done\natexit ran\ndel ran\n");
    cr_assert_str_eq (text (result, "stderr"), "no newline at the end");
    json_t *artifacts = json_object_get (result, "artifacts");
    cr_assert_eq (json_array_size (artifacts), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_array_get (artifacts, 0), "size_bytes")), 4);
    json_decref (result);
    //  An exit code set by SystemExit inside the job still wins.
    result = zygote_run (zygote, &spec, "import atexit\natexit.register(print, 'bye')\nraise SystemExit(4)\n");
    cr_assert_eq (json_integer_value (json_object_get (result, "exit_code")), 4);
    cr_assert_str_eq (text (result, "stdout"), "bye\n");
    json_decref (result);
    tako_zygote_destroy (&zygote);
}

//  Review findings, each an attack or a loss that must not happen.
Test (zygote, the_job_pythonpath_is_not_searched_on_the_host)
{
    //  A host directory named by the job type's PYTHONPATH, holding a
    //  module that would leave a mark if the zygote imported it on the host.
    char dir [] = "/tmp/tako-zygote-path-XXXXXX";
    cr_assert (mkdtemp (dir));
    cr_assert_eq (chmod (dir, 0777), 0);
    char path [512], marker [512];
    snprintf (path, sizeof (path), "%s/json", dir);
    cr_assert_eq (mkdir (path, 0755), 0);
    snprintf (marker, sizeof (marker), "%s/imported-on-the-host", dir);
    snprintf (path, sizeof (path), "%s/json/__init__.py", dir);
    FILE *module = fopen (path, "w");
    cr_assert (module);
    fprintf (module, "open('%s', 'w').write('x')\n", marker);
    fclose (module);
    const char *preload [] = { "json" };
    tako_sandbox_spec_t spec;
    spec_make (&spec, preload, 1);
    tako_sandbox_env_t env [] = { { "PYTHONPATH", dir } };
    spec.env = env;
    spec.env_count = 1;
    tako_zygote_t *zygote = zygote_started (&spec);
    cr_assert_neq (access (marker, F_OK), 0, "the zygote imported a module from the job's PYTHONPATH");
    json_t *result = zygote_run (zygote, &spec,
        "import json, os, sys\nprint(json.__file__, os.environ['PYTHONPATH'] == sys.path[1])\n");
    cr_assert_str_eq (text (result, "stdout"), "/usr/lib/python3.11/json/__init__.py True\n",
                      "stderr: %s", text (result, "stderr"));
    json_decref (result);
    tako_zygote_destroy (&zygote);
    unlink (path);
    snprintf (path, sizeof (path), "%s/json", dir);
    rmdir (path);
    rmdir (dir);
}

Test (zygote, its_program_cannot_be_written_by_a_job)
{
    tako_sandbox_spec_t spec;
    spec_make (&spec, NULL, 0);
    tako_zygote_t *zygote = zygote_started (&spec);
    json_t *result = zygote_run (zygote, &spec,
        "import os\n"
        "try:\n"
        "    fd = os.open('/proc/self/exe', os.O_WRONLY)\n"
        "    os.write(fd, b'x')\n"
        "    print('written')\n"
        "except OSError as error:\n"
        "    print('refused', error.errno)\n");
    cr_assert (strncmp (text (result, "stdout"), "refused", 7) == 0, "%s", text (result, "stdout"));
    json_decref (result);
    tako_zygote_destroy (&zygote);
}

Test (zygote, jobs_keep_their_output_when_the_executor_has_no_stdout)
{
    int saved = dup (1);
    cr_assert (saved >= 0);
    close (1);
    tako_sandbox_spec_t spec;
    spec_make (&spec, NULL, 0);
    tako_zygote_t *zygote = zygote_started (&spec);
    json_t *result = zygote_run (zygote, &spec, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n");
    tako_zygote_destroy (&zygote);
    //  fd 1 may have been reused by the zygote's socket: back only now.
    cr_assert_eq (dup2 (saved, 1), 1);
    close (saved);
    cr_assert_str_eq (text (result, "stdout"), "out\n");
    cr_assert_str_eq (text (result, "stderr"), "err\n");
    json_decref (result);
}

Test (zygote, nothing_written_is_lost_when_a_forked_job_ends)
{
    tako_sandbox_spec_t spec;
    spec_make (&spec, NULL, 0);
    tako_zygote_t *zygote = zygote_started (&spec);
    //  A file open in a frame the failure's traceback holds, and C stdio.
    json_t *result = zygote_run (zygote, &spec,
        "import ctypes\n"
        "ctypes.CDLL(None).printf(b'from C\\n')\n"
        "def work():\n"
        "    f = open('/output/partial.txt', 'w')\n"
        "    f.write('data')\n"
        "    raise ValueError('stop')\n"
        "work()\n");
    cr_assert_str_eq (text (result, "status"), "failed");
    cr_assert_str_eq (text (result, "stdout"), "from C\n");
    json_t *artifacts = json_object_get (result, "artifacts");
    cr_assert_eq (json_array_size (artifacts), 1, "artifacts: %zu", json_array_size (artifacts));
    cr_assert_eq (json_integer_value (json_object_get (json_array_get (artifacts, 0), "size_bytes")), 4);
    json_decref (result);
    tako_zygote_destroy (&zygote);
}
