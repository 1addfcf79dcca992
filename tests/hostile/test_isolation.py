#!/usr/bin/env python3
"""Cross-job snooping: two sandboxes run at once. Job A plants a secret
everywhere it can (/tmp, /dev/shm, an abstract unix socket, a loopback
port, a SysV shared memory key, the argv of a child) and waits; job B
looks for it and tries to signal A's processes. B must see nothing and A
must survive.

The host steers both jobs through their own /tmp (as root it reaches them
via /proc/PID/root): it waits until both are ready, hands B the host pids
of A, then tells A to finish. No sleeps, every wait has a deadline."""
import ctypes
import json
import os
import secrets
import sys

sys.dont_write_bytecode = True  # keep tests/hostile free of __pycache__
sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import test, run, check, wait_for  # noqa: E402
from lib_hostile import (Job, snapshot, assert_host_clean, report_of, expect_status,  # noqa: E402
                         describe, require_sandbox, sandbox_processes, process_token)

JOB_TIMEOUT = 20
# Both sandboxes must be up within this (two ASan start-ups on a shared box).
READY_WITHIN = 30
SHM_KEY = 0x7a6b0000 + secrets.randbelow(0xffff)
PORT = 40000 + secrets.randbelow(20000)
SYS_SHMGET = 29

# Job A: plant the secret, then wait for the host's "stop" file.
JOB_A = r'''
secret = json.load(open("/input/data.json"))["secret"]
name, port, key = "\0tako-hostile-" + secret, PORT, SHM_KEY
with open("/tmp/tako-probe-secret", "w") as f:
    f.write(secret)
shm = None
if os.path.isdir("/dev/shm"):
    shm = write_errno("/dev/shm/tako-probe-secret", secret)
abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
abstract.bind(name)
abstract.listen(4)
tcp = socket.socket()
tcp.bind(("127.0.0.1", port))
tcp.listen(4)
IPC_CREAT = 0o1000
shmid, shm_err = syscall(SYS_SHMGET, key, 4096, IPC_CREAT | 0o666)
import subprocess
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", secret])
with open("/proc/self/uid_map") as f:
    uid_map = f.read().split()
open("/tmp/tako-probe-ready", "w").close()
deadline = time.monotonic() + 15
while not os.path.exists("/tmp/stop") and time.monotonic() < deadline:
    time.sleep(0.02)
child.kill()
child.wait()
report({"done": True, "stopped_by_host": os.path.exists("/tmp/stop"), "shmid": shmid,
        "shm_err": shm_err, "dev_shm": shm, "uid_map": uid_map})
'''.replace("PORT", str(PORT)).replace("SHM_KEY", str(SHM_KEY)).replace("SYS_SHMGET", str(SYS_SHMGET))

# Job B: wait for the host's "go" file (the secret and A's host pids), then
# snoop. The secret must not be in B's own input or command line.
JOB_B = r'''
open("/tmp/tako-probe-ready", "w").close()
deadline = time.monotonic() + 20
while not os.path.exists("/tmp/go") and time.monotonic() < deadline:
    time.sleep(0.02)
go = json.load(open("/tmp/go"))
os.unlink("/tmp/go")  # it holds the secret itself
secret = go["secret"]
found = []
def scan_tree(top):
    for here, dirs, files in os.walk(top):
        for f in files:
            path = os.path.join(here, f)
            try:
                with open(path, "rb") as fh:
                    if secret.encode() in fh.read(1 << 20):
                        found.append(path)
            except OSError:
                pass
for top in ("/tmp", "/dev/shm", "/output"):
    if os.path.isdir(top):
        scan_tree(top)
for p in os.listdir("/proc"):
    if p.isdigit():
        for leaf in ("cmdline", "environ"):
            try:
                with open("/proc/%s/%s" % (p, leaf), "rb") as fh:
                    if secret.encode() in fh.read():
                        found.append("/proc/%s/%s" % (p, leaf))
            except OSError:
                pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
abstract = oserror_of(lambda: s.connect("\0tako-hostile-" + secret))
t = socket.socket()
t.settimeout(2)
tcp = oserror_of(lambda: t.connect(("127.0.0.1", PORT)))
shmid, shm_err = syscall(SYS_SHMGET, SHM_KEY, 0, 0)
signals = {}
for pid in go["pids"]:
    signals[pid] = [oserror_of(lambda: os.kill(pid, 0)), oserror_of(lambda: os.kill(pid, signal.SIGKILL))]
with open("/proc/self/uid_map") as f:
    uid_map = f.read().split()
report({"found": found, "abstract": abstract, "tcp": tcp, "shmid": shmid, "shm_err": shm_err,
        "signals": signals, "uid_map": uid_map})
'''.replace("PORT", str(PORT)).replace("SHM_KEY", str(SHM_KEY)).replace("SYS_SHMGET", str(SYS_SHMGET))


def pids_of(job):
    return [pid for (pid, _), _ in sandbox_processes().items() if process_token(pid) == job.token]


def ready_pid(job):
    for pid in pids_of(job):
        if os.path.exists(f"/proc/{pid}/root/tmp/tako-probe-ready"):
            return pid
    return None


def drop_file(pid, name, content):
    """Put a file into the sandbox's /tmp. Its tmpfs belongs to the job's
    user namespace, where host root has no uid (EOVERFLOW), so a short-lived
    child writes it with the job's host fsuid/fsgid."""
    with open(f"/proc/{pid}/status") as f:
        ids = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("Uid:", "Gid:"))}
    path = f"/proc/{pid}/root/tmp/{name}"
    child = os.fork()
    if child == 0:
        code = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setfsgid(ids["Gid"])
            libc.setfsuid(ids["Uid"])
            fd = os.open(path + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, content.encode())
            os.close(fd)
            os.rename(path + ".part", path)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"could not write {name} into the sandbox of pid {pid}")


@test
def concurrent_job_cannot_see_or_signal_another():
    secret = "tako-secret-" + secrets.token_hex(12)
    before = snapshot()
    a = Job(JOB_A, input={"secret": secret}, timeout=JOB_TIMEOUT)
    b = Job(JOB_B, timeout=JOB_TIMEOUT)
    a.start()
    b.start()
    try:
        try:
            a_pid = wait_for(lambda: ready_pid(a), READY_WITHIN, 0.05, "job A ready")
            b_pid = wait_for(lambda: ready_pid(b), READY_WITHIN, 0.05, "job B ready")
        except AssertionError as error:
            # Both jobs end alone within their timeout; show why they failed.
            raise AssertionError(f"{error}; A: {describe(a.finish())}; B: {describe(b.finish())}")
        a_pids = pids_of(a)
        drop_file(b_pid, "go", json.dumps({"secret": secret, "pids": sorted(a_pids)}))
        result_b = b.finish()
        a_alive = [p for p in a_pids if os.path.exists(f"/proc/{p}")]
        drop_file(a_pid, "stop", "")
        result_a = a.finish()
    finally:
        # Never SIGKILL a CLI (its cgroups would stay behind): both jobs end
        # alone within their timeout, and finish() kills only a hung CLI.
        for job in (a, b):
            if job.proc.returncode is None:
                try:
                    job.finish()
                except AssertionError:
                    pass
    rep_b, rep_a = report_of(result_b), report_of(result_a)
    check(rep_b["found"] == [], f"job B found A's secret at {rep_b['found']}")
    check(rep_b["abstract"] == 111, f"B reached A's abstract socket: {rep_b}")
    check(rep_b["tcp"] == 111, f"B reached A's loopback port: {rep_b}")
    check(rep_a["shmid"] >= 0 or rep_a["shm_err"] in (1, 38),
          f"A could not even create its shm segment: {rep_a}")
    check(rep_b["shmid"] == -1, f"B opened A's SysV shared memory: {rep_b}")
    for pid, (probe, kill) in rep_b["signals"].items():
        check(probe in (1, 3) and kill in (1, 3), f"B could signal A's host pid {pid}: {rep_b['signals']}")
    check(a_alive == a_pids, f"A's processes died while B ran: alive {a_alive} of {a_pids}")
    check(rep_a["done"] and rep_a["stopped_by_host"], f"A did not finish normally: {describe(result_a)}")
    check(rep_a["uid_map"][1] != rep_b["uid_map"][1],
          f"both jobs ran as the same host uid: {rep_a['uid_map']} {rep_b['uid_map']}")
    expect_status(result_a, "succeeded")
    expect_status(result_b, "succeeded")
    assert_host_clean(before, snapshot(), result_a)
    assert_host_clean(before, snapshot(), result_b)


@test
def sequential_jobs_share_nothing():
    # One sandbox per job, never reused: a file left in /tmp, /output or
    # /dev/shm by one job is gone for the next.
    secret = "tako-secret-" + secrets.token_hex(12)
    before = snapshot()
    plant = Job("""
for d in ("/tmp", "/output", "/dev/shm"):
    try:
        with open(d + "/tako-probe-left", "w") as f:
            f.write(%r)
    except OSError:
        pass
report({"planted": True})
""" % secret).start().finish()
    check(report_of(plant)["planted"], "first job did not run")
    assert_host_clean(before, snapshot(), plant)
    look = Job("""
report({"left": [d for d in ("/tmp", "/output", "/dev/shm") if os.path.exists(d + "/tako-probe-left")]})
""").start().finish()
    check(report_of(look)["left"] == [], f"second job found the first job's files: {report_of(look)}")
    assert_host_clean(before, snapshot(), look)


if __name__ == "__main__":
    require_sandbox()
    run()
