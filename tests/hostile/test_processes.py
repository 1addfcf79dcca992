#!/usr/bin/env python3
"""Hostile jobs that attack with processes: fork and thread bombs, busy
loops, stopped processes, SIGTERM-proof children, daemons that try to
outlive their job. Each case checks the job's status and that no process
of the sandbox uid range is left on the host."""
import os
import shutil
import signal
import sys

sys.dont_write_bytecode = True  # keep tests/hostile free of __pycache__
sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import test, run, check, wait_for  # noqa: E402
from lib_hostile import (hostile, report_of, expect_status, expect_elapsed_below,  # noqa: E402
                         error_type, describe, require_sandbox, TIMEOUT_MARGIN, Job, snapshot,
                         sandbox_processes, process_token, kill_leftovers, sandbox_cgroups_of,
                         remove_empty_cgroups)

# Short job timeouts keep the suite fast; the bound on the run is the
# timeout plus TIMEOUT_MARGIN.
SHORT = 2
# A linear fork loop stops here even without a pids limit, so a broken
# sandbox cannot take the shared machine down.
FORK_CAP = 3000
# The pids limit a sandbox should enforce is far below this.
PIDS_LIMIT_CEILING = 2048
TIMEOUT_TYPES = ("execution_timeout", "timeout")
# The exponential bomb only runs once the linear one proved a pids limit.
proven = {"pids_limit": False}


def expect_timeout(result, timeout):
    expect_status(result, "timeout")
    check(error_type(result) in TIMEOUT_TYPES, f"error.type should be a timeout: {describe(result)}")
    expect_elapsed_below(result, timeout + TIMEOUT_MARGIN)


@test
def fork_bomb_linear_hits_pids_limit():
    result = hostile(f"""
import time
count, err = 0, None
while count < {FORK_CAP}:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    count += 1
report({{"forked": count, "errno": err}})
if err is None:
    os._exit(0)  # no pids limit: do not go on bombing a shared machine
# Keep the bomb up: the sandbox must still end the job at its timeout.
while True:
    try:
        os.fork() or time.sleep(60)
    except OSError:
        pass
""", timeout=SHORT)
    rep = report_of(result)
    check(rep["errno"] == 11, f"fork should fail with EAGAIN at the pids limit: {rep}")
    check(rep["forked"] < PIDS_LIMIT_CEILING, f"no pids limit: forked {rep['forked']}")
    proven["pids_limit"] = True
    expect_timeout(result, SHORT)


@test
def fork_bomb_exponential():
    # Run only behind the pids limit the previous case proved; every child
    # forks too, so this is the real bomb.
    check(proven["pids_limit"], "not run: fork_bomb_linear_hits_pids_limit did not prove a pids limit")
    result = hostile("""
import time
report({"started": True})
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.001)
""", timeout=SHORT)
    check(report_of(result)["started"], "job did not start")
    expect_status(result, "timeout", "failed")
    expect_elapsed_below(result, SHORT + TIMEOUT_MARGIN)


@test
def thread_bomb():
    result = hostile(f"""
import threading, time
count, err = 0, None
stop = threading.Event()
while count < {FORK_CAP}:
    try:
        threading.Thread(target=stop.wait, daemon=True).start()
    except RuntimeError as e:
        err = str(e)
        break
    count += 1
report({{"threads": count, "error": err}})
os._exit(0)
""", timeout=5)
    rep = report_of(result)
    check(rep["error"] is not None and rep["threads"] < PIDS_LIMIT_CEILING,
          f"thread creation was not limited: {rep}")
    expect_elapsed_below(result, 5 + TIMEOUT_MARGIN)


@test
def busy_loop_hits_execution_timeout():
    result = hostile("""
report({"spinning": True})
while True:
    pass
""", timeout=SHORT)
    check(report_of(result)["spinning"], "job did not start")
    expect_timeout(result, SHORT)
    check(result.get("stdout_truncated") is False, f"stdout flag wrong: {describe(result)}")


@test
def sigstop_self_still_killed_at_timeout():
    result = hostile("""
report({"stopping": True})
os.kill(os.getpid(), signal.SIGSTOP)
report({"resumed": True})
while True:
    time.sleep(1)
""", timeout=SHORT)
    check(report_of(result)["stopping"], "job did not start")
    check('"resumed"' not in (result.get("stdout") or ""), "job was resumed, not killed")
    expect_timeout(result, SHORT)


@test
def stopped_child_and_waiting_parent_killed_at_timeout():
    result = hostile("""
pid = os.fork()
if pid == 0:
    os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(0)
report({"child": pid})
os.waitpid(pid, 0)
""", timeout=SHORT)
    check(report_of(result)["child"] > 0, "no child")
    expect_timeout(result, SHORT)


@test
def stopped_child_left_behind_when_main_exits():
    result = hostile("""
pid = os.fork()
if pid == 0:
    os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(0)
report({"child": pid})
""", timeout=5)
    check(report_of(result)["child"] > 0, "no child")
    expect_status(result, "succeeded")
    expect_elapsed_below(result, 5 + TIMEOUT_MARGIN)


@test
def main_ignoring_sigterm_killed_at_timeout():
    result = hostile("""
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
report({"ignoring": True})
while True:
    pass
""", timeout=SHORT)
    check(report_of(result)["ignoring"], "job did not start")
    expect_timeout(result, SHORT)


@test
def child_ignoring_sigterm_dies_with_job():
    result = hostile("""
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        pass
report({"child": pid})
""", timeout=5)
    check(report_of(result)["child"] > 0, "no child")
    expect_status(result, "succeeded")
    expect_elapsed_below(result, 5 + TIMEOUT_MARGIN)


@test
def double_fork_daemon_does_not_outlive_job():
    # The grandchild keeps trying to write the same path as the host canary
    # and a probe in /tmp; none of it may reach the host, and it must die.
    result = hostile("""
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for fd in (0, 1, 2):
            os.close(fd)
        while True:
            for path in ("/tmp/tako-probe-daemon", "/proc/1/root/tmp/tako-probe-daemon"):
                try:
                    with open(path, "a") as f:
                        f.write("still here\\n")
                except OSError:
                    pass
            time.sleep(0.05)
    os._exit(0)
os.close(w)
report({"daemon": int(os.read(r, 32) or b"0")})
""", timeout=5)
    check(report_of(result)["daemon"] > 0, "daemon never started")
    expect_status(result, "succeeded")


@test
def setsid_nohup_exec_sleep_does_not_outlive_job():
    result = hostile("""
import subprocess
p = subprocess.Popen(["sleep", "1000"], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
report({"sleeper": p.pid})
os._exit(0)
""", timeout=5)
    check(report_of(result)["sleeper"] > 0, "sleep never started")
    expect_status(result, "succeeded")


@test
def process_that_reparents_and_forks_repeatedly():
    # A "respawner": each generation forks a new one and exits, so the
    # process tree keeps moving; the sandbox must still kill all of it.
    result = hostile("""
if os.fork() == 0:
    os.setsid()
    while True:
        if os.fork() != 0:
            os._exit(0)
        time.sleep(0.02)
report({"respawner": True})
""", timeout=5)
    check(report_of(result)["respawner"], "job did not start")
    expect_status(result, "succeeded")


@test
def daemon_holding_stdout_does_not_delay_result():
    # A grandchild keeps the stdout pipe open forever; the result must come
    # when the job's main process ends, not at the timeout.
    result = hostile("""
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            time.sleep(1)
    os._exit(0)
report({"main_done": True})
""", timeout=20)
    check(report_of(result)["main_done"], "job did not run")
    expect_status(result, "succeeded")
    expect_elapsed_below(result, 10)


@test
def signalling_everything_inside_still_gives_result():
    # kill(-1) reaches every process the job may signal; confined by the pid
    # namespace. Run only when the job sees just its own sandbox.
    result = hostile("""
pids = [p for p in os.listdir("/proc") if p.isdigit()]
with open("/proc/self/uid_map") as f:
    outside = int(f.read().split()[1])
safe = len(pids) <= 6 and outside >= 100000 and os.getuid() != 0
report({"safe": safe, "pids": pids})
if safe:
    for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(1, sig)
        except OSError:
            pass
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    time.sleep(0.5)
""", timeout=5)
    rep = report_of(result)
    check(rep["safe"], f"not confined enough to try kill(-1): {rep}")
    check(result.get("status") in ("succeeded", "failed"), f"unexpected status: {describe(result)}")
    expect_elapsed_below(result, 5 + TIMEOUT_MARGIN)


# After the CLI (the executor) dies, its sandbox must follow within this.
ORPHAN_DEATH_WITHIN = 5.0


@test
def killed_cli_takes_its_job_down():
    # An executor that crashes (SIGKILL, no cleanup) must not leave
    # untrusted code running: the sandbox tree has to die with it.
    before = snapshot()
    job = Job("""
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
while True:
    time.sleep(0.05)
""", timeout=30).start()

    def ours():
        return [pid for (pid, _), _ in sandbox_processes().items()
                if (pid, _) not in before["procs"] and process_token(pid) == job.token]
    try:
        running = wait_for(lambda: len(ours()) >= 2 and ours(), 30, 0.05, "the job's processes")
        os.kill(job.proc.pid, signal.SIGKILL)
        job.proc.wait()
        try:
            wait_for(lambda: not ours(), ORPHAN_DEATH_WITHIN, 0.05, "the orphaned sandbox to die")
        except AssertionError:
            left = ours()
            kill_leftovers(left)
            raise AssertionError(f"sandbox processes {left} (of {running}) outlived their killed CLI "
                                 f"by {ORPHAN_DEATH_WITHIN}s; killed them")
    finally:
        if job.proc.returncode is None:
            job.proc.kill()
            job.proc.wait()
        shutil.rmtree(job.workdir, ignore_errors=True)
        # Nobody is left to remove the dead CLI's cgroups; that is the
        # executor's restart sweep, not this case: note and clean up.
        stale = sandbox_cgroups_of(job.proc.pid)
        if stale:
            print(f"# note: a SIGKILLed CLI leaves its cgroups behind: {stale}", flush=True)
            remove_empty_cgroups(stale)


if __name__ == "__main__":
    require_sandbox()
    run()
