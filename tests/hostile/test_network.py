#!/usr/bin/env python3
"""Hostile jobs that try the network: the host's loopback listeners (TCP,
UDP, abstract unix sockets), an outside address, interfaces, raw and
packet sockets. The sandbox has its own network namespace with only lo.
Traffic stays on 127.0.0.1 or in TEST-NET-1 (192.0.2.0/24, never routed)."""
import os
import socket
import sys
import secrets

sys.dont_write_bytecode = True  # keep tests/hostile free of __pycache__
sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import test, run, check  # noqa: E402
from lib_hostile import hostile, report_of, expect_status, require_sandbox  # noqa: E402

# TEST-NET-1 (RFC 5737): documentation only, no route anywhere.
TEST_NET_ADDR = "192.0.2.1"
# With no route, connect fails at once; anything slower means it tried.
UNREACHABLE_WITHIN = 1.0
ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ENOENT = 111, 101, 113, 2


def host_listener(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        s.listen(8)
    s.setblocking(False)
    return s


def nothing_arrived(sock, stream=True):
    try:
        if stream:
            conn, _ = sock.accept()
            conn.close()
        else:
            sock.recvfrom(65536)
    except BlockingIOError:
        return True
    return False


@test
def host_loopback_tcp_listener_unreachable():
    listener = host_listener()
    port = listener.getsockname()[1]
    try:
        result = hostile(f"""
s = socket.socket()
s.settimeout(2)
err = None
try:
    s.connect(("127.0.0.1", {port}))
    s.sendall(b"tako-probe escaped")
except OSError as e:
    err = e.errno
report({{"errno": err}})
""")
        rep = report_of(result)
        # Refused by the sandbox's own loopback (or unreachable if lo is down).
        check(rep["errno"] in (ECONNREFUSED, ENETUNREACH), f"host listener on 127.0.0.1:{port} reached: {rep}")
        check(nothing_arrived(listener), "the host listener accepted a connection from the job")
        expect_status(result, "succeeded")
    finally:
        listener.close()


@test
def host_loopback_udp_gets_nothing():
    receiver = host_listener(socket.SOCK_DGRAM)
    port = receiver.getsockname()[1]
    try:
        result = hostile(f"""
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = 0
for _ in range(20):
    try:
        sent += s.sendto(b"tako-probe escaped", ("127.0.0.1", {port}))
    except OSError:
        pass
report({{"sent": sent}})
""")
        report_of(result)
        check(nothing_arrived(receiver, stream=False), "a datagram from the job reached the host")
        expect_status(result, "succeeded")
    finally:
        receiver.close()


@test
def host_abstract_unix_socket_unreachable():
    # Abstract unix sockets belong to the network namespace.
    name = "tako-hostile-" + secrets.token_hex(6)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(4)
    listener.setblocking(False)
    try:
        result = hostile(f"""
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
err = oserror_of(lambda: s.connect("\\0" + {name!r}))
report({{"errno": err}})
""")
        rep = report_of(result)
        check(rep["errno"] == ECONNREFUSED, f"host abstract socket reachable: {rep}")
        check(nothing_arrived(listener), "the host abstract socket accepted a connection")
        expect_status(result, "succeeded")
    finally:
        listener.close()


@test
def outside_address_fails_fast():
    result = hostile(f"""
s = socket.socket()
s.settimeout(5)
start = time.monotonic()
err = oserror_of(lambda: s.connect(({TEST_NET_ADDR!r}, 80)))
report({{"errno": err, "seconds": time.monotonic() - start}})
""")
    rep = report_of(result)
    check(rep["errno"] in (ENETUNREACH, EHOSTUNREACH), f"expected ENETUNREACH: {rep}")
    check(rep["seconds"] < UNREACHABLE_WITHIN, f"connect took {rep['seconds']:.2f}s: a route exists? {rep}")
    expect_status(result, "succeeded")


@test
def dns_resolution_fails():
    result = hostile("""
try:
    socket.getaddrinfo("example.invalid", 80)
    err = None
except socket.gaierror as e:
    err = e.errno
report({"gai": err})
""")
    check(report_of(result)["gai"] is not None, "name resolution worked inside the sandbox")


@test
def only_loopback_interface():
    result = hostile("""
with open("/proc/net/dev") as f:
    lines = f.read().splitlines()[2:]
report({"if_nameindex": [n for _, n in socket.if_nameindex()],
        "proc_net_dev": [l.split(":")[0].strip() for l in lines]})
""")
    rep = report_of(result)
    check(rep["if_nameindex"] == ["lo"], f"interfaces other than lo: {rep}")
    check(rep["proc_net_dev"] == ["lo"], f"/proc/net/dev shows more than lo: {rep}")
    expect_status(result, "succeeded")


@test
def raw_and_packet_sockets_blocked():
    result = hostile("""
def try_socket(family, kind, proto):
    try:
        socket.socket(family, kind, proto).close()
        return None
    except OSError as e:
        return e.errno
ETH_P_ALL = 0x0003
report({
    "raw_icmp": try_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "raw_ip": try_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
    "packet": try_socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)),
})
""")
    rep = report_of(result)
    for name in ("raw_icmp", "raw_ip", "packet"):
        check(rep[name] in (1, 13, 97), f"{name} socket not refused: {rep}")
    expect_status(result, "succeeded")


@test
def loopback_inside_works_but_is_private():
    # The job's own loopback is usable (servers in tests are common); a port
    # it binds is not visible on the host.
    result = hostile("""
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port), timeout=2)
conn, _ = srv.accept()
c.sendall(b"ping")
report({"port": port, "echo": conn.recv(4).decode()})
""")
    rep = report_of(result)
    check(rep["echo"] == "ping", f"loopback inside the sandbox broken: {rep}")
    expect_status(result, "succeeded")


if __name__ == "__main__":
    require_sandbox()
    run()
