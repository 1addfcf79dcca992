#!/usr/bin/env python3
"""Warm pools: with `warm_pool: N` a job type's sandboxes are prepared
before their jobs arrive (interpreter started, `preload` modules imported),
each runs exactly one job, and nothing passes from one job to the next:
random state, /tmp, processes, environment and module state all start
fresh. Also: warm_pools_enabled: false turns them off, and a preload
module that cannot be imported leaves the job type cold but working."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
from taplib import test, run, check, wait_for  # noqa: E402
from lib_server import Server  # noqa: E402

WARM = ("job_types:\n"
        "  - name: default\n"
        "    warm_pool: 2\n"
        "    preload: [json, random]\n")

#  Leaves traces everywhere a later job could see them, and reports what
#  it found of the traces of an earlier one.
PROBE = r"""
import json, os, random, subprocess, sys
seen = {
    "tmp_before": sorted(os.listdir("/tmp")),
    "env_marker": os.environ.get("TAKO_TEST_MARKER"),
    "module_marker": getattr(json, "tako_marker", None),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "random": random.random(),
    "preloaded": "random" in sys.modules and "json" in sys.modules,
}
open("/tmp/left-behind", "w").write("x")
os.environ["TAKO_TEST_MARKER"] = "set"
json.tako_marker = "set"
subprocess.Popen(["sleep", "30"], start_new_session=True)
print(json.dumps(seen))
"""


def warm_metrics(server):
    """(waiting sandboxes, their bytes) from /metrics once both are there."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    except OSError:
        return None
    finally:
        connection.close()
    values = dict(line.split(" ", 1) for line in text.splitlines()
                  if line.startswith(("tako_warm_sandboxes ", "tako_warm_memory_bytes ")))
    if int(values.get("tako_warm_sandboxes", "0")) < 2:
        return None
    return int(values["tako_warm_sandboxes"]), int(values["tako_warm_memory_bytes"])


def probe(server):
    record = server.exec_json(PROBE)
    check(record["status"] == "succeeded", f"probe failed: {record.get('stderr')}")
    return record, json.loads(record["stdout"])


@test
def warm_jobs_share_no_state():
    server = Server(extra_config=WARM)
    try:
        server.wait_ready()
        wait_for(lambda: "warmpool: default: 2 sandboxes ready" in server.text(), timeout=60,
                 interval=0.1, what="the warm pool to fill")
        #  The sandboxes' interpreters are forks of the job type's zygote.
        check("default: zygote" in server.text() and "sandboxes fork its interpreter" in server.text(),
              "the warm pool did not use a zygote")
        first, seen_first = probe(server)
        second, seen_second = probe(server)
        for record in (first, second):
            check(record["timing"].get("warm") is True, f"not a warm start: {record['timing']}")
            check(record["timing"]["startup_ms"] == 0, f"startup counted: {record['timing']}")
        for seen in (seen_first, seen_second):
            check(seen["preloaded"], "preload modules were not imported")
            check(seen["tmp_before"] == [], f"/tmp not empty: {seen['tmp_before']}")
            check(seen["env_marker"] is None, "environment leaked between jobs")
            check(seen["module_marker"] is None, "module state leaked between jobs")
        #  Fresh pid namespaces: the same small pids, and no survivor of
        #  the first job (its `sleep 30`) among the second's processes.
        check(len(seen_second["processes"]) <= 2,
              f"processes of another job are visible: {seen_second['processes']}")
        check(seen_first["random"] != seen_second["random"], "random state repeated")
        #  The pool refills, and its size and memory show in /metrics.
        wait_for(lambda: warm_metrics(server) is not None, timeout=30, interval=0.5,
                 what="/metrics to show the refilled warm pool")
        ready, memory = warm_metrics(server)
        check(ready == 2 and memory > 1024 * 1024, f"warm pool metrics {ready} {memory}")
    finally:
        server.close()


@test
def warm_pools_can_be_turned_off():
    server = Server(extra_config=WARM + "warm_pools_enabled: false\n")
    try:
        server.wait_ready()
        record, seen = probe(server)
        check(record["timing"].get("warm") is False, f"warm although disabled: {record['timing']}")
        check(record["timing"]["startup_ms"] > 0, "a cold start takes time")
    finally:
        server.close()


@test
def broken_preload_falls_back_to_cold():
    server = Server(extra_config="job_types:\n  - name: default\n    warm_pool: 1\n"
                                 "    preload: [no_such_module_anywhere]\n")
    try:
        server.wait_ready()
        record = server.exec_json("print(6 * 7)")
        check(record["status"] == "succeeded", f"job failed: {record}")
        check(record["stdout"] == "42\n", f"stdout {record['stdout']!r}")
        check(record["timing"].get("warm") is False, "a broken warm sandbox was used")
        wait_for(lambda: "cannot prepare a default sandbox" in server.text(), timeout=30,
                 interval=0.2, what="the warm pool to report the failed preload")
    finally:
        server.close()


#  Which interpreter ran the job: one exec'd for it has python's command
#  line; one forked from the zygote shows the sandbox's scrubbed pid-1
#  name (no exec happened after the reaper cleaned its argument memory).
ORIGIN = r"""
import json, sys, time
time.sleep(0.5)
print(open("/proc/self/cmdline", "rb").read().split(b"\0")[0].decode(), "json" in sys.modules)
"""


def concurrent(server, code, count):
    import threading
    records = [None] * count

    def one(index):
        records[index] = server.exec_json(code)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return records


@test
def jobs_that_find_no_sandbox_ready_fork_the_zygote():
    server = Server(extra_config="max_workers: 4\njob_types:\n  - name: default\n"
                                 "    warm_pool: 1\n    preload: [json]\n")
    try:
        server.wait_ready()
        wait_for(lambda: "warmpool: default: 1 sandboxes ready" in server.text(), timeout=60,
                 interval=0.1, what="the warm pool to fill")
        records = concurrent(server, ORIGIN, 4)
        for record in records:
            check(record and record["status"] == "succeeded", f"job failed: {record}")
            check(record["stdout"] == "tako-init True\n",
                  f"not a fork of the zygote: {record['stdout']!r}")
        cold = [r for r in records if not r["timing"]["warm"]]
        check(cold, "all four jobs found a warm sandbox; the pool holds one")
        for record in cold:
            #  A fork, but the job waited for its sandbox: counted.
            check(record["timing"]["startup_ms"] >= 0 and record["timing"]["total_ms"] >= 500,
                  f"timing {record['timing']}")
    finally:
        server.close()


@test
def a_zygote_that_dies_is_replaced():
    import re
    import signal
    server = Server(extra_config=WARM)
    try:
        server.wait_ready()

        def zygotes():
            return [int(p) for p in re.findall(r"default: zygote (\d+) started", server.text())]
        first = wait_for(lambda: zygotes(), timeout=60, interval=0.1, what="the zygote")[0]
        #  A full pool first: a sandbox being prepared when the zygote dies
        #  starts its own interpreter (that once), which is not this test.
        wait_for(lambda: "warmpool: default: 2 sandboxes ready" in server.text(), timeout=60,
                 interval=0.1, what="the warm pool to fill")
        os.kill(first, signal.SIGKILL)
        #  Replaced without waiting for a job to need it.
        wait_for(lambda: len(zygotes()) > 1, timeout=30, interval=0.1, what="a new zygote")
        check(zygotes()[-1] != first, "the same zygote reported twice")
        records = concurrent(server, ORIGIN, 3)
        for record in records:
            check(record and record["status"] == "succeeded", f"job failed: {record}")
            check(record["stdout"] == "tako-init True\n", f"not forked: {record['stdout']!r}")
    finally:
        server.close()


@test
def zygotes_can_be_turned_off():
    server = Server(extra_config=WARM, env={"TAKO_ZYGOTE": "off"})
    try:
        server.wait_ready()
        wait_for(lambda: "warmpool: default: 2 sandboxes ready" in server.text(), timeout=60,
                 interval=0.1, what="the warm pool to fill")
        record = server.exec_json(ORIGIN)
        check(record["status"] == "succeeded", f"job failed: {record}")
        check(record["timing"]["warm"] is True, f"not warm: {record['timing']}")
        check(record["stdout"] == "/usr/bin/python3 True\n", f"stdout {record['stdout']!r}")
        check("zygote" not in server.text(), "a zygote started although turned off")
    finally:
        server.close()


run()
