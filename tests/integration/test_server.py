#!/usr/bin/env python3
"""`tako-vm server` end to end: threads and --processes. The server starts
the broker, the private PostgreSQL and every actor; `tako-vm exec` runs a
job through it (synchronously and with --async); SIGTERM stops it with
exit 0 and leaves no PostgreSQL behind. With --processes a SIGKILLed
child comes back with a new pid and jobs still run."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
from taplib import test, run, check, wait_for  # noqa: E402
from lib_server import Server, postgres_pids, alive, socket_inodes, TERMINAL  # noqa: E402

RESTART_DEADLINE = 30.0


def check_two(server):
    record = server.exec_json("print(1 + 1)\n")
    check(record.get("status") == "succeeded", f"status: {record}")
    check(record.get("stdout") == "2\n", f"stdout: {record.get('stdout')!r}")
    return record


def check_async(server):
    done = server.exec("import json\nprint(json.load(open('/input/data.json'))['n'] * 3)\n",
                       "--async", "--input", '{"n": 14}')
    check(done.returncode == 0, f"exec --async failed: {done.stderr}")
    accepted = json.loads(done.stdout)
    check(set(accepted) == {"job_id", "status"}, f"--async printed {accepted}")
    check(accepted["status"] in ("queued", "running") or accepted["status"] in TERMINAL,
          f"status {accepted['status']}")
    record = server.wait_job_end(accepted["job_id"])
    check(record["status"] == "succeeded", f"async job: {record}")
    check(record["stdout"] == "42\n", f"async stdout {record['stdout']!r}")


def check_clean_stop(server):
    check(postgres_pids(server.data_dir), "PostgreSQL was not running under the data dir")
    rc = server.stop(signal.SIGTERM)
    check(rc == 0, f"server exited {rc}:\n{server.tail()}")
    check(not postgres_pids(server.data_dir), "PostgreSQL still running after the server stopped")
    left = [pid for pid in server.child_pids() if alive(pid)]
    check(not left, f"children still alive: {left}")


@test
def threads_server_runs_jobs_and_stops_cleanly():
    server = Server()
    try:
        server.wait_ready()
        status = json.loads(server.status().stdout)
        check(status["status"] == "running" and "health" in status and "pool" in status,
              f"status printed {status}")
        check_two(server)
        check_async(server)
        own = own_tcp_connections(server.process.pid, set(server.ports[:3]))
        check(not own, f"actors reach the broker and hub over TCP instead of in-process: {own}")
        check_clean_stop(server)
    finally:
        server.close()


def own_tcp_connections(pid, ports):
    """Established TCP connections of process pid to or from the given
    local ports (the broker's and the hub's), from /proc."""
    inodes = socket_inodes(pid)
    found = []
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            ends = {int(local.split(":")[1], 16), int(remote.split(":")[1], 16)}
            if state == "01" and inode in inodes and ends & ports:
                found.append((local, remote))
    return found


@test
def exec_reports_a_refused_job():
    server = Server()
    try:
        server.wait_ready()
        done = server.exec("print(1)\n", "--job-type", "no-such-type")
        check(done.returncode == 1, f"exec of an unknown job type exited {done.returncode}")
        check(done.stderr.strip() and "/" not in done.stderr.split(":", 1)[-1],
              f"reason: {done.stderr!r}")
        check(server.stop() == 0, "server did not exit 0")
    finally:
        server.close()


@test
def status_and_exec_fail_without_a_server():
    server = Server(start=False)        # a config whose ports nobody serves
    try:
        done = server.status()
        check(done.returncode == 1, f"status with no server exited {done.returncode}")
        check("no answer" in done.stderr, f"status said {done.stderr!r}")
        done = server.exec("print(1)\n")
        check(done.returncode == 1, f"exec with no server exited {done.returncode}")
        check("no answer" in done.stderr, f"exec said {done.stderr!r}")
    finally:
        server.close()


@test
def processes_server_restarts_a_killed_child():
    server = Server(processes=True)
    try:
        server.wait_ready()
        check_two(server)
        old = server.child_pid("scheduler")
        check(old and alive(old), f"no scheduler child in the log:\n{server.tail()}")
        os.kill(old, signal.SIGKILL)
        new = wait_for(lambda: server.child_pid("scheduler", after=old), timeout=RESTART_DEADLINE,
                       interval=0.05, what="the scheduler to be restarted")
        check(new != old and alive(new), f"scheduler pid {old} -> {new}")
        check("scheduler (pid %d) killed by signal 9" % old in server.text(), "the death was not logged")
        server.wait_ready()
        check_two(server)
        check_clean_stop(server)
    finally:
        server.close()


run()
