"""A `tako-vm server` under test: its own config, free ports, a data dir
under $TAKO_BUILD, its log collected in a file; plus the client commands
(`status`, `exec`) run against it. Shared by test_server.py and
test_kill.py (stdlib only)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from taplib import check, wait_for

TAKO_BIN = os.environ["TAKO_BIN"]
TAKO_BUILD = os.environ.get("TAKO_BUILD", "/tmp")
#  ASan builds start slowly, the private PostgreSQL needs initdb once.
START_DEADLINE = 120.0
STOP_DEADLINE = 60.0
COMMAND_DEADLINE = 120.0
TERMINAL = {"succeeded", "failed", "timeout", "oom", "cancelled"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_pids(data_dir):
    """Pids of processes whose command line names this data dir's cluster."""
    needle = os.path.join(data_dir, "pg", "data").encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if needle in cmdline.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def socket_inodes(pid):
    """The inodes of the sockets process pid has open (empty when it is gone)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


class Server:
    """One server (threads, or --processes) with a private config."""

    def __init__(self, processes=False, extra_config="", start=True, env=None):
        self.extra_env = dict(env or {})
        os.makedirs(TAKO_BUILD, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="srv-", dir=TAKO_BUILD)
        os.chmod(self.root, 0o755)     # PostgreSQL runs as its own user
        self.data_dir = os.path.join(self.root, "data")
        self.config = os.path.join(self.root, "tako_vm.yaml")
        self.ports = [free_port() for _ in range(4)]
        self.http_port = self.ports[3]
        with open(self.config, "w") as config:
            config.write(f"data_dir: {self.data_dir}\n"
                         f"broker_endpoint: tcp://127.0.0.1:{self.ports[0]}\n"
                         f"event_publish_endpoint: tcp://127.0.0.1:{self.ports[1]}\n"
                         f"event_subscribe_endpoint: tcp://127.0.0.1:{self.ports[2]}\n"
                         + ("" if "server_port:" in extra_config else f"server_port: {self.http_port}\n")
                         + extra_config)
        self.log_path = os.path.join(self.root, "server.log")
        self.log = open(self.log_path, "w+b")
        self.processes = processes
        self.process = None
        if start:
            self.start()

    def start(self):
        args = [TAKO_BIN, "--config", self.config, "server"] + (["--processes"] if self.processes else [])
        #  Under ASan the server checks its own leaks when it exits (the
        #  suite turns leak detection off for sandbox CLIs only): a clean
        #  stop() == 0 then also means no leak.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "").replace("detect_leaks=0", "detect_leaks=1")
        env.update(self.extra_env)
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, env=env,
                                        stdout=subprocess.DEVNULL, stderr=self.log)

    def text(self):
        with open(self.log_path, "rb") as log:
            return log.read().decode(errors="replace")

    def tail(self, lines=30):
        return "\n".join(self.text().splitlines()[-lines:])

    def command(self, *args, timeout=COMMAND_DEADLINE):
        return subprocess.run([TAKO_BIN, "--config", self.config] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    def status(self):
        return self.command("status", timeout=30)

    def wait_ready(self):
        def answering():
            check(self.process.poll() is None,
                  f"server exited early ({self.process.returncode}):\n{self.tail()}")
            return self.status().returncode == 0
        try:
            wait_for(answering, timeout=START_DEADLINE, interval=0.2, what="`tako-vm status` to answer")
            #  The scheduler may answer before the recorder is registered
            #  with the broker or has its database (a SUBMIT then is
            #  refused with 503): ask the recorder for a job that does not
            #  exist until it says so itself (404).
            def recorder_answering():
                done = self.command("status", "00000000-0000-0000-0000-000000000000", timeout=30)
                return "(404)" in done.stderr
            wait_for(recorder_answering, timeout=START_DEADLINE, interval=0.1,
                     what="the recorder to answer")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.tail()}") from None

    def exec(self, code, *options, timeout=COMMAND_DEADLINE):
        path = os.path.join(self.root, f"job-{time.monotonic_ns()}.py")
        with open(path, "w") as source:
            source.write(code)
        return self.command("exec", path, *options, timeout=timeout)

    def exec_json(self, code, *options):
        done = self.exec(code, *options)
        check(done.returncode == 0, f"exec failed ({done.returncode}): {done.stderr}\n{self.tail()}")
        return json.loads(done.stdout)

    def job(self, job_id):
        """The job's record, or None if the recorder does not answer."""
        done = self.command("status", job_id, timeout=30)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def wait_job_end(self, job_id, timeout=COMMAND_DEADLINE):
        def ended():
            record = self.job(job_id)
            return record if record and record.get("status") in TERMINAL else None
        return wait_for(ended, timeout=timeout, interval=0.2, what=f"job {job_id} to end")

    def child_pid(self, name, after=0):
        """The latest pid the supervisor logged for child `name` (other than `after`)."""
        pids = [int(pid) for pid in re.findall(rf"supervisor: {name} running as pid (\d+)", self.text())]
        pids = [pid for pid in pids if pid != after]
        return pids[-1] if pids else None

    def child_pids(self):
        return [int(pid) for pid in re.findall(r"supervisor: \S+ running as pid (\d+)", self.text())]

    def stop(self, sig=signal.SIGTERM):
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server did not stop within {STOP_DEADLINE}s:\n{self.tail()}") from None

    def close(self):
        """Always called: kill what is left, remove the files."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE)
        for pid in self.child_pids():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if postgres_pids(self.data_dir):
            subprocess.run([TAKO_BIN, "dev", "down", "--data-dir", self.data_dir],
                           capture_output=True, timeout=STOP_DEADLINE)
        self.log.close()
        #  Keep the log next to the other test logs for post-mortems.
        logs = os.path.join(TAKO_BUILD, "test-logs")
        os.makedirs(logs, exist_ok=True)
        shutil.copyfile(self.log_path, os.path.join(logs, os.path.basename(self.root) + ".log"))
        if os.environ.get("TAKO_KEEP_TEST_FILES") is None:
            shutil.rmtree(self.root, ignore_errors=True)
