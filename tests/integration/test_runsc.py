#!/usr/bin/env python3
"""container_runtime: runsc (gVisor) through `tako-vm sandbox`.

With runsc installed, jobs run under it and give the native sandbox's
results; without it, security_mode strict refuses with a clear error and
permissive falls back to the native sandbox with a warning (checked on a
machine with runsc too: the CLI then runs in a private mount namespace
where the runsc binaries are covered by /dev/null). The runsc checks are
reported as skipped where it is not installed."""
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
from taplib import test, run, check, skip  # noqa: E402

TAKO = os.environ["TAKO_BIN"]
RUN_TIMEOUT = 120
RUNSC_PATHS = ("/usr/bin/runsc", "/usr/local/bin/runsc", "/usr/sbin/runsc")
INSTALLED = any(os.access(path, os.X_OK) for path in RUNSC_PATHS)


def config(mode, runtime="runsc"):
    """A configuration file asking for runtime in security mode."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        file.write(f"container_runtime: {runtime}\nsecurity_mode: {mode}\n")
    return file.name


def hidden_runsc(command):
    """command run in a private mount namespace where every runsc binary
    is covered by /dev/null (not executable): "runsc is not installed"."""
    covers = " && ".join(f"mount --bind /dev/null {path}" for path in RUNSC_PATHS
                         if os.path.exists(path))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            covers + ' && exec "$@"', "sh", *command]


def sandbox(code, *args, mode="strict", runtime="runsc", hide=False):
    """Run code; return (result dict or None, exit code, stderr)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as source:
        source.write(code)
    path = config(mode, runtime)
    try:
        command = [TAKO, "--config", path, "sandbox", source.name, *args]
        if hide and INSTALLED:
            command = hidden_runsc(command)
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        os.unlink(source.name)
        os.unlink(path)
    result = json.loads(done.stdout) if done.returncode == 0 else None
    return result, done.returncode, done.stderr


def ran(code, *args, **kwargs):
    result, rc, stderr = sandbox(code, *args, **kwargs)
    check(rc == 0 and result is not None, f"sandbox failed rc={rc}: {stderr[-2000:]}")
    return result


def needs_runsc():
    if not INSTALLED:
        skip("runsc is not installed")


def leftovers():
    """Bundle directories and mounts of runsc sandboxes on this host."""
    with open("/proc/mounts") as mounts:
        mounted = [line for line in mounts if "tako-runsc-" in line]
    return set(glob.glob("/tmp/tako-runsc-*")), mounted


@test
def runsc_print_one_plus_one():
    needs_runsc()
    result = ran("print(1+1)\n")
    check(result["status"] == "succeeded", result)
    check(result["stdout"] == "2\n" and result["stderr"] == "", result)
    check(result["exit_code"] == 0 and result["error"] is None, result)
    check(result["timing"]["phase_at_exit"] == "completed", result["timing"])
    check(result["timing"]["startup_ms"] > 0, result["timing"])
    check(result["resource_usage"]["max_rss_mb"] > 0, result["resource_usage"])


@test
def runsc_input_output_and_artifact():
    needs_runsc()
    code = ("import json, os\n"
            "data = json.load(open('/input/data.json'))\n"
            "json.dump({'doubled': data['n'] * 2}, open('/output/result.json', 'w'))\n"
            "os.makedirs('/output/plots')\n"
            "open('/output/plots/a.txt', 'w').write('hello')\n"
            "print(os.getuid(), os.getgid())\n")
    result = ran(code, "--input", '{"n": 21}')
    check(result["status"] == "succeeded", result)
    check(result["output"] == {"doubled": 42}, result["output"])
    check(result["stdout"] == "1000 1000\n", result["stdout"])
    artifacts = {a["name"]: a for a in result["artifacts"]}
    check(set(artifacts) == {"plots/a.txt"}, result["artifacts"])
    check(artifacts["plots/a.txt"]["size_bytes"] == 5, artifacts)
    check(artifacts["plots/a.txt"]["sha256"]
          == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", artifacts)


@test
def runsc_results_match_native():
    needs_runsc()
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\n{}['missing']\n"
    under_runsc = ran(code)
    native = ran(code, runtime="native")
    for field in ("status", "exit_code", "stdout", "stderr", "error", "output",
                  "stdout_truncated", "stderr_truncated", "code_hash", "input_hash"):
        check(under_runsc[field] == native[field],
              f"{field}: runsc {under_runsc[field]!r} native {native[field]!r}")
    check(under_runsc["error"]["type"] == "key_error", under_runsc["error"])


@test
def runsc_stdout_cap():
    needs_runsc()
    result = ran("import sys\nsys.stdout.write('x' * 200000)\n")
    check(result["status"] == "succeeded", result)
    check(result["stdout_truncated"] is True, result["stdout_truncated"])
    check(0 < len(result["stdout"]) <= 65536, len(result["stdout"]))


@test
def runsc_timeout_kills_everything():
    needs_runsc()
    before = leftovers()
    result = ran("print('spinning', flush=True)\nwhile True:\n    pass\n", "--timeout", "1")
    check(result["status"] == "timeout", result)
    check(result["error"]["type"] == "execution_timeout", result["error"])
    check(result["stdout"] == "spinning\n", result["stdout"])
    check(result["timing"]["execution_ms"] < 3000, result["timing"])
    after = leftovers()
    check(after[0] <= before[0] and after[1] == before[1], f"left behind: {after}")


@test
def runsc_has_no_network():
    needs_runsc()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    code = ("import socket\n"
            "print(sorted(name for _, name in socket.if_nameindex()))\n"
            "s = socket.socket()\n"
            "s.settimeout(2)\n"
            f"try:\n    s.connect(('127.0.0.1', {port}))\n    print('reached the host')\n"
            "except OSError as error:\n    print('no host', type(error).__name__)\n")
    try:
        result = ran(code)
    finally:
        listener.close()
    check(result["status"] == "succeeded", result)
    lines = result["stdout"].splitlines()
    check(lines[0] == "['lo']", result["stdout"])
    check(lines[1].startswith("no host"), result["stdout"])


@test
def runsc_host_files_invisible():
    needs_runsc()
    code = ("import os\n"
            "print([p for p in ('/work', '/root', '/home', '/etc/shadow', '/var', '/tmp/tako-runsc')\n"
            "       if os.path.exists(p)])\n"
            "print(sorted(os.listdir('/etc')))\n"
            "for path in ('/usr/evil', '/etc/evil', '/code/main.py', '/input/data.json'):\n"
            "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
            "    except OSError:\n        pass\n")
    result = ran(code)
    check(result["status"] == "succeeded", result)
    lines = result["stdout"].splitlines()
    check(lines[0] == "[]", result["stdout"])
    check("shadow" not in lines[1] and "passwd" in lines[1], lines[1])
    check(not any(line.startswith("wrote") for line in lines), result["stdout"])
    check(not os.path.exists("/usr/evil") and not os.path.exists("/etc/evil"), "host written")


@test
def strict_without_runsc_refuses():
    result, rc, stderr = sandbox("print(1+1)\n", mode="strict", hide=True)
    check(rc == 1 and result is None, f"rc={rc}")
    check("runsc" in stderr and "not installed" in stderr, stderr)


@test
def permissive_without_runsc_falls_back():
    result, rc, stderr = sandbox("print(1+1)\n", mode="permissive", hide=True)
    check(rc == 0 and result is not None, f"rc={rc}: {stderr}")
    check("warning" in stderr and "runsc" in stderr and "native" in stderr, stderr)
    check(result["status"] == "succeeded" and result["stdout"] == "2\n", result)


run()
