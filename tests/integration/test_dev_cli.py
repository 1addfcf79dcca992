#!/usr/bin/env python3
"""tako-vm dev up|down|status, black-box.

One private cluster in a fresh directory under the build directory; the
tests run in order against it and the last one (and an atexit hook, in
case of failure) stops it and removes the directory."""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
from taplib import test, run, check, wait_for  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
from lib_server import socket_inodes  # noqa: E402

TAKO = os.environ["TAKO_BIN"]
DATA_DIR = os.path.join(os.environ["TAKO_BUILD"], f"test-dev-cli-{os.getpid()}")
COMMAND_TIMEOUT = 120
EXIT_STOPPED = 3
LISTEN_STATE = "0A"


def tako(*args):
    """Run tako-vm; returns (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    done = subprocess.run([TAKO, *args], env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def dev(action, *extra):
    return tako("dev", action, "--data-dir", DATA_DIR, *extra)


def socket_dir(url):
    query = urllib.parse.urlparse(url).query
    return urllib.parse.parse_qs(query)["host"][0]


def postmaster_pid():
    """The pid in postmaster.pid, or 0."""
    try:
        with open(os.path.join(DATA_DIR, "pg", "data", "postmaster.pid")) as file:
            return int(file.readline())
    except (OSError, ValueError):
        return 0


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def tcp_listener_inodes():
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as file:
                next(file)
                for line in file:
                    fields = line.split()
                    if fields[3] == LISTEN_STATE:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def cleanup():
    dev("down")
    shutil.rmtree(DATA_DIR, ignore_errors=True)


atexit.register(cleanup)
state = {}


@test
def up_prints_only_the_url():
    # Two at once on a fresh directory: the lock lets one initialise and
    # start; the other finds it running. Both print the same URL.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    racers = [subprocess.Popen([TAKO, "dev", "up", "--data-dir", DATA_DIR], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = [p.communicate(timeout=COMMAND_TIMEOUT) for p in racers]
    results = [(p.returncode, *output) for p, output in zip(racers, outputs)]
    (rc, out, err), (rc2, out2, err2) = results
    check(rc == 0 and rc2 == 0, f"dev up exits {rc}, {rc2}: {err} {err2}")
    check(out == out2, f"different output: {out!r} vs {out2!r}")
    lines = out.splitlines()
    check(len(lines) == 1, f"expected one line on stdout, got {out!r}")
    url = lines[0]
    check(url.startswith("postgresql:///tako_vm?"), f"unexpected URL {url!r}")
    check(socket_dir(url).startswith("/"), f"no socket directory in {url!r}")
    state["url"] = url
    state["pid"] = postmaster_pid()
    check(state["pid"] > 0, "no postmaster.pid after dev up")


@test
def status_says_running_with_the_url():
    rc, out, err = dev("status")
    check(rc == 0, f"status exit {rc}: {err}")
    check(out.strip() == f"running {state['url']}", f"unexpected status {out!r}")


@test
def server_accepts_connections_on_its_socket():
    directory = socket_dir(state["url"])
    path = os.path.join(directory, ".s.PGSQL.5432")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
    pg_isready = shutil.which("pg_isready")
    if pg_isready:
        done = subprocess.run([pg_isready, "-h", directory, "-p", "5432", "-d", "tako_vm",
                               "-U", "tako"], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        check(done.returncode == 0, f"pg_isready: {done.stdout} {done.stderr}")


@test
def socket_directory_is_private():
    mode = os.stat(socket_dir(state["url"])).st_mode
    check(mode & 0o077 == 0, f"socket directory mode {oct(mode)}")


@test
def no_tcp_port_is_opened():
    pid = state["pid"]
    inodes = set()
    for process in [pid, *children_of(pid)]:
        inodes |= socket_inodes(process)
    check(inodes, "found no sockets of the server at all")
    listening = inodes & tcp_listener_inodes()
    check(not listening, f"the server listens on TCP: inodes {listening}")


@test
def up_again_is_idempotent():
    rc, out, err = dev("up")
    check(rc == 0, f"second dev up exit {rc}: {err}")
    check(out.strip() == state["url"], f"URL changed: {out!r}")
    check(postmaster_pid() == state["pid"], "the server was restarted")


@test
def up_after_sigkill_recovers():
    os.kill(state["pid"], signal.SIGKILL)
    wait_for(lambda: dev("status")[0] == EXIT_STOPPED, timeout=30,
             what="status to report the killed server as stopped")
    rc, out, err = dev("up")
    check(rc == 0, f"dev up after SIGKILL exit {rc}: {err}")
    check(out.strip() == state["url"], f"URL changed: {out!r}")
    state["pid"] = postmaster_pid()
    check(state["pid"] > 0, "no new postmaster")
    check(dev("status")[0] == 0, "not running after restart")


@test
def down_stops_and_status_exits_3():
    rc, out, err = dev("down")
    check(rc == 0, f"dev down exit {rc}: {err}")
    check(out.strip() == "stopped", f"unexpected output {out!r}")
    rc, out, _ = dev("status")
    check(rc == EXIT_STOPPED, f"status exit {rc}, expected {EXIT_STOPPED}")
    check(out.startswith("stopped "), f"unexpected status {out!r}")
    check(not os.path.exists(os.path.join(socket_dir(state["url"]), ".s.PGSQL.5432")),
          "the socket is still there")
    rc, out, _ = dev("down")
    check(rc == 0 and out.strip() == "stopped", "second down should succeed quietly")


@test
def usage_errors_exit_2():
    rc, _, err = tako("dev")
    check(rc == 2 and "up, down or status" in err, f"exit {rc}: {err}")
    rc, _, err = tako("dev", "sideways", "--data-dir", DATA_DIR)
    check(rc == 2 and "sideways" in err, f"exit {rc}: {err}")
    rc, out, _ = tako("dev", "--help")
    check(rc == 0 and "status" in out, f"help exit {rc}: {out}")


run()
