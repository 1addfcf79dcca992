"""Shared helpers for the hostile-code suites (tests/hostile/test_*.py).

Every case runs one untrusted job through `tako-vm sandbox` and then checks
two things: what the job saw (from the result JSON) and that the host was
not touched (processes, keys, cgroups, mounts, files).

    from lib_hostile import run_job, snapshot, assert_host_clean

    before = snapshot()
    result = run_job("print('hi')")
    assert_host_clean(before, snapshot(), result)

Job code is prefixed with PRELUDE (see below): a marker comment that lets the
host attribute leftover processes to this run, and small helpers the job
uses to report what it saw (`report({...})` prints one JSON line on stdout,
parsed back into result["_report"]).

Machine assumptions: the tests run as root on the host; the sandbox maps job
code to host uids at or above SANDBOX_UID_FLOOR; the machine is shared, so
host-state checks attribute differences to this run where they can.
"""
import atexit
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("TAKO_ROOT", "."), "tests/lib"))
from taplib import check  # noqa: E402

# Host uids at or above this belong to sandboxes (the executor maps job code
# to about 200000 + slot); anything lower is a host account.
SANDBOX_UID_FLOOR = 100000
# A CLI run that outlives its own job timeout by this much is hung: ASan
# builds on a shared two-core machine start slowly, so be generous.
CLI_HARD_TIMEOUT_MARGIN = 60
# A timed-out job must end within timeout + this many seconds (sandbox set
# up and teardown included, under ASan, on a shared machine).
TIMEOUT_MARGIN = 6.0
# How long the host may take to finish tearing a sandbox down after the CLI
# returned. The contract is "only return after teardown", so 0 by default;
# TAKO_HOSTILE_TEARDOWN_GRACE lets a developer see whether a failure is slow
# teardown or a real escape.
TEARDOWN_GRACE = float(os.environ.get("TAKO_HOSTILE_TEARDOWN_GRACE", "0"))
# After a leftover was found, how long to watch whether it goes away alone
# (reported in the diagnostic, never counted as a pass).
LEFTOVER_WATCH = 2.0
# cgroup walk depth below each controller root; sandboxes nest a few levels.
CGROUP_WALK_DEPTH = 6
MARKER_PREFIX = "# tako-hostile-token: "

# A secret in the test's environment: it must never reach job code.
HOST_SECRET = "tako-hostile-secret-" + secrets.token_hex(8)
os.environ["TAKO_HOSTILE_SECRET"] = HOST_SECRET

# Errnos a blocked syscall may report (seccomp EPERM/ENOSYS, or the kernel's
# own capability checks), and the signal a seccomp KILL action delivers.
BLOCKED_ERRNOS = {errno.EPERM, errno.ENOSYS, errno.EACCES}
SIGSYS = signal.SIGSYS

# Helpers available to every job. Kept small and dependency free: the
# sandbox has Python's standard library and nothing else.
PRELUDE = r'''
import ctypes, errno, json, os, signal, socket, sys, time
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

def report(obj):
    """Tell the host test what the job saw: one JSON line on stdout."""
    sys.stdout.write("TAKO_REPORT " + json.dumps(obj) + "\n")
    sys.stdout.flush()

def syscall(nr, *args):
    """Raw syscall; returns (return value, errno)."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    ret = _libc.syscall(ctypes.c_long(nr), *conv)
    return ret, ctypes.get_errno()

def in_child(fn):
    """Run fn() in a forked child so a seccomp kill only takes the child.
    Returns {"value": fn's JSON-able result, "signal": N or None}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = fn()
        except BaseException as e:
            out = {"exception": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    return {"value": json.loads(data) if data else None, "signal": sig}

def try_syscall(nr, *args):
    """A syscall made in a child: {"value": {"ret", "errno"}, "signal"}."""
    def call():
        ret, err = syscall(nr, *args)
        return {"ret": ret, "errno": err}
    return in_child(call)

def write_errno(path, data, append=False):
    """Write data with one unbuffered write(2); the errno of the open or
    the write, or None. (A buffered file reports write errors only at
    close, and Python drops those when the close is implicit.)"""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        return e.errno
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)
    return None

def oserror_of(fn):
    """Run fn; return the errno it raised, or None if it succeeded."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return None
'''


# --------------------------------------------------------------------------
# Running a job


def tako_bin():
    path = os.environ.get("TAKO_BIN")
    check(path and os.access(path, os.X_OK), "TAKO_BIN is not set to an executable tako-vm")
    return path


def sandbox_available():
    """True when `tako-vm sandbox --help` works (the sandbox CLI exists)."""
    try:
        proc = subprocess.run([tako_bin(), "sandbox", "--help"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired, AssertionError):
        return False
    return proc.returncode == 0


def _parse_report(stdout):
    for line in (stdout or "").splitlines():
        if line.startswith("TAKO_REPORT "):
            try:
                return json.loads(line[len("TAKO_REPORT "):])
            except ValueError:
                return None
    return None


class Job:
    """One `tako-vm sandbox` run in the background (for concurrent cases).
    start() returns at once; finish() waits and returns the result dict."""

    def __init__(self, code, input=None, timeout=10, extra_args=(), raw=False, memory=None):
        binary = tako_bin()  # before anything is created that could leak
        self.token = secrets.token_hex(12)
        self.timeout = timeout
        self.workdir = tempfile.mkdtemp(prefix="tako-hostile-")
        self.code_path = os.path.join(self.workdir, "main.py")
        body = code if raw else PRELUDE + "\n" + code
        with open(self.code_path, "w") as f:
            f.write(MARKER_PREFIX + self.token + "\n" + body)
        self.args = [binary, "sandbox", self.code_path, "--timeout", str(timeout)]
        if input is not None:
            self.args += ["--input", json.dumps(input)]
        if memory is not None:
            self.args += ["--memory", memory]
        self.args += list(extra_args)
        #  tests/run.sh runs every suite twice: the second time each job's
        #  interpreter is forked from a zygote, as warm pools start jobs.
        if os.environ.get("TAKO_HOSTILE_ZYGOTE") == "1":
            self.args.append("--zygote")
        self.proc = None
        self.started = None

    def start(self):
        self.started = time.monotonic()
        # Own session, so a hung run can be killed as one group by its id.
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def finish(self):
        hard = self.timeout + CLI_HARD_TIMEOUT_MARGIN
        try:
            out, err = self.proc.communicate(timeout=hard)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise AssertionError(f"tako-vm sandbox hung for more than {hard}s; killed it. "
                                 f"stderr tail: {err[-400:].decode(errors='replace')}")
        elapsed = time.monotonic() - self.started
        shutil.rmtree(self.workdir, ignore_errors=True)
        text = out.decode("utf-8", errors="replace")
        try:
            result = json.loads(text)
        except ValueError:
            raise AssertionError(
                f"tako-vm sandbox printed no JSON result (rc={self.proc.returncode}); "
                f"stdout head: {text[:300]!r}; stderr tail: {err[-600:].decode(errors='replace')!r}")
        check(isinstance(result, dict), f"result is not a JSON object: {text[:200]!r}")
        result["_elapsed"] = elapsed
        result["_rc"] = self.proc.returncode
        result["_stderr"] = err.decode("utf-8", errors="replace")
        result["_token"] = self.token
        result["_cli_pid"] = self.proc.pid
        result["_report"] = _parse_report(result.get("stdout"))
        return result


def run_job(code, input=None, timeout=10, extra_args=(), raw=False, memory=None):
    """Run code in a fresh sandbox; return the parsed result JSON plus
    _elapsed (s), _rc, _stderr (the CLI's own), _token and _report."""
    return Job(code, input, timeout, extra_args, raw, memory).start().finish()


def describe(result):
    """A short summary of a result for failure messages."""
    keep = {k: result.get(k) for k in ("status", "exit_code", "error", "stdout_truncated",
                                       "stderr_truncated", "_elapsed", "_rc")}
    keep["stdout"] = (result.get("stdout") or "")[:400]
    keep["stderr"] = (result.get("stderr") or "")[-400:]
    return json.dumps(keep, default=str)


def report_of(result):
    """The job's own report; fails clearly when the job never reported."""
    rep = result.get("_report")
    check(rep is not None, f"job printed no report: {describe(result)}")
    return rep


def error_type(result):
    return (result.get("error") or {}).get("type")


# --------------------------------------------------------------------------
# Judging what the job saw


def blocked(outcome):
    """True if a try_syscall() outcome shows the call was refused: killed by
    SIGSYS, or -1 with EPERM/ENOSYS/EACCES."""
    if outcome.get("signal") == SIGSYS:
        return True
    value = outcome.get("value") or {}
    return value.get("ret") == -1 and value.get("errno") in BLOCKED_ERRNOS


def assert_blocked(result, key="outcome"):
    rep = report_of(result)
    outcome = rep.get(key)
    check(outcome is not None, f"report has no {key}: {rep}")
    check(blocked(outcome), f"syscall was not blocked: {outcome} "
          f"(errno names: {errno_name(outcome)}) report={rep}")


def errno_name(outcome):
    value = (outcome or {}).get("value") or {}
    code = value.get("errno")
    return errno.errorcode.get(code, str(code)) if isinstance(code, int) else None


# --------------------------------------------------------------------------
# Host state


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def _proc_uids(pid):
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    return None


def _proc_starttime(pid):
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # comm may hold spaces and parentheses: fields after the last ')'.
    return stat[stat.rfind(")") + 2:].split()[19]


def sandbox_processes():
    """{(pid, starttime): comm} for every host process whose uids reach
    into the sandbox range."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        uids = _proc_uids(name)
        if not uids or max(uids) < SANDBOX_UID_FLOOR:
            continue
        start = _proc_starttime(name)
        comm = (_read(f"/proc/{name}/comm") or "?").strip()
        if start is not None:
            found[(int(name), start)] = comm
    return found


def process_token(pid):
    """The marker token of the job code a sandbox process belongs to (read
    through its root), or None when unreadable."""
    head = _read(f"/proc/{pid}/root/code/main.py")
    if head is None:
        return None
    first = head.split("\n", 1)[0]
    return first[len(MARKER_PREFIX):] if first.startswith(MARKER_PREFIX) else ""


def _ancestors_have_live_tako(pid):
    """True when some live ancestor is a tako-vm process: a sandbox that
    belongs to a run still in progress (another engineer's, or another job
    of this test)."""
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        stat = _read(f"/proc/{pid}/stat")
        if stat is None:
            return False
        fields = stat[stat.rfind(")") + 2:].split()
        pid = int(fields[1])
        comm = (_read(f"/proc/{pid}/comm") or "").strip()
        if comm.startswith("tako") and max(_proc_uids(pid) or [0]) < SANDBOX_UID_FLOOR:
            return True
    return False


def _cgroup_own_paths():
    """This process's cgroup path per hierarchy (the machine runs each
    command in its own memory cgroup; siblings belong to other people)."""
    own = {}
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            own[c.replace("name=", "")] = path.strip("/")
    return own


def cgroup_dirs():
    """Every cgroup directory under /sys/fs/cgroup/* up to a bounded depth,
    as 'controller/relative/path'."""
    dirs = set()
    root = "/sys/fs/cgroup"
    try:
        controllers = os.listdir(root)
    except OSError:
        return dirs
    for ctrl in controllers:
        base = os.path.join(root, ctrl)
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        for here, subdirs, _ in os.walk(base):
            depth = here[len(base):].count("/")
            if depth >= CGROUP_WALK_DEPTH:
                subdirs[:] = []
            rel = os.path.relpath(here, root)
            dirs.add(rel)
    return dirs


# The sandbox names its cgroups tako-sandbox-<pid of the creating process>-...
SANDBOX_CGROUP_PREFIX = "tako-sandbox-"


def _cgroup_is_foreign(rel, own, cli_pid=None):
    """Cgroups that belong to other people's commands on this machine: a
    sibling of our own per-command cgroup, one holding processes of a
    sandbox that is not ours, or a sandbox cgroup named for another
    creating process than our CLI. Unknown names count as ours."""
    base = os.path.basename(rel)
    if cli_pid is not None and base.startswith(SANDBOX_CGROUP_PREFIX) \
            and not base.startswith(f"{SANDBOX_CGROUP_PREFIX}{cli_pid}-"):
        return True
    ctrl, _, path = rel.partition("/")
    mine = own.get(ctrl, "")
    parts = path.split("/")
    if mine and len(parts) >= 2 and parts[0] == mine.split("/")[0] and not path.startswith(mine):
        return True
    procs = _read(os.path.join("/sys/fs/cgroup", rel, "cgroup.procs"))
    return bool(procs and procs.strip())


def sandbox_cgroups_of(cli_pid):
    """Every cgroup directory a CLI of this pid created (by the sandbox's
    naming), deepest first so they can be removed in order."""
    prefix = f"{SANDBOX_CGROUP_PREFIX}{cli_pid}-"
    found = [c for c in cgroup_dirs() if os.path.basename(c).startswith(prefix)]
    return sorted(found, key=lambda c: -c.count("/"))


# Killed processes leave their cgroup a moment after SIGKILL.
CGROUP_EMPTY_WITHIN = 5.0


def remove_empty_cgroups(rels):
    """rmdir cgroups this run's CLI left behind, once their processes are
    gone (a cgroup with members cannot be removed)."""
    deadline = time.monotonic() + CGROUP_EMPTY_WITHIN
    for rel in rels:
        path = os.path.join("/sys/fs/cgroup", rel)
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)


def mounts():
    """The host mount table as (mount point, fs type, source) triples."""
    found = set()
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 2:
            found.add((fields[4], tail[0], tail[1]))
    return found


def key_users():
    """Lines of /proc/key-users for sandbox uids."""
    lines = set()
    for line in (_read("/proc/key-users") or "").splitlines():
        uid = line.split(":", 1)[0].strip()
        if uid.isdigit() and int(uid) >= SANDBOX_UID_FLOOR:
            lines.add(uid)
    return lines


def file_fingerprint(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    data = _read(path, "rb") if os.path.isfile(path) else b""
    return (st.st_mode, st.st_size, st.st_mtime_ns, hashlib.sha256(data or b"").hexdigest())


# Host files whose content must never change because of a job.
WATCHED_FILES = ["/etc/passwd", "/etc/shadow", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
# Host directories a job would write into if the read-only binds failed.
WATCHED_DIRS = ["/etc", "/usr", "/usr/bin", "/tmp", "/dev", "/root"]

# A canary file in the host's /tmp; jobs write to the same path, which
# inside the sandbox is their own tmpfs.
CANARY_PATH = f"/tmp/tako-hostile-canary-{secrets.token_hex(6)}"
CANARY_CONTENT = json.dumps({"canary": secrets.token_hex(16)})


def _remove_canary():
    try:
        os.unlink(CANARY_PATH)
    except OSError:
        pass


atexit.register(_remove_canary)


def ensure_canary():
    if not os.path.exists(CANARY_PATH):
        with open(CANARY_PATH, "w") as f:
            f.write(CANARY_CONTENT)


def snapshot():
    """Everything about the host a job must not change."""
    ensure_canary()
    return {
        "procs": sandbox_processes(),
        "keys": set((_read("/proc/keys") or "").splitlines()),
        "key_users": key_users(),
        "cgroups": cgroup_dirs(),
        "mounts": mounts(),
        "files": {p: file_fingerprint(p) for p in WATCHED_FILES + [CANARY_PATH]},
        "dirs": {d: set(os.listdir(d)) if os.path.isdir(d) else None for d in WATCHED_DIRS},
        "hostname": socket.gethostname(),
        "domainname": (_read("/proc/sys/kernel/domainname") or "").strip(),
    }


def leftover_processes(before, token=None):
    """Sandbox-range processes that appeared since `before` and belong to
    this run: they carry our token, or carry no readable token and no live
    tako-vm ancestor (so nobody else is running them)."""
    ours = {}
    for (pid, start), comm in sandbox_processes().items():
        if (pid, start) in before["procs"]:
            continue
        tok = process_token(pid)
        if tok is not None and tok != "":
            if token is None or tok == token:
                ours[pid] = comm
            continue
        if not _ancestors_have_live_tako(pid):
            ours[pid] = comm
    return ours


def kill_leftovers(pids):
    """Kill processes this run left behind (found by leftover_processes),
    one by one by pid, so later cases start from a clean host."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def assert_host_clean(before, after, result=None):
    """Fail with every difference that this run caused on the host."""
    token = result.get("_token") if result else None
    cli_pid = result.get("_cli_pid") if result else None
    problems = []
    left = leftover_processes(before, token)
    if left and TEARDOWN_GRACE > 0:
        deadline = time.monotonic() + TEARDOWN_GRACE
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = leftover_processes(before, token)
    if left:
        deadline = time.monotonic() + LEFTOVER_WATCH
        still = dict(left)
        while still and time.monotonic() < deadline:
            time.sleep(0.05)
            still = leftover_processes(before, token)
        kill_leftovers(still)
        problems.append(f"sandbox processes alive after the CLI returned: {left} "
                        f"({'still alive after ' + str(LEFTOVER_WATCH) + 's, killed' if still else 'gone within ' + str(LEFTOVER_WATCH) + 's: teardown finished after the CLI returned'})")
    new_keys = after["keys"] - before["keys"]
    if new_keys:
        problems.append(f"new keys in host /proc/keys: {sorted(new_keys)[:5]}")
    new_key_users = after["key_users"] - before["key_users"]
    if new_key_users:
        problems.append(f"new sandbox uids in /proc/key-users: {sorted(new_key_users)}")
    own = _cgroup_own_paths()
    new_cgroups = [c for c in sorted(after["cgroups"] - before["cgroups"])
                   if not _cgroup_is_foreign(c, own, cli_pid) and os.path.isdir(os.path.join("/sys/fs/cgroup", c))]
    if new_cgroups:
        problems.append(f"cgroup directories left behind: {new_cgroups[:8]}")
        remove_empty_cgroups(sorted(new_cgroups, key=lambda c: -c.count("/")))
    new_mounts = after["mounts"] - before["mounts"]
    if new_mounts:
        problems.append(f"new host mounts: {sorted(new_mounts)[:8]}")
    for path, fp in before["files"].items():
        if after["files"].get(path) != fp:
            problems.append(f"host file changed: {path}")
    for d, names in before["dirs"].items():
        now = after["dirs"].get(d)
        if names is not None and now is not None:
            added = {n for n in now - names if JOB_FILE_HINT in n}
            if added:
                problems.append(f"files appeared in host {d}: {sorted(added)[:8]} (removed)")
                remove_job_files(d, added)
    if after["hostname"] != before["hostname"]:
        problems.append(f"host hostname changed to {after['hostname']!r}")
    if after["domainname"] != before["domainname"]:
        problems.append(f"host domainname changed to {after['domainname']!r}")
    check(not problems, "host touched: " + "; ".join(problems))


# Names jobs use for the files they try to drop on the host. Other people
# create files in /tmp all the time; only these count.
JOB_FILE_HINT = "tako-probe"


def remove_job_files(directory, names):
    """Clean up what a job managed to drop on the host (a failure already
    reported), so later cases start clean."""
    for name in names:
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def hostile(code, timeout=10, **kwargs):
    """Run code with host snapshots around it; return the result after
    asserting the host is clean. The common shape of every case."""
    before = snapshot()
    result = run_job(code, timeout=timeout, **kwargs)
    assert_host_clean(before, snapshot(), result)
    return result


def require_sandbox():
    """Abort the whole suite early (one failing line) when the CLI is not
    there yet, instead of 40 identical failures."""
    if not sandbox_available():
        print("1..1")
        print("not ok 1 - sandbox_cli_available")
        print("#   `tako-vm sandbox --help` failed: the sandbox CLI is not built yet")
        sys.exit(1)


def expect_status(result, *statuses):
    check(result.get("status") in statuses,
          f"expected status in {statuses}, got {result.get('status')!r}: {describe(result)}")


def expect_elapsed_below(result, limit):
    check(result["_elapsed"] < limit,
          f"run took {result['_elapsed']:.1f}s, bound is {limit:.1f}s: {describe(result)}")
