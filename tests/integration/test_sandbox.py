#!/usr/bin/env python3
"""The sandbox through `tako-vm sandbox`: results, errors, limits, isolation."""
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
from taplib import test, run, check, wait_for  # noqa: E402

TAKO = os.environ["TAKO_BIN"]
RUN_TIMEOUT = 120


def sandbox(code, *args, env=None, slot=None):
    """Run code in a sandbox; return (result dict or None, exit code, stderr)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as source:
        source.write(code)
    try:
        command = [TAKO, "sandbox", source.name, *args]
        if slot is not None:
            command += ["--slot", str(slot)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                              env=env)
    finally:
        os.unlink(source.name)
    result = json.loads(done.stdout) if done.returncode == 0 else None
    return result, done.returncode, done.stderr


def ran(code, *args, **kwargs):
    result, rc, stderr = sandbox(code, *args, **kwargs)
    check(rc == 0 and result is not None, f"sandbox failed rc={rc}: {stderr[-2000:]}")
    return result


def error_type(result):
    return (result.get("error") or {}).get("type")


@test
def print_one_plus_one():
    result = ran("print(1+1)\n")
    check(result["status"] == "succeeded", result)
    check(result["stdout"] == "2\n", result["stdout"])
    check(result["exit_code"] == 0 and result["error"] is None, result)
    for field in ("startup_ms", "dep_install_ms", "execution_ms", "total_ms", "phase_at_exit"):
        check(field in result["timing"], f"timing.{field} missing")
    check(result["timing"]["phase_at_exit"] == "completed", result["timing"])
    for field in ("max_rss_mb", "cpu_time_ms", "wall_time_ms"):
        check(field in result["resource_usage"], f"resource_usage.{field} missing")
    check(result["resource_usage"]["max_rss_mb"] > 0, result["resource_usage"])
    check(len(result["code_hash"]) == 64 and len(result["input_hash"]) == 64, result)


@test
def code_from_stdin():
    done = subprocess.run([TAKO, "sandbox", "-"], input="print('from stdin')\n", capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    check(done.returncode == 0, done.stderr)
    check(json.loads(done.stdout)["stdout"] == "from stdin\n", done.stdout)


@test
def input_reaches_input_data_json():
    code = "import json\nprint(json.load(open('/input/data.json'))['x'] * 2)\n"
    result = ran(code, "--input", '{"x": 21}')
    check(result["stdout"] == "42\n", result)


@test
def result_json_becomes_output_and_artifacts_are_hashed():
    code = ("import json\n"
            "json.dump({'answer': 42}, open('/output/result.json', 'w'))\n"
            "open('/output/data.csv', 'w').write('a,b\\n1,2\\n')\n"
            "import os\nos.mkdir('/output/plots')\nopen('/output/plots/p.txt', 'w').write('x')\n"
            "os.symlink('/etc/passwd', '/output/link')\nos.mkfifo('/output/fifo')\n")
    result = ran(code)
    check(result["status"] == "succeeded", result)
    check(result["output"] == {"answer": 42}, result["output"])
    names = {a["name"]: a for a in result["artifacts"]}
    check(set(names) == {"data.csv", "plots/p.txt"}, names)
    import hashlib
    check(names["data.csv"]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest(), names)
    check(names["data.csv"]["size_bytes"] == 8 and names["data.csv"]["content_type"] == "text/csv", names)


@test
def invalid_result_json_keeps_the_job():
    result = ran("open('/output/result.json', 'w').write('{not json')\nprint('ok')\n")
    check(result["status"] == "succeeded" and result["stdout"] == "ok\n", result)
    check(result["output"] is None, result)
    check(error_type(result) == "json_error", result["error"])
    check("not valid JSON" in result["error"]["message"], result["error"])


EXCEPTIONS = [
    ("1/0", "division_error"),
    ("import no_such_module_here", "import_error"),
    ("int('x')", "value_error"),
    ("{}['k']", "key_error"),
    ("[][1]", "index_error"),
    ("None.x", "attribute_error"),
    ("undefined_name", "name_error"),
    ("1 + 'a'", "type_error"),
    ("open('/nope')", "file_not_found"),
    ("open('/tmp')", "file_error"),
    ("open('/usr/x', 'w')", "os_error"),
    ("open('/etc/passwd', 'a')", "os_error"),
    ("import json; json.loads('{')", "json_error"),
    ("b'\\xff'.decode('utf-8')", "encoding_error"),
    ("def f(): f()\nf()", "recursion_error"),
    ("assert False, 'no'", "assertion_error"),
    ("import math; math.exp(1000)", "overflow_error"),
    ("raise RuntimeError('x')", "runtime_error"),
    ("import os; os.setgroups([0])", "permission"),
]


@test
def each_exception_maps_to_its_error_type():
    wrong = []
    for code, expected in EXCEPTIONS:
        result = ran(code + "\n")
        if result["status"] != "failed" or error_type(result) != expected or result["exit_code"] != 1:
            wrong.append(f"{code!r}: {result['status']} {result['error']} exit {result['exit_code']}")
        elif result["error"]["phase"] != "execution":
            wrong.append(f"{code!r}: phase {result['error']['phase']}")
    check(not wrong, "\n".join(wrong))


@test
def traceback_on_stderr_without_bootstrap_frames():
    result = ran("def f():\n    raise ValueError('boom')\nf()\n")
    check("ValueError: boom" in result["stderr"], result["stderr"])
    check('File "/code/main.py", line 3' in result["stderr"], result["stderr"])
    check("runpy" not in result["stderr"] and "_tako" not in result["stderr"], result["stderr"])
    check(result["error"]["message"] == "ValueError: boom", result["error"])


@test
def syntax_error():
    result = ran("def broken(:\n")
    check(result["status"] == "failed" and error_type(result) == "syntax_error", result)
    check("SyntaxError" in result["stderr"], result["stderr"])
    result = ran("if True:\nprint(1)\n")
    check(error_type(result) == "syntax_error", result)


@test
def exit_three():
    result = ran("import sys\nprint('bye')\nsys.exit(3)\n")
    check(result["status"] == "failed" and result["exit_code"] == 3, result)
    check(error_type(result) == "runtime_error", result)
    result = ran("import sys\nsys.exit(0)\n")
    check(result["status"] == "succeeded" and result["error"] is None, result)


@test
def signals_map_to_error_types():
    result = ran("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    check(result["status"] == "failed" and error_type(result) == "segfault", result)
    check(result["exit_code"] == 128 + 11, result)
    result = ran("import os\nos.abort()\n")
    check(error_type(result) == "abort", result)


@test
def execution_timeout():
    result = ran("import time\nprint('started', flush=True)\ntime.sleep(60)\n", "--timeout", "1")
    check(result["status"] == "timeout" and error_type(result) == "execution_timeout", result)
    check(result["error"]["phase"] == "execution", result)
    check(result["stdout"] == "started\n", result)
    check(result["timing"]["execution_ms"] < 5000, result["timing"])


@test
def startup_timeout():
    result = ran("print(1)\n", "--startup-timeout", "0.001")
    check(result["status"] == "timeout" and error_type(result) == "startup_timeout", result)
    check(result["error"]["phase"] == "startup", result)
    check(result["timing"]["phase_at_exit"] == "startup", result)


@test
def memory_limit_is_oom():
    result = ran("x = bytearray(400 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])\nprint('survived')\n",
                 "--memory", "64m")
    check(result["status"] == "oom" and error_type(result) == "oom", result)
    check("survived" not in result["stdout"], result)


@test
def stdout_flood_is_truncated():
    result = ran("import sys\nfor _ in range(100000): sys.stdout.write('x' * 100)\nprint('end')\n")
    check(result["status"] == "succeeded", result["status"])
    check(result["stdout_truncated"] is True, "not truncated")
    check(len(result["stdout"].encode()) <= 64 * 1024, len(result["stdout"]))


@test
def invalid_utf8_is_made_safe():
    result = ran("import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe bad\\n')\n")
    check(result["stdout"] == "ok \ufffd\ufffd bad\n", repr(result["stdout"]))


@test
def no_host_variable_reaches_the_job():
    env = dict(os.environ, TAKO_SECRET_MARKER="leaked-if-seen")
    result = ran("import os\nprint(sorted(os.environ))\nprint(os.environ.get('TAKO_SECRET_MARKER'))\n",
                 env=env)
    check("leaked-if-seen" not in result["stdout"], result["stdout"])
    check("TAKO_SECRET_MARKER" not in result["stdout"], result["stdout"])
    check("'PATH'" in result["stdout"] and "'HOME'" in result["stdout"], result["stdout"])


@test
def runs_as_sandbox_user_mapped_to_slot_uid():
    slot = random.randint(20000, 60000)
    code = ("import os\nprint(os.getuid(), os.getgid(), os.getgroups())\n"
            "print(open('/proc/self/uid_map').read().split())\n"
            "import socket\nprint(socket.gethostname())\n")
    result = ran(code, slot=slot)
    lines = result["stdout"].splitlines()
    check(lines[0] == "1000 1000 []", lines)
    check(lines[1] == str(["1000", str(200000 + slot), "1"]), lines)
    check(lines[2] == "sandbox", lines)


SECCOMP_PROBE = """
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(rc):
    return ctypes.get_errno() if rc == -1 else 0
out = {}
out['keyctl'] = errno_of(libc.syscall(250, 0, 0, 0, 0, 0))
out['add_key'] = errno_of(libc.syscall(248, b'user', b'k', b'v', 1, -2))
out['io_uring_setup'] = errno_of(libc.syscall(425, 1, ctypes.create_string_buffer(120)))
try:
    socket.socket(40, socket.SOCK_STREAM)
    out['vsock'] = 0
except OSError as error:
    out['vsock'] = error.errno
out['unshare_user'] = errno_of(libc.unshare(0x10000000))
out['mount'] = errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
out['ptrace'] = errno_of(libc.ptrace(16, 1, 0, 0))
import json; print(json.dumps(out))
"""


@test
def seccomp_blocks_kernel_surface():
    result = ran(SECCOMP_PROBE)
    check(result["status"] == "succeeded", result)
    out = json.loads(result["stdout"])
    import errno
    for name in ("keyctl", "add_key", "io_uring_setup", "vsock", "unshare_user", "mount", "ptrace"):
        check(out[name] == errno.EPERM, f"{name}: errno {out[name]} (want EPERM) in {out}")


@test
def x32_syscalls_kill_the_job():
    result = ran("import ctypes\nctypes.CDLL(None).syscall(0x40000000 + 39)\nprint('alive')\n")
    check("alive" not in result["stdout"], result)
    check(result["status"] == "failed", result)


@test
def proc_shows_only_the_sandbox():
    code = ("import os\npids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "print(pids)\nprint(os.getpid())\nprint(sorted(os.listdir('/')))\n"
            "print(os.path.exists('/sys'), os.path.exists('/dev/tty'), os.path.exists('/home'))\n")
    result = ran(code)
    lines = result["stdout"].splitlines()
    check(lines[0] == "[1, 2]" and lines[1] == "2", lines)
    root = eval(lines[2])
    check("home" not in root and "root" not in root and "var" not in root, root)
    check(lines[3] == "False False False", lines)


@test
def root_and_code_are_read_only():
    code = ("import errno\nfor path in ('/code/main.py', '/input/data.json', '/newfile', '/usr/x', '/etc/passwd'):\n"
            "    try:\n        open(path, 'a')\n        print(path, 'writable')\n"
            "    except OSError as e:\n        print(path, errno.errorcode[e.errno])\n"
            "open('/tmp/ok', 'w').write('fine')\nprint('tmp ok')\n")
    result = ran(code)
    check("writable" not in result["stdout"], result["stdout"])
    check("tmp ok" in result["stdout"], result)


def host_processes_of_uid(uid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                for line in status:
                    if line.startswith("Uid:") and int(line.split()[1]) == uid:
                        found.append(int(entry))
        except OSError:
            pass
    return found


@test
def nothing_survives_the_job():
    slot = random.randint(20000, 60000)
    heartbeat = tempfile.mktemp(prefix="tako-heartbeat-")
    code = ("import os, time, signal\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "        while True:\n"
            "            open('/tmp/beat', 'w').write(str(time.time()))\n"
            "            time.sleep(0.05)\n"
            "    os._exit(0)\n"
            "if os.fork() == 0:\n"
            "    os.kill(os.getpid(), signal.SIGSTOP)\n"
            "time.sleep(0.3)\n"
            "print('parent done')\n")
    result = ran(code, slot=slot)
    check(result["status"] == "succeeded", result)
    uid = 200000 + slot
    wait_for(lambda: not host_processes_of_uid(uid), timeout=5, what=f"no process of uid {uid}")
    check(not os.path.exists(heartbeat), "heartbeat file on host")


@test
def cgroup_directories_are_removed():
    before = set()
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/cpu"):
        if os.path.isdir(root):
            before |= {os.path.join(root, d) for d in os.listdir(root) if d.startswith("tako-sandbox-")}
    slot = random.randint(20000, 60000)
    ran("print('x')\n", slot=slot)
    leftovers = []
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/cpu"):
        if os.path.isdir(root):
            leftovers += [d for d in os.listdir(root)
                          if d.startswith("tako-sandbox-") and d.endswith("") and f"-{slot}-" in d]
    check(not leftovers, leftovers)


def sandbox_groups_of_slot(slot):
    found = []
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/cpu"):
        if os.path.isdir(root):
            found += [d for d in os.listdir(root) if d.startswith("tako-sandbox-") and f"-{slot}-" in d]
    return found


@test
def a_killed_creator_takes_its_sandbox_down_and_its_groups_are_swept():
    # SIGKILL the CLI while its job runs: the sandbox must die with it (the
    # reaper's parent-death signal), and the next sandbox created on this
    # host removes the cgroups the killed one could not clean up.
    slot = random.randint(20000, 60000)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as source:
        source.write("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    try:
        cli = subprocess.Popen([TAKO, "sandbox", source.name, "--slot", str(slot), "--timeout", "60"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        uid = 200000 + slot
        wait_for(lambda: host_processes_of_uid(uid), timeout=30, what="the job to start")
        cli.kill()
        cli.wait(timeout=10)
        wait_for(lambda: not host_processes_of_uid(uid), timeout=5,
                 what=f"no process of uid {uid} after the CLI was killed")
    finally:
        os.unlink(source.name)
    check(sandbox_groups_of_slot(slot), "expected the killed CLI to leave its cgroups")
    ran("print('sweep')\n")
    check(not sandbox_groups_of_slot(slot), f"stale groups left: {sandbox_groups_of_slot(slot)}")


@test
def the_host_command_line_is_not_visible_as_pid_1():
    result = ran("print(open('/proc/1/cmdline','rb').read().split(b'\\0')[0].decode())\n",
                 "--input", '{"marker": "host-secret-marker"}')
    check(result["stdout"] == "tako-init\n", result["stdout"])


@test
def a_forged_error_record_does_not_change_a_successful_run():
    forge = ("import os\n"
             "for fd in range(3, 64):\n"
             "    try: os.write(fd, b'{\"type\": \"oom\", \"message\": \"forged\"}')\n"
             "    except OSError: pass\n")
    result = ran(forge)
    check(result["status"] == "succeeded" and result["error"] is None, result)
    result = ran(forge.replace("oom", "internal_error") + "raise SystemExit(1)\n")
    check(result["status"] == "failed" and error_type(result) == "runtime_error", result)


@test
def network_is_loopback_only():
    code = ("import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('listen ok')\n"
            "try:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n    print('reached')\n"
            "except OSError as e:\n    print('unreachable')\n")
    result = ran(code)
    lines = result["stdout"].splitlines()
    check(lines == ["['lo']", "listen ok", "unreachable"], lines)


@test
def usage_errors_and_layer_errors():
    done = subprocess.run([TAKO, "sandbox"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    check(done.returncode == 2, done)
    done = subprocess.run([TAKO, "sandbox", "/nonexistent.py"], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    check(done.returncode == 2, done)
    result, rc, stderr = sandbox("print(1)\n", "--input", "[1, 2]")
    check(rc == 2 and "JSON object" in stderr, stderr)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        config.write("sandbox_python: /usr/bin/no-such-python\n")
    try:
        done = subprocess.run([TAKO, "--config", config.name, "sandbox", "-"], input="print(1)\n",
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        os.unlink(config.name)
    check(done.returncode == 1 and "interpreter" in done.stderr, (done.returncode, done.stderr))


@test
def system_packages_only_when_the_job_type_asks():
    probe = "import sys\nprint([p for p in sys.path if 'dist-packages' in p])\nexit(0)\n"
    result = ran(probe)
    check(result["stdout"] == "[]\n", f"host dist-packages visible: {result['stdout']}")
    check(result["exit_code"] == 0 and result["error"] is None, "exit() is not defined")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        config.write("job_types:\n  - name: system\n    use_system_packages: true\n")
    try:
        done = subprocess.run([TAKO, "--config", config.name, "sandbox", "-", "--job-type", "system"],
                              input=probe, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        os.unlink(config.name)
    check(done.returncode == 0, done.stderr)
    check("/usr/lib/python3/dist-packages" in json.loads(done.stdout)["stdout"], done.stdout)


@test
def setup_checks_everything_including_the_zygote():
    done = subprocess.run([TAKO, "setup"], capture_output=True, text=True, timeout=120)
    check(done.returncode == 0, f"exit {done.returncode}: {done.stdout}{done.stderr}")
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if len(line.split()) > 1}
    check(lines.get("tako-zygote", "").startswith("ok") and "works" in lines["tako-zygote"],
          f"zygote line: {lines.get('tako-zygote')!r}")
    check("everything the sandbox needs is there" in done.stdout, done.stdout)


@test
def zygote_flag_forks_the_interpreter():
    result = ran("print(open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0].decode())", "--zygote")
    check(result["stdout"] == "tako-init\n", f"not forked: {result['stdout']!r}")
    check(result["timing"]["warm"] is False and result["timing"]["startup_ms"] >= 0, result["timing"])
    plain = ran("print(open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0].decode())")
    check(plain["stdout"] == "/usr/bin/python3\n", f"not exec'd: {plain['stdout']!r}")


run()
