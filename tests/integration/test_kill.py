#!/usr/bin/env python3
"""The kill test: with `tako-vm server --processes`, submit many short jobs
(`print(N)`) and SIGKILL the scheduler, executor, recorder, broker, dlq and builder
in turn while they run, then the executor's zygote, then restart PostgreSQL. Afterwards every accepted job must have reached
exactly one terminal state, recorded once, with the right stdout for the
ones that succeeded (a job whose retries ran out is failed and has a dead
letter — never lost, never duplicated).

Submissions carry an idempotency key, so one that was committed but whose
answer was lost to a kill is not submitted twice when the client retries.
The final state is read from the server's own PostgreSQL with psql."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
from taplib import test, run, check, wait_for  # noqa: E402
from lib_server import Server, TAKO_BIN, alive, postgres_pids  # noqa: E402

JOBS = int(os.environ.get("TAKO_KILL_JOBS", "120"))
VICTIMS = ["scheduler", "executor", "recorder", "broker", "dlq", "builder"]
SUBMITTERS = 4
SUBMIT_DEADLINE = 150.0         # per job, retries included
RESTART_DEADLINE = 30.0
FINISH_DEADLINE = 150.0
KILL_AFTER_ACCEPTED = 15        # first kill once this many jobs are in
KILL_SPACING = 1.0              # seconds between a restart and the next kill
#  Many retries, quick back-off: kills cost attempts, not jobs.
#  A warm pool, so the executor's sandboxes come from a zygote (one more
#  victim: a killed zygote is replaced, its jobs start cold meanwhile).
CONFIG = ("max_retry_attempts: 6\nretry_base_delay: 0.2\nmax_queue_size: 1000\n"
          "job_types:\n  - name: default\n    warm_pool: 2\n")


def psql(url, query):
    done = subprocess.run(["psql", url, "-AtX", "-F", "\t", "-c", query],
                          capture_output=True, text=True, timeout=30)
    check(done.returncode == 0, f"psql failed: {done.stderr}")
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def database_url(server):
    done = subprocess.run([TAKO_BIN, "dev", "status", "--data-dir", server.data_dir],
                          capture_output=True, text=True, timeout=30)
    check(done.returncode == 0, f"the server's database is not running: {done.stdout}{done.stderr}")
    return done.stdout.split(" ", 1)[1].strip()


class Load:
    """Submits the jobs and remembers which were accepted."""

    def __init__(self, server, run_id):
        self.server = server
        self.run_id = run_id
        self.accepted = {}          # number -> job_id
        self.refusals = 0           # answers that were not ACCEPTED (retried)
        self.lock = threading.Lock()

    def key(self, number):
        return f"kill-{self.run_id}-{number}"

    def submit(self, number):
        deadline = time.monotonic() + SUBMIT_DEADLINE
        while time.monotonic() < deadline:
            done = self.server.exec(f"print({number})\n", "--async",
                                    "--idempotency-key", self.key(number), timeout=60)
            if done.returncode == 0:
                with self.lock:
                    self.accepted[number] = json.loads(done.stdout)["job_id"]
                return
            with self.lock:
                self.refusals += 1
            time.sleep(0.2)         # the scheduler or broker is restarting
        raise AssertionError(f"job {number} was never accepted")

    def count(self):
        with self.lock:
            return len(self.accepted)


def kill_in_turn(server, load, kills):
    """SIGKILL each victim once, waiting for its restart before the next."""
    wait_for(lambda: load.count() >= KILL_AFTER_ACCEPTED, timeout=SUBMIT_DEADLINE,
             interval=0.05, what="the first jobs to be accepted")
    for victim in VICTIMS:
        old = server.child_pid(victim)
        check(old and alive(old), f"no live {victim} child")
        os.kill(old, signal.SIGKILL)
        new = wait_for(lambda: server.child_pid(victim, after=old), timeout=RESTART_DEADLINE,
                       interval=0.05, what=f"the {victim} to be restarted")
        kills.append((victim, old, new, load.count()))
        time.sleep(KILL_SPACING)    # let the system work between kills
    old = wait_for(lambda: zygote_pid(server), timeout=RESTART_DEADLINE, interval=0.05,
                   what="the executor's zygote")
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: zygote_pid(server, after=old), timeout=RESTART_DEADLINE,
                   interval=0.05, what="a new zygote")
    kills.append(("zygote", old, new, load.count()))
    time.sleep(KILL_SPACING)
    restart_postgres(server, load, kills)


def zygote_pid(server, after=None):
    """The pid of the (current) executor's tako-zygote, other than after."""
    executor = server.child_pid("executor")
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
            name, ppid = fields[0].split("(", 1)[1], int(fields[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if name == "tako-zygote" and ppid == executor and int(entry) != after:
            return int(entry)
    return None


def restart_postgres(server, load, kills):
    """Stop the server's PostgreSQL under load and start it again: the
    recorder answers 503 meanwhile and reconnects; nothing is lost."""
    old = postgres_pids(server.data_dir)
    check(old, "the server's PostgreSQL is not running")
    for action in ("down", "up"):
        done = subprocess.run([TAKO_BIN, "dev", action, "--data-dir", server.data_dir],
                              capture_output=True, text=True, timeout=RESTART_DEADLINE)
        check(done.returncode == 0, f"dev {action} failed: {done.stderr}")
    new = postgres_pids(server.data_dir)
    check(new and not set(new) & set(old), "PostgreSQL did not restart")
    kills.append(("postgres", min(old), min(new), load.count()))


@test
def every_accepted_job_ends_once_despite_kills():
    server = Server(processes=True, extra_config=CONFIG)
    kills = []
    try:
        server.wait_ready()
        load = Load(server, os.getpid())
        killer_error = []

        def killer():
            try:
                kill_in_turn(server, load, kills)
            except Exception as error:  # noqa: BLE001 - reported below
                killer_error.append(error)
        killer_thread = threading.Thread(target=killer)
        killer_thread.start()
        with ThreadPoolExecutor(SUBMITTERS) as pool:
            list(pool.map(load.submit, range(1, JOBS + 1)))
        killer_thread.join(timeout=RESTART_DEADLINE * (len(VICTIMS) + 2))
        check(not killer_error, f"killing failed: {killer_error}")
        check(len(kills) == len(VICTIMS) + 2, f"only {len(kills)} kills happened")

        url = database_url(server)
        keys = f"idempotency_key LIKE 'kill-{load.run_id}-%'"

        def all_ended():
            rows = psql(url, f"SELECT count(*) FROM executions WHERE {keys} "
                             "AND status IN ('queued', 'running')")
            return int(rows[0][0]) == 0
        try:
            wait_for(all_ended, timeout=FINISH_DEADLINE, interval=1.0, what="every job to end")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{server.tail()}") from None

        #  psql -A prints values raw: newlines in stdout become '|'.
        rows = psql(url, "SELECT e.idempotency_key, e.id, e.status,"
                         " replace (coalesce (e.stdout, ''), E'\\n', '|'),"
                         " (SELECT count(*) FROM attempt_results r WHERE r.job_id = e.id),"
                         " (SELECT count(*) FROM dlq d WHERE d.job_id = e.id),"
                         " coalesce (e.error::text, ''), e.attempt"
                         f" FROM executions e WHERE {keys}")
        by_number = {}
        for key, job_id, status, stdout, results, dead, error, attempt in rows:
            by_number.setdefault(int(key.rsplit("-", 1)[1]), []).append(
                (job_id, status, stdout, int(results), int(dead), error, int(attempt)))
        lost = [n for n, job_id in load.accepted.items() if n not in by_number]
        duplicated = [n for n, jobs in by_number.items() if len(jobs) > 1]
        wrong_id = [n for n, job_id in load.accepted.items()
                    if n in by_number and by_number[n][0][0] != job_id]
        statuses = {}
        wrong_output, unrecorded, dead_without_letter, unexpected = [], [], [], []
        for number, jobs in by_number.items():
            job_id, status, stdout, results, dead, error, attempt = jobs[0]
            statuses[status] = statuses.get(status, 0) + 1
            if status == "succeeded" and stdout != f"{number}|":
                wrong_output.append((number, stdout))
            if status not in ("succeeded", "failed"):
                unexpected.append((number, status, f"attempt {attempt}", error))
            if status in ("succeeded", "failed") and results < 1 and dead == 0:
                unrecorded.append(number)
            #  print(N) cannot fail by itself: a failure is an infrastructure
            #  one whose retries ran out, which leaves a dead letter.
            if status == "failed" and dead == 0:
                dead_without_letter.append((number, f"attempt {attempt}", error))
        print(f"# jobs={JOBS} accepted={len(load.accepted)} kills={len(kills)} "
              f"lost={len(lost)} duplicated={len(duplicated)} statuses={statuses} "
              f"client_retries={load.refusals}", flush=True)
        for victim, old, new, accepted in kills:
            print(f"# killed {victim} pid {old} -> restarted as {new} "
                  f"({accepted} jobs accepted by then)", flush=True)
        check(len(load.accepted) == JOBS, f"only {len(load.accepted)} of {JOBS} accepted")
        check(not lost, f"accepted but not recorded: {lost[:10]}")
        check(not duplicated, f"recorded more than once: {duplicated[:10]}")
        check(not wrong_id, f"a retry returned a different job: {wrong_id[:10]}")
        check(not wrong_output, f"wrong stdout: {wrong_output[:5]}")
        check(not unexpected, f"unexpected terminal states: {unexpected[:10]}")
        check(not unrecorded, f"terminal without a recorded result: {unrecorded[:10]}")
        check(not dead_without_letter, f"failed without a dead letter: {dead_without_letter[:10]}")
        check(statuses.get("succeeded", 0) > 0, f"no job succeeded: {statuses}")
        check(server.stop() == 0, f"server did not stop cleanly:\n{server.tail()}")
    finally:
        server.close()


run()
