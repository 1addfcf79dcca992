#!/usr/bin/env python3
"""bench_http — the warm-start benchmarks (P1-P5) through the REST API.

Starts real servers (normal build, private PostgreSQL) and measures, each
against a baseline taken in the same run, interleaved where it matters:

  P1 warm:   POST /execute of print(1+1), warm pool on, p50 and p99
             / bare `python3 -c 'print(1+1)'` spawn p50      (goal <= 0.15)
  P2 cold:   the same with warm_pools_enabled: false / bare (goal <= 1.25)
  P3 throughput: jobs/s with 8 concurrent clients / bare spawns per
             second at parallelism 2                         (goal >= 2.0),
             with Python clients and again with wrk against xargs -P2
  P1 and P3 also without zygotes (TAKO_ZYGOTE=off), for comparison
  P4 orchestration: POST /execute p50 (warm) minus the in-process warm
             sandbox p50 (bench_sandbox)                     (goal <= 1 ms)
  P5 idle server RSS (threads, without PostgreSQL)           (goal <= 30 MB)

and, when wrk is installed, wrk on GET /health and POST /execute.
Informative only: nothing here passes or fails on timing.

    tests/bench/bench_http.py BUILD_DIR [N]
"""
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
N = int(sys.argv[2]) if len(sys.argv) > 2 else 30
os.environ["TAKO_BIN"] = os.path.join(BUILD, "tako-vm")
os.environ["TAKO_BUILD"] = os.path.join(BUILD, "bench")
os.environ.setdefault("TAKO_ROOT", ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests/lib"))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
sys.dont_write_bytecode = True
from taplib import wait_for  # noqa: E402
from lib_server import Server  # noqa: E402

BODY = json.dumps({"code": "print(1+1)"})


def bare_ms():
    started = time.perf_counter()
    subprocess.run(["/usr/bin/python3", "-c", "print(1+1)"], stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def execute_ms(self):
        started = time.perf_counter()
        self.connection.request("POST", "/execute", body=BODY,
                                headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        body = json.loads(response.read())
        took = (time.perf_counter() - started) * 1000
        if response.status != 200 or body.get("stdout") != "2\n":
            raise SystemExit(f"bench_http: bad answer {response.status} {body}")
        return took, body


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start(extra, env=None):
    server = Server(extra_config="max_queue_size: 10000\napi_rate_limit_enabled: false\n"
                                 "log_level: WARNING\n" + extra, env=env)
    server.wait_ready()
    wait_for(lambda: health(server.http_port), timeout=60, interval=0.1, what="REST API")
    return server


def health(port):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False


def latency(server, label, warm_expected):
    client = Client(server.http_port)
    for _ in range(3):
        client.execute_ms()
    timings, bare, warm_runs = [], [], 0
    for _ in range(N):
        took, body = client.execute_ms()
        timings.append(took)
        bare.append(bare_ms())
    b50 = statistics.median(bare)
    p50, p99 = statistics.median(timings), percentile(timings, 99)
    print(f"{label}: POST /execute n={N} p50={p50:7.2f} ms p99={p99:7.2f} ms | bare python "
          f"p50={b50:6.2f} ms | ratio p50 {p50 / b50:.2f}x p99 {p99 / b50:.2f}x", flush=True)
    return p50, b50


def throughput(server, seconds=8.0):
    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker():
        client = Client(server.http_port)
        while time.monotonic() < stop:
            client.execute_ms()
            with lock:
                done[0] += 1
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jobs = done[0] / seconds
    spawned = [0]
    stop = time.monotonic() + seconds

    def spawner():
        while time.monotonic() < stop:
            bare_ms()
            with lock:
                spawned[0] += 1
    threads = [threading.Thread(target=spawner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spawns = spawned[0] / seconds
    print(f"P3 throughput: {jobs:.1f} jobs/s with 8 clients | bare spawns {spawns:.1f}/s at "
          f"parallelism 2 | ratio {jobs / spawns:.2f}x", flush=True)
    return jobs, spawns


def bare_spawns_xargs(count=300):
    """Bare spawns per second at parallelism 2, spawned by xargs (a C
    program) rather than by this Python process."""
    started = time.perf_counter()
    subprocess.run(["xargs", "-P2", "-n1", "/usr/bin/python3", "-c"],
                   input="print(1+1)\n" * count, text=True, stdout=subprocess.DEVNULL, check=True)
    return count / (time.perf_counter() - started)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def in_process_warm_p50():
    """p50 of a warm run in process, its sandbox prepared the way the
    REST server's warm pool prepares them (by the job type's zygote)."""
    program = os.path.join(BUILD, "bench", "bench_sandbox")
    if not os.path.exists(program):
        return None
    done = subprocess.run([program, str(N)], capture_output=True, text=True, timeout=600)
    for line in done.stdout.splitlines():
        if line.startswith("warm zygote sandbox"):
            return float(line.split("p50=")[1].split()[0])
    return None


def wrk(server):
    if not shutil.which("wrk"):
        print("wrk: not installed (make bench installs it)")
        return
    url = f"http://127.0.0.1:{server.http_port}"
    done = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "--latency", url + "/health"],
                          capture_output=True, text=True, timeout=60)
    print("wrk GET /health (2 threads, 16 connections, 5 s):")
    print("\n".join("  " + l for l in done.stdout.splitlines() if "Req/Sec" in l or "Requests/sec" in l
                    or "50%" in l or "99%" in l))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.body = \'%s\'\n'
                     'wrk.headers["Content-Type"] = "application/json"\n' % BODY)
    try:
        done = subprocess.run(["wrk", "-t2", "-c8", "-d8s", "--latency", "-s", script.name,
                               url + "/execute"], capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(script.name)
    print("wrk POST /execute print(1+1) (2 threads, 8 connections, 8 s):")
    print("\n".join("  " + l for l in done.stdout.splitlines() if "Requests/sec" in l
                    or "50%" in l or "99%" in l or "Non-2xx" in l))
    #  P3 again with a client that costs little CPU (the Python clients
    #  above take a third of this two-core machine), against bare spawns
    #  made by a C program too.
    rate = [float(l.split()[1]) for l in done.stdout.splitlines() if l.startswith("Requests/sec")]
    if rate:
        spawns = bare_spawns_xargs()
        print(f"P3 throughput (wrk, 8 connections): {rate[0]:.1f} jobs/s | bare spawns (xargs -P2) "
              f"{spawns:.1f}/s | ratio {rate[0] / spawns:.2f}x", flush=True)


def main():
    print(f"== REST benchmarks: {os.cpu_count()} cores, load {open('/proc/loadavg').read().split()[0:3]}, n={N}")
    warm = start("job_types:\n  - name: default\n    warm_pool: 4\n")
    try:
        time.sleep(1)       # let the pool fill (not measured)
        idle = rss_mb(warm.process.pid)
        p50, b50 = latency(warm, "P1 warm", True)
        throughput(warm)
        wrk(warm)
    finally:
        warm.stop()
        warm.close()
    #  The same warm pool without zygotes: each prepared sandbox (and each
    #  job that finds none ready) starts its own interpreter.
    exec_pool = start("job_types:\n  - name: default\n    warm_pool: 4\n", env={"TAKO_ZYGOTE": "off"})
    try:
        time.sleep(1)
        latency(exec_pool, "P1 warm, no zygote", True)
        throughput(exec_pool)
        wrk(exec_pool)
    finally:
        exec_pool.stop()
        exec_pool.close()
    cold = start("warm_pools_enabled: false\n")
    try:
        latency(cold, "P2 cold", False)
        cold_idle = rss_mb(cold.process.pid)
    finally:
        cold.stop()
        cold.close()
    sandbox = in_process_warm_p50()
    if sandbox is not None:
        print(f"P4 orchestration: POST /execute warm p50 {p50:.2f} ms - in-process warm (zygote) sandbox p50 "
              f"{sandbox:.2f} ms = {p50 - sandbox:.2f} ms", flush=True)
    print(f"P5 idle server RSS (threads, no PostgreSQL): {idle:.1f} MB with a warm pool of 4 "
          f"(the pool's interpreters are separate processes), {cold_idle:.1f} MB without", flush=True)


main()
