#!/usr/bin/env python3
"""Jobs run in their job type's environment, black-box through REST.

A real `tako-vm server` with self-made wheels (offline): POST
/job-types/{name}/build, env_ready, a job importing the built package,
per-request requirements (dep_install_ms), dependency_error, shared_code
importable and read-only, warm sandboxes of a type with requirements
(forked from its zygote, or exec'd when a preload lives only in the
environment),
production_mode refusing to build, and a rerun keeping its original's
job_ref after the job type changed."""
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
from taplib import test, run, check, wait_for  # noqa: E402
from lib_server import Server  # noqa: E402
from wheels import make_wheel  # noqa: E402

REQUEST_TIMEOUT = 300
SERVER = None


def request(server, method, path, body=None):
    """(status, parsed JSON body)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=REQUEST_TIMEOUT)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else None
    finally:
        connection.close()


def health(server):
    try:
        return request(server, "GET", "/health")[0] == 200
    except OSError:
        return False


def start(job_types, extra="", wheels_from=None):
    """A server whose config lists job_types (name → YAML lines)."""
    server = Server(extra_config="", start=False)
    wheels = wheels_from or os.path.join(server.root, "wheels")
    if not wheels_from:
        os.mkdir(wheels)
        os.chmod(wheels, 0o755)     # pip runs as nobody
        for version in ("1.0", "2.0"):
            make_wheel(wheels, "pkg", version, f"pkg-{version}")
        make_wheel(wheels, "extra", "1.0", "extra-1.0")
    server.wheels = wheels
    write_config(server, job_types, extra)
    server.start()
    server.wait_ready()
    wait_for(lambda: health(server), timeout=60, interval=0.1, what="the REST API")
    return server


def write_config(server, job_types, extra=""):
    with open(server.config) as config:
        lines = [line for line in config.read().splitlines()
                 if not line.startswith(("job_types:", " ", "pip_find_links:", "production_mode:"))]
    lines.append(f"pip_find_links: [{server.wheels}]")
    lines.extend(extra.splitlines())
    lines.append("job_types:")
    for name, body in job_types.items():
        lines.append(f"  - name: {name}")
        lines.extend(f"    {line}" for line in body)
    with open(server.config, "w") as config:
        config.write("\n".join(lines) + "\n")


def shared_dir(root):
    """A package directory and a module file for shared_code, world-readable."""
    base = os.path.join(root, "shared")
    os.makedirs(os.path.join(base, "mylib"))
    with open(os.path.join(base, "mylib", "__init__.py"), "w") as module:
        module.write("GREETING = 'hello from mylib'\n")
    with open(os.path.join(base, "helpers.py"), "w") as module:
        module.write("def twice(x):\n    return 2 * x\n")
    for path in (base, os.path.join(base, "mylib")):
        os.chmod(path, 0o755)
    return base


def server():
    global SERVER
    if SERVER is None:
        import tempfile
        base = shared_dir(tempfile.mkdtemp(prefix="shared-", dir=os.environ.get("TAKO_BUILD", "/tmp")))
        os.chmod(os.path.dirname(base), 0o755)
        SERVER = start({
            "data": ["requirements: [pkg==1.0]"],
            "tools": [f"shared_code: [{base}/mylib, {base}/helpers.py]"],
            "warmdata": ["requirements: [pkg==2.0]", "warm_pool: 1"],
            "warmpre": ["requirements: [pkg==1.0]", "warm_pool: 1", "preload: [pkg]"],
            "gpu": ["gpu: {enabled: true, vendor: nvidia, count: 1, device_ids: [\"0\"]}"],
        })
    return SERVER


def execute(srv, code, **fields):
    status, body = request(srv, "POST", "/execute", dict(code=code, **fields))
    check(status == 200, f"/execute answered {status}: {body}\n{srv.tail()}")
    return body


def full_result(srv, code, **fields):
    """Submit, wait, and return the view=full record."""
    status, body = request(srv, "POST", "/execute/async", dict(code=code, **fields))
    check(status == 200, f"/execute/async answered {status}: {body}")
    status, record = request(srv, "GET", f"/jobs/{body['job_id']}/result?wait=true&timeout=240&view=full")
    check(status == 200, f"result answered {status}: {record}")
    return record


@test
def build_through_rest_then_a_job_imports_the_package():
    srv = server()
    status, body = request(srv, "GET", "/job-types/data")
    check(status == 200 and body["env_ready"] is False and body["image_exists"] is False, body)
    status, built = request(srv, "POST", "/job-types/data/build?version_tag=v1")
    check(status == 200, f"build answered {status}: {built}\n{srv.tail()}")
    check(built["status"] == "built" and built["job_type"] == "data", built)
    check(built["version"] == "data@sha256:" + built["digest"][:12], built)
    check(built["image_ref"] == "envs/" + built["digest"], built)
    check(built["version_tag"] == "v1" and built["cached"] is False, built)
    status, body = request(srv, "GET", "/job-types/data")
    check(body["env_ready"] is True and body["job_ref"] == built["version"], body)
    record = full_result(srv, "import pkg, sys\nprint(pkg.VALUE)\nprint('/env' in sys.path)",
                         job_type="data")
    check(record["status"] == "succeeded", record)
    check(record["stdout"] == "pkg-1.0\nTrue\n", record["stdout"])
    check(record["job_ref"] == built["version"], record)
    check(record["timing"]["dep_install_ms"] == 0, record["timing"])
    # Cached rebuild: the same version at once.
    status, again = request(srv, "POST", "/job-types/data/build")
    check(status == 200 and again["cached"] is True and again["digest"] == built["digest"], again)
    print(f"# REST build {built['duration_ms']} ms, cached rebuild {again['duration_ms']} ms", flush=True)


@test
def build_refuses_unknown_types_and_bad_tags():
    srv = server()
    check(request(srv, "POST", "/job-types/nope/build")[0] == 404, "unknown type not 404")
    status, body = request(srv, "POST", "/job-types/data/build?version_tag=a%20b")
    check(status == 422 and "version_tag" in body["detail"], body)


@test
def the_environment_is_read_only():
    srv = server()
    # Writing into it, and remounting it writable (MS_REMOUNT|MS_BIND),
    # both fail; the package is unchanged for the next job.
    record = execute(srv, "import pkg, os, ctypes\n"
                          "try:\n    open(os.path.join(os.path.dirname(pkg.__file__), 'x'), 'w')\n"
                          "    print('wrote')\nexcept OSError as e:\n    print('refused', e.errno)\n"
                          "libc = ctypes.CDLL(None, use_errno=True)\n"
                          "rc = libc.mount(b'none', b'/env', None, 32 | 4096, None)\n"
                          "print('remount', rc, ctypes.get_errno() in (1, 13))",
                     job_type="data")
    check(record["success"], record)
    check(record["stdout"] == "refused 30\nremount -1 True\n", record["stdout"])
    again = execute(srv, "import os, pkg\nprint('x' in os.listdir(os.path.dirname(pkg.__file__)))",
                    job_type="data")
    check(again["stdout"] == "False\n", again["stdout"])


@test
def per_request_requirements_are_installed_and_cached():
    srv = server()
    first = full_result(srv, "import extra, pkg\nprint(extra.VALUE, pkg.VALUE)",
                        job_type="data", requirements=["extra==1.0"])
    check(first["status"] == "succeeded", f"{first}\n{srv.tail()}")
    check(first["stdout"] == "extra-1.0 pkg-1.0\n", first["stdout"])
    timing = first["timing"]
    check(timing["dep_install_ms"] > 0 and timing["startup_ms"] >= timing["dep_install_ms"], timing)
    check(first["job_ref"].startswith("data@sha256:"), first)
    second = full_result(srv, "import extra\nprint(extra.VALUE)", job_type="data",
                         requirements=["extra==1.0"])
    check(second["status"] == "succeeded" and second["timing"]["dep_install_ms"] == 0, second)
    check(second["job_ref"] == first["job_ref"], (first["job_ref"], second["job_ref"]))
    # Its own job_ref, not the type's.
    check(first["job_ref"] != request(srv, "GET", "/job-types/data")[1]["job_ref"], first)
    print(f"# per-request install {timing['dep_install_ms']} ms", flush=True)


@test
def a_missing_package_is_a_dependency_error():
    srv = server()
    record = full_result(srv, "print('never')", requirements=["doesnotexist==9.9"])
    check(record["status"] == "failed", record)
    check(record["error"]["type"] == "dependency_error" and record["error"]["phase"] == "startup",
          record["error"])
    check("doesnotexist" in record["error"]["message"], record["error"])
    check(record["stdout"] == "", record)
    check(srv.wheels not in json.dumps(record), "a host path leaked into the result")
    status, body = request(srv, "POST", "/execute", {"code": "print(1)",
                                                     "requirements": ["pkg; os_name=='nt'"]})
    check(status == 422, f"a marker was accepted: {status} {body}")


@test
def shared_code_is_importable_and_read_only():
    srv = server()
    record = execute(srv, "import mylib, helpers\nprint(mylib.GREETING, helpers.twice(21))\n"
                          "try:\n    open(mylib.__file__, 'a')\n    print('wrote')\n"
                          "except OSError as e:\n    print('refused', e.errno in (13, 30))\n"
                          "for line in open('/proc/self/mountinfo'):\n"
                          "    f = line.split()\n"
                          "    if f[4].startswith('/shared/'):\n"
                          "        print(f[4], f[5].split(',')[0])",
                     job_type="tools")
    check(record["success"], record)
    check(record["stdout"] == "hello from mylib 42\nrefused True\n"
                              "/shared/mylib ro\n/shared/helpers.py ro\n", record["stdout"])


@test
def a_warm_sandbox_has_its_types_environment():
    srv = server()
    wait_for(lambda: "warmpool: warmdata: 1 sandboxes ready" in srv.text(), timeout=240,
             interval=0.2, what="the warmdata pool to fill (after building its environment)")
    record = full_result(srv, "import pkg\nprint(pkg.VALUE)", job_type="warmdata")
    check(record["status"] == "succeeded" and record["stdout"] == "pkg-2.0\n", record)
    check(record["timing"].get("warm") is True, f"not warm: {record['timing']}")
    # Own requirements: not the warm sandbox's environment, so cold.
    record = full_result(srv, "import extra\nprint(extra.VALUE)", job_type="warmdata",
                         requirements=["extra==1.0"])
    check(record["status"] == "succeeded" and record["timing"].get("warm") is False, record)
    # Its interpreter is forked from the type's zygote, which found its
    # package under /env through the job's own PYTHONPATH.
    record = full_result(srv, "print(open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0])",
                         job_type="warmdata")
    check(record["stdout"] == "b'tako-init'\n", record["stdout"])


@test
def a_preload_only_the_environment_has_leaves_the_type_without_zygote():
    # The zygote starts on the host, where the environment is not: it
    # cannot import pkg, so the type's warm sandboxes start their own
    # interpreter, which preloads pkg from /env.
    srv = server()
    wait_for(lambda: "warmpool: warmpre: 1 sandboxes ready" in srv.text(), timeout=240,
             interval=0.2, what="the warmpre pool to fill")
    check("warmpre: sandboxes start their own interpreter (no zygote: a preload module did not import"
          in srv.text(), "the zygote's refusal was not logged")
    record = full_result(srv, "import sys\nprint('pkg' in sys.modules, sys.modules['pkg'].VALUE)",
                         job_type="warmpre")
    check(record["status"] == "succeeded" and record["stdout"] == "True pkg-1.0\n", record)
    check(record["timing"].get("warm") is True, f"not warm: {record['timing']}")


@test
def a_gpu_job_type_is_recorded_and_runs_without_devices_here():
    # This machine has no GPU: nothing to pass through, and the job runs.
    srv = server()
    status, body = request(srv, "GET", "/job-types/gpu")
    check(status == 200 and body["gpu"]["enabled"] is True and body["gpu"]["device_ids"] == ["0"], body)
    check(body["job_ref"] != request(srv, "GET", "/job-types/tools")[1]["job_ref"], body)
    record = execute(srv, "import os\nprint(sorted(n for n in os.listdir('/dev') if 'nvidia' in n))",
                     job_type="gpu")
    check(record["success"] and record["stdout"] == "[]\n", record)


@test
def production_mode_never_builds_for_a_job():
    srv = start({"prod": ["requirements: [pkg==1.0]"]}, extra="production_mode: true")
    try:
        record = full_result(srv, "import pkg", job_type="prod")
        check(record["status"] == "failed", record)
        check(record["error"]["type"] == "environment_not_built", record["error"])
        check("tako-vm build prod" in record["error"]["message"], record["error"])
        envs = os.path.join(srv.data_dir, "envs")
        check(not any(not n.startswith(".") for n in (os.listdir(envs) if os.path.isdir(envs) else [])),
              "production_mode built an environment for a job")
        # The operator builds it; then the job runs.
        status, built = request(srv, "POST", "/job-types/prod/build")
        check(status == 200, built)
        record = full_result(srv, "import pkg\nprint(pkg.VALUE)", job_type="prod")
        check(record["status"] == "succeeded" and record["stdout"] == "pkg-1.0\n", record)
        check(srv.stop() == 0, f"unclean stop:\n{srv.tail()}")
    finally:
        srv.close()


@test
def a_rerun_keeps_its_job_ref_after_the_type_changes():
    probe = "try:\n    import pkg\n    print(pkg.VALUE)\nexcept ImportError:\n    print('no pkg')"
    srv = start({"pinned": ["requirements: [pkg==1.0]"], "plain": ["timeout: 30"]})
    try:
        original = full_result(srv, "import pkg\nprint(pkg.VALUE)", job_type="pinned")
        check(original["stdout"] == "pkg-1.0\n", original)
        plain = full_result(srv, probe, job_type="plain")
        check(plain["stdout"] == "no pkg\n", plain)
        check(srv.stop() == 0, f"unclean stop:\n{srv.tail()}")
        write_config(srv, {"pinned": ["requirements: [pkg==2.0]"],
                           "plain": ["timeout: 30", "requirements: [pkg==2.0]"]})
        srv.start()
        srv.wait_ready()
        wait_for(lambda: health(srv), timeout=60, interval=0.1, what="the REST API")
        fresh = full_result(srv, "import pkg\nprint(pkg.VALUE)", job_type="pinned")
        check(fresh["stdout"] == "pkg-2.0\n" and fresh["job_ref"] != original["job_ref"], fresh)
        status, rerun = request(srv, "POST", f"/jobs/{original['execution_id']}/rerun")
        check(status == 200, rerun)
        status, record = request(srv, "GET", f"/jobs/{rerun['job_id']}/result?wait=true&timeout=240&view=full")
        check(record["status"] == "succeeded" and record["stdout"] == "pkg-1.0\n", record)
        check(record["job_ref"] == original["job_ref"], (record["job_ref"], original["job_ref"]))
        # A job whose type had no requirements keeps having none.
        status, rerun = request(srv, "POST", f"/jobs/{plain['execution_id']}/rerun")
        status, record = request(srv, "GET", f"/jobs/{rerun['job_id']}/result?wait=true&timeout=240&view=full")
        check(record["stdout"] == "no pkg\n" and record["job_ref"] == plain["job_ref"], record)
        fresh = full_result(srv, probe, job_type="plain")
        check(fresh["stdout"] == "pkg-2.0\n", fresh)
        check(srv.stop() == 0, f"unclean stop:\n{srv.tail()}")
    finally:
        srv.close()


@test
def the_server_stops_cleanly():
    srv = server()
    check(srv.stop() == 0, f"unclean stop (or a leak):\n{srv.tail()}")
    srv.close()


if __name__ == "__main__":
    run()
