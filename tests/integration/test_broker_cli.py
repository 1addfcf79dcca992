#!/usr/bin/env python3
"""`tako-vm broker` as a process: it binds what it is told and says so,
speaks ZMTP on every endpoint, comes back on the same ports after SIGKILL,
and exits 0 on SIGTERM and SIGINT. Bad arguments fail with a short message.

Peers re-registering with a restarted broker process is covered in C
(tests/unit/test_peer.c), since pyzmq is not available here."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
from taplib import test, run, check, wait_for  # noqa: E402

TAKO_BIN = os.environ["TAKO_BIN"]
DEADLINE = 15.0
ZMTP_SIGNATURE_SIZE = 10


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Broker:
    """A broker process whose stderr is collected in the background."""

    def __init__(self, ports):
        self.ports = ports
        args = [TAKO_BIN, "broker",
                "--bind", f"tcp://127.0.0.1:{ports[0]}",
                "--events-in", f"tcp://127.0.0.1:{ports[1]}",
                "--events-out", f"tcp://127.0.0.1:{ports[2]}",
                "--heartbeat", "100"]
        self.log_path = os.path.join(os.environ.get("TAKO_BUILD", "/tmp"), "test-logs",
                                     f"broker-cli-{os.getpid()}-{ports[0]}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.log = open(self.log_path, "w+b")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self.log)

    def text(self):
        with open(self.log_path, "rb") as log:
            return log.read().decode(errors="replace")

    def wait_ready(self):
        def announced():
            check(self.process.poll() is None, f"broker exited early: {self.text()}")
            return "event hub:" in self.text()
        wait_for(announced, timeout=DEADLINE, what="the broker to log its endpoints")

    def stop(self, sig):
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=DEADLINE)
        finally:
            self.close()

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)
        self.log.close()


def speaks_zmtp(port):
    """Connect and read the peer's ZMTP greeting signature: 0xff ... 0x7f."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as connection:
        connection.sendall(b"\xff" + b"\x00" * 8 + b"\x7f")
        greeting = b""
        while len(greeting) < ZMTP_SIGNATURE_SIZE:
            chunk = connection.recv(ZMTP_SIGNATURE_SIZE - len(greeting))
            if not chunk:
                break
            greeting += chunk
    return len(greeting) == ZMTP_SIGNATURE_SIZE and greeting[0] == 0xFF and greeting[9] == 0x7F


def start_broker():
    """Start on three free ports; retry if another test took one meanwhile."""
    deadline = time.monotonic() + DEADLINE
    while True:
        broker = Broker([free_port() for _ in range(3)])
        try:
            broker.wait_ready()
            return broker
        except AssertionError:
            broker.close()
            if time.monotonic() > deadline:
                raise


@test
def help_describes_the_options():
    result = subprocess.run([TAKO_BIN, "broker", "--help"], capture_output=True,
                            text=True, timeout=DEADLINE)
    check(result.returncode == 0, f"exit {result.returncode}")
    for option in ("--bind", "--events-in", "--events-out"):
        check(option in result.stdout, f"{option} missing from help")


@test
def bad_arguments_are_refused():
    for args, code in ((["--frobnicate"], 2), (["--bind"], 2),
                       (["--heartbeat", "0"], 2), (["--bind", "bogus://x"], 1)):
        result = subprocess.run([TAKO_BIN, "broker", *args], capture_output=True,
                                text=True, timeout=DEADLINE)
        check(result.returncode == code, f"{args}: exit {result.returncode}, wanted {code}")
        check("tako-vm broker:" in result.stderr, f"{args}: no message: {result.stderr!r}")
        check("/work" not in result.stderr and "/tmp" not in result.stderr,
              f"{args}: host path in message: {result.stderr!r}")


@test
def logs_what_it_bound_and_speaks_zmtp():
    broker = start_broker()
    try:
        text = broker.text()
        check(re.search(rf"service broker on tcp://127\.0\.0\.1:{broker.ports[0]}\b", text), text)
        check(f"publishers to tcp://127.0.0.1:{broker.ports[1]}" in text, text)
        check(f"subscribers to tcp://127.0.0.1:{broker.ports[2]}" in text, text)
        for port in broker.ports:
            check(speaks_zmtp(port), f"no ZMTP greeting on port {port}")
    finally:
        check(broker.stop(signal.SIGTERM) == 0, "SIGTERM did not exit 0")


@test
def comes_back_on_the_same_ports_after_sigkill():
    broker = start_broker()
    ports = broker.ports
    broker.process.kill()
    check(broker.process.wait(timeout=DEADLINE) == -signal.SIGKILL, "not killed")
    broker.close()
    again = Broker(ports)
    try:
        again.wait_ready()
        check(speaks_zmtp(ports[0]), "restarted broker does not answer")
    finally:
        check(again.stop(signal.SIGTERM) == 0, "SIGTERM did not exit 0")


@test
def sigint_exits_zero():
    broker = start_broker()
    code = broker.stop(signal.SIGINT)
    check(code == 0, f"SIGINT: exit {code}")
    check("stopping" in broker.text(), broker.text())


run()
