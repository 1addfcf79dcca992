#!/usr/bin/env python3
"""The REST API, black-box: a real `tako-vm server` (private PostgreSQL,
real sandboxes) driven over real HTTP with the standard library. Every
endpoint of docs/rest.md, its shapes and codes; the bad-input matrix
(never a 5xx, never a hang); API keys; the rate limit; 50 parallel sync
executes."""
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
from taplib import test, run, check, wait_for  # noqa: E402
from lib_server import Server  # noqa: E402

REQUEST_TIMEOUT = 60
TERMINAL = {"succeeded", "failed", "timeout", "oom", "cancelled"}
SERVER = None


def server():
    global SERVER
    if SERVER is None:
        SERVER = Server(extra_config="max_queue_size: 500\napi_rate_limit_requests: 100000\n")
        SERVER.wait_ready()
        wait_for(lambda: probe_health(SERVER.http_port), timeout=60, interval=0.1,
                 what="the REST API to answer")
    return SERVER


def probe_health(port):
    try:
        return request("GET", "/health", port=port)[0] == 200
    except OSError:
        return False


def request(method, path, body=None, headers=None, port=None, raw=False, timeout=REQUEST_TIMEOUT):
    """(status, headers dict with lower-case names, body: parsed JSON or bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port or server().http_port, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
        got = {name.lower(): value for name, value in response.getheaders()}
        if not raw and got.get("content-type", "").startswith("application/json") and payload:
            payload = json.loads(payload)
        return response.status, got, payload
    finally:
        connection.close()


def execute(code, **fields):
    status, _, body = request("POST", "/execute", dict(code=code, **fields))
    check(status == 200, f"/execute answered {status}: {body}")
    return body


def submit(code, **fields):
    status, _, body = request("POST", "/execute/async", dict(code=code, **fields))
    check(status == 200 and body.get("job_id"), f"/execute/async answered {status}: {body}")
    return body["job_id"]


def result(job_id, full=False, wait=True):
    query = f"?wait={'true' if wait else 'false'}&timeout=60" + ("&view=full" if full else "")
    status, _, body = request("GET", f"/jobs/{job_id}/result{query}")
    check(status == 200, f"result answered {status}: {body}")
    return body


@test
def sync_execute_shape_and_outcomes():
    body = execute("print(1+1)")
    for field in ("success", "output", "stdout", "stderr", "exit_code", "execution_time", "error", "job_type"):
        check(field in body, f"{field} missing from {body}")
    check(body["success"] is True and body["stdout"] == "2\n" and body["exit_code"] == 0, body)
    check(isinstance(body["execution_time"], float) and body["job_type"] == "default", body)
    failed = execute("raise ValueError('boom')")
    check(failed["success"] is False and failed["error"]["type"] == "value_error", failed)
    output = execute("import json\njson.dump({'a': [1, 2]}, open('/output/result.json', 'w'))",
                     input_data={"x": 1})
    check(output["output"] == {"a": [1, 2]}, output)
    slow = execute("import time\ntime.sleep(5)", timeout=1)
    check(slow["success"] is False and slow["error"]["type"] in ("timeout", "execution_timeout"), slow)


@test
def async_result_views_and_waits():
    job_id = submit("print('async')")
    body = result(job_id, full=True)
    check(body["status"] == "succeeded" and body["stdout"] == "async\n", body)
    for field in ("execution_id", "job_type", "created_at", "started_at", "ended_at", "duration_ms",
                  "timing", "job_ref", "artifacts", "input_artifacts", "resource_usage", "code_hash",
                  "input_hash", "parent_execution_id", "relationship", "stdout_truncated",
                  "stderr_truncated", "idempotency_key"):
        check(field in body, f"view=full lacks {field}")
    check(body["code_hash"] == hashlib.sha256(b"print('async')").hexdigest(), body["code_hash"])
    check(re.fullmatch(r"default@sha256:[0-9a-f]{12}", body["job_ref"] or ""), body["job_ref"])
    basic = result(job_id)
    check("input_artifacts" not in basic and basic["stdout"] == "async\n", basic)
    status, _, job = request("GET", f"/jobs/{job_id}")
    check(status == 200 and job["job_id"] == job_id and job["status"] == "succeeded", job)
    check("created_at" in job and "started_at" in job, job)
    sleeper = submit("import time\ntime.sleep(4)")
    status, _, progress = request("GET", f"/jobs/{sleeper}/result")
    check(status == 200 and progress["message"] == "Job still in progress", progress)
    check(progress["status"] in ("queued", "running") and "queue_position" in progress, progress)
    started = time.monotonic()
    status, _, late = request("GET", f"/jobs/{sleeper}/result?wait=true&timeout=1")
    check(status == 408 and "detail" in late, (status, late))
    check(time.monotonic() - started < 10, "the wait overran its timeout")
    check(result(sleeper)["status"] == "succeeded", "the sleeper did not finish")


@test
def idempotency_key_same_and_different_payload():
    key = f"rest-{os.getpid()}-{time.time()}"
    first = submit("print(7)", idempotency_key=key)
    again = submit("print(7)", idempotency_key=key)
    check(first == again, f"same key and payload made two jobs: {first} {again}")
    status, _, body = request("POST", "/execute/async", {"code": "print(8)", "idempotency_key": key})
    check(status == 409 and body.get("existing_job_id") == first, (status, body))


@test
def cancel_rerun_fork_lineage():
    sleeper = submit("import time\ntime.sleep(30)")
    wait_for(lambda: request("GET", f"/jobs/{sleeper}")[2]["status"] == "running", timeout=60,
             interval=0.1, what="the job to run")
    status, _, body = request("POST", f"/jobs/{sleeper}/cancel")
    check(status == 200 and body == {"status": "cancelled", "job_id": sleeper}, (status, body))
    check(result(sleeper)["status"] == "cancelled", "not recorded as cancelled")
    status, _, body = request("POST", f"/jobs/{sleeper}/cancel")
    check(status in (400, 409), f"cancelling a finished job answered {status}")
    check(request("POST", "/jobs/no-such-job/cancel")[0] == 404, "unknown job cancel")

    original = submit("import json\nprint(json.load(open('/input/data.json'))['n'])", input_data={"n": 5})
    check(result(original)["stdout"] == "5\n", "original")
    status, _, rerun = request("POST", f"/jobs/{original}/rerun")
    check(status == 200 and rerun["status"] == "queued" and rerun["job_id"] != original, rerun)
    body = result(rerun["job_id"], full=True)
    check(body["stdout"] == "5\n" and body["parent_execution_id"] == original
          and body["relationship"] == "rerun", body)
    status, _, fork = request("POST", f"/jobs/{original}/fork",
                              {"code": "import json\nprint(json.load(open('/input/data.json'))['n'] * 2)"})
    check(status == 200 and fork["job_id"], fork)
    body = result(fork["job_id"], full=True)
    check(body["stdout"] == "10\n" and body["relationship"] == "fork", body)
    check(request("POST", f"/jobs/{original}/fork", {})[0] == 422, "fork without code")
    check(request("POST", "/jobs/no-such-job/rerun")[0] == 404, "unknown rerun")


@test
def artifacts_headers_etag_and_names():
    job_id = submit("open('/output/data.csv', 'w').write('a,b\\n1,2\\n')")
    check(result(job_id)["status"] == "succeeded", "artifact job failed")
    status, headers, body = request("GET", f"/jobs/{job_id}/artifacts/data.csv", raw=True)
    check(status == 200 and body == b"a,b\n1,2\n", (status, body))
    digest = hashlib.sha256(body).hexdigest()
    check(headers["etag"] == f'"{digest}"', headers)
    check(headers["content-length"] == str(len(body)), headers)
    check(headers["content-disposition"] == 'attachment; filename="data.csv"', headers)
    check(headers["content-type"].startswith("text/csv"), headers)
    status, headers, body = request("HEAD", f"/jobs/{job_id}/artifacts/data.csv", raw=True)
    check(status == 200 and body == b"" and headers["content-length"] == "8", (status, headers))
    status, _, body = request("GET", f"/jobs/{job_id}/artifacts/data.csv",
                              headers={"If-None-Match": f'"{digest}"'}, raw=True)
    check(status == 304 and body == b"", f"If-None-Match answered {status}")
    status, _, code = request("GET", f"/jobs/{job_id}/artifacts/_code.py", raw=True)
    check(status == 200 and b"/output/data.csv" in code, "input artifact _code.py")
    for name in ("missing.txt", "..", "%2e%2e", "a%2Fb", "..%2F..%2Fetc%2Fpasswd", "%00", "x%00y"):
        status, _, body = request("GET", f"/jobs/{job_id}/artifacts/{name}")
        check(status in (400, 404), f"artifact {name!r} answered {status}")
    # A %00 does not cut the name short: "data.csv%00" is not "data.csv".
    status, _, body = request("GET", f"/jobs/{job_id}/artifacts/data.csv%00")
    check(status == 404, f"data.csv%00 answered {status}")
    check(request("GET", "/jobs/no-such-job/artifacts/a.txt")[0] == 404, "unknown job artifact")


@test
def job_types_and_build():
    status, _, types = request("GET", "/job-types")
    check(status == 200 and any(t["name"] == "default" for t in types), types)
    default = next(t for t in types if t["name"] == "default")
    check(default["env_ready"] is True and default["image_exists"] is True, default)
    status, _, one = request("GET", "/job-types/default")
    check(status == 200 and one["name"] == "default" and "memory_limit" in one, one)
    check(request("GET", "/job-types/nope")[0] == 404, "unknown job type")
    check(request("POST", "/job-types/nope/build")[0] == 404, "unknown job type build")
    status, _, body = request("POST", "/job-types/default/build")
    check(status == 200 and body["status"] == "built" and body["version"] == default["job_ref"],
          (status, body))


@test
def health_pool_executions_dlq():
    status, _, health = request("GET", "/health")
    check(status == 200 and health["status"] in ("healthy", "degraded"), health)
    for field in ("sandbox_available", "gvisor_available", "circuit_breaker", "version",
                  "production_mode", "queue_stats"):
        check(field in health, f"/health lacks {field}")
    check(health["circuit_breaker"]["state"] in ("closed", "open", "half_open"), health)
    status, _, pool = request("GET", "/pool/stats")
    check(status == 200 and set(pool) >= {"pending", "running", "max_workers", "max_queue_size"}, pool)
    job_id = submit("print('listed')")
    result(job_id)
    status, _, page = request("GET", "/executions?limit=1&status=succeeded")
    check(status == 200 and len(page["items"]) == 1 and page["limit"] == 1, page)
    check(set(page) >= {"items", "limit", "offset", "has_more", "count"}, page)
    check(page["items"][0]["status"] == "succeeded", page)
    for bad in ("limit=0", "limit=1001", "limit=x", "offset=-1", "status=bogus", "view=weird"):
        check(request("GET", f"/executions?{bad}")[0] == 422, f"/executions?{bad} not 422")
    status, _, one = request("GET", f"/executions/{job_id}?view=full")
    check(status == 200 and one["execution_id"] == job_id and "code_hash" in one, one)
    check(request("GET", "/executions/nope")[0] == 404, "unknown execution")
    status, _, stats = request("GET", "/dlq/stats")
    check(status == 200 and "total" in stats and "by_error_type" in stats, stats)
    status, _, dlq = request("GET", "/dlq?limit=5")
    check(status == 200 and "items" in dlq and dlq["limit"] == 5, dlq)
    check(request("DELETE", "/dlq/00000000-0000-0000-0000-000000000000")[0] == 404, "unknown dead letter")


@test
def metrics_and_openapi_match_the_routes():
    status, headers, text = request("GET", "/metrics", raw=True)
    text = text.decode()
    check(status == 200 and headers["content-type"].startswith("text/plain"), headers)
    for name in ("tako_http_requests_total", "tako_http_request_duration_ms_bucket",
                 "tako_queue_depth", "tako_jobs_running", "tako_jobs_submitted_total",
                 'tako_jobs{status="succeeded",job_type="default"}', "tako_infrastructure_failures_total",
                 "tako_warm_sandboxes"):
        check(name in text, f"/metrics lacks {name}")
    status, _, document = request("GET", "/openapi.json")
    check(status == 200 and document["openapi"].startswith("3."), document.get("openapi"))
    listed = set()
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "zz-no-such-id", path)
        for method in operations:
            listed.add((method.upper(), path))
            status = request(method.upper(), concrete, body="{}" if method != "get" else None)[0]
            check(status not in (405, 501),
                  f"{method.upper()} {path} is listed but answered {status}")
            check(status != 404 or "{" in path, f"{method.upper()} {path} is listed but 404")
    for method, path in (("GET", "/nope"), ("POST", "/health"), ("GET", "/execute")):
        check(request(method, path)[0] in (404, 405), f"{method} {path} is not a route")
    expected = {("POST", "/execute"), ("POST", "/execute/async"), ("GET", "/jobs/{job_id}"),
                ("GET", "/jobs/{job_id}/result"), ("POST", "/jobs/{job_id}/cancel"),
                ("POST", "/jobs/{job_id}/rerun"), ("POST", "/jobs/{job_id}/fork"),
                ("GET", "/jobs/{job_id}/artifacts/{name}"), ("HEAD", "/jobs/{job_id}/artifacts/{name}"),
                ("GET", "/job-types"), ("GET", "/job-types/{name}"), ("POST", "/job-types/{name}/build"),
                ("GET", "/health"), ("GET", "/pool/stats"), ("GET", "/executions"),
                ("GET", "/executions/{execution_id}"), ("GET", "/dlq/stats"), ("GET", "/dlq"),
                ("DELETE", "/dlq/{entry_id}"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                ("GET", "/jobs/{job_id}/events")}
    check(listed == expected, f"openapi differs: extra {listed - expected}, missing {expected - listed}")


@test
def server_sent_events_follow_a_job_to_its_end():
    job_id = submit("import time\nprint('tick')\ntime.sleep(1)\nprint('tock')\ntime.sleep(1)")
    connection = http.client.HTTPConnection("127.0.0.1", server().http_port, timeout=60)
    connection.request("GET", f"/jobs/{job_id}/events")
    response = connection.getresponse()
    check(response.status == 200 and response.getheader("Content-Type") == "text/event-stream",
          response.status)
    stream = response.read().decode()       # ends when the job ends
    connection.close()
    events = [block for block in stream.split("\n\n") if block.startswith("event:")]
    check(events and events[-1].startswith("event: result"), f"no final result: {stream[-500:]}")
    final = json.loads(events[-1].split("data: ", 1)[1])
    check(final["status"] == "succeeded" and final["stdout"] == "tick\ntock\n", final)
    #  Output comes while the job runs, before its result.
    streamed = "".join(json.loads(block.split("data: ", 1)[1])["text"]
                       for block in events if block.startswith("event: output"))
    check("tock" in streamed, f"no output streamed before the result: {stream[:800]}")
    kinds = [json.loads(block.split("data: ", 1)[1]).get("kind") for block in events
             if block.startswith("event: status")]
    check("started" in kinds or "finished" in kinds, f"no status transitions: {kinds}")
    check(request("GET", "/jobs/no-such-job/events", raw=True)[2].startswith(b"event: error"),
          "unknown job stream")


@test
def headers_on_every_response():
    for method, path in (("GET", "/health"), ("GET", "/nope"), ("POST", "/execute")):
        status, headers, _ = request(method, path, body="{" if method == "POST" else None)
        check(headers.get("x-content-type-options") == "nosniff", (path, headers))
        check(headers.get("x-frame-options") == "DENY", (path, headers))
        check(re.fullmatch(r"[0-9a-f-]{36}", headers.get("x-correlation-id", "")), (path, headers))
    _, headers, _ = request("GET", "/health", headers={"X-Correlation-ID": "trace-42.a_b"})
    check(headers["x-correlation-id"] == "trace-42.a_b", headers)
    _, headers, _ = request("GET", "/health", headers={"X-Correlation-ID": "<script>"})
    check(headers["x-correlation-id"] != "<script>", "an unsafe correlation id was echoed")


BAD_BODIES = [
    b"", b"{", b"[]", b"null", b"42", b'"code"', b"{\"code\": }", b"\xff\xfe", b"{\"code\": \"x\"} trailing",
    json.dumps({"code": 5}).encode(), json.dumps({"code": ""}).encode(),
    json.dumps({"code": "x", "bogus": 1}).encode(), json.dumps({"code": "x", "timeout": "5"}).encode(),
    json.dumps({"code": "x", "timeout": -1}).encode(), json.dumps({"code": "x", "timeout": 10 ** 12}).encode(),
    json.dumps({"code": "x", "startup_timeout": 5}).encode(), json.dumps({"code": "x", "input_data": [1]}).encode(),
    json.dumps({"code": "x", "job_type": "nope"}).encode(), json.dumps({"code": "x", "job_type": 3}).encode(),
    json.dumps({"code": "x", "requirements": "six"}).encode(),
    json.dumps({"code": "x", "requirements": ["--index-url http://evil"]}).encode(),
    json.dumps({"code": "x" * 200000}).encode(), json.dumps({"code": "x", "idempotency_key": "a" * 300}).encode(),
]


@test
def bad_input_matrix_never_5xx_never_hangs():
    for path in ("/execute", "/execute/async", "/jobs/x/fork"):
        for body in BAD_BODIES:
            status, _, answer = request("POST", path, body=body, timeout=30)
            check(400 <= status < 500, f"POST {path} {body[:60]!r} answered {status}: {answer}")
            check(isinstance(answer, dict) and "detail" in answer, f"no detail: {answer}")
    for body in (b"null", b"42", b'"code"', b"[1]"):
        status, _, answer = request("POST", "/execute", body=body)
        check(status == 422, f"valid JSON of the wrong shape {body!r} answered {status}")
    status, _, answer = request("POST", "/execute", body=b"{\n\"code\": ,\n}")
    check(status == 400 and "line 2" in answer["detail"], answer)
    weird_paths = ["/jobs/" + "a" * 500, "/jobs/%00", "/jobs/..%2F..", "/jobs/a.b/result",
                   "/jobs/x/result?wait=maybe", "/jobs/x/result?timeout=0", "/jobs/x/result?timeout=99999",
                   "/executions/" + "%ff" * 10, "/dlq?limit=-5", "/job-types/" + "z" * 300,
                   "/jobs/x/artifacts/" + "n" * 300]
    for path in weird_paths:
        status, _, answer = request("GET", path, timeout=30)
        check(400 <= status < 500, f"GET {path[:60]} answered {status}")
    #  A CR/LF decoded from the path must not forge a log line.
    request("GET", "/nope%0d%0aFORGED-LINE%20INFO%20x")
    check("\nFORGED-LINE" not in server().text(), "a path forged a log line")
    texts = json.dumps([request("POST", "/execute", body=b)[2] for b in BAD_BODIES[:12]])
    for leak in ("/var/lib", "/work/", "/tmp/", "tcp://", "/root"):
        check(leak not in texts, f"a message leaks {leak}: {texts[:300]}")


@test
def oversize_bodies_are_413():
    limit = 1024                    # the smallest allowed: request and body in one write
    srv = Server(extra_config=f"api_max_payload_bytes: {limit}\n")
    try:
        srv.wait_ready()
        wait_for(lambda: probe_health(srv.http_port), timeout=60, interval=0.1, what="REST API")
        #  A body over the limit, sent whole in one write (a client still
        #  writing a large body when the 413 comes would race the close).
        big = b'{"code": "' + b"x" * (limit + 10) + b'"}'
        with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as raw:
            raw.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(big), big))
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                piece = raw.recv(4096)
                if not piece:
                    break
                answer += piece
        check(answer.startswith(b"HTTP/1.1 413") and b'"detail"' in answer, answer[:300])
        #  Announced too large, body never sent: answered at once.
        with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as raw:
            raw.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 50000000\r\n\r\n")
            check(raw.recv(64).startswith(b"HTTP/1.1 413"), "no immediate 413 for an announced giant body")
        connection = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
        connection.putrequest("POST", "/execute")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        try:
            for _ in range(20):
                chunk = b"x" * 100000
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.send(b"0\r\n\r\n")
            response = connection.getresponse()
            check(response.status == 413, f"chunked oversize answered {response.status}")
        except (BrokenPipeError, ConnectionResetError):
            pass                        # refused before the whole body: also fine
        finally:
            connection.close()
    finally:
        srv.close()


@test
def api_keys_guard_everything_but_health():
    key_hash = hashlib.sha256(b"secret").hexdigest()
    srv = Server(extra_config=f'api_keys: ["sha256:{key_hash}"]\n')
    try:
        srv.wait_ready()
        wait_for(lambda: probe_health(srv.http_port), timeout=60, interval=0.1, what="REST API")
        port = srv.http_port
        check(request("GET", "/pool/stats", port=port)[0] == 401, "no key")
        check(request("GET", "/pool/stats", port=port, headers={"Authorization": "Bearer wrong"})[0] == 401,
              "wrong key")
        check(request("GET", "/pool/stats", port=port, headers={"Authorization": "Bearer secret"})[0] == 200,
              "bearer key")
        check(request("GET", "/pool/stats", port=port, headers={"X-API-Key": "secret"})[0] == 200, "x-api-key")
        check(request("POST", "/execute", {"code": "print(1)"}, port=port)[0] == 401, "execute without key")
        check(request("GET", "/health", port=port)[0] == 200, "/health must stay open")
        check(request("GET", "/metrics", port=port, raw=True)[0] == 401, "/metrics without key")
        check(request("GET", "/openapi.json", port=port)[0] == 401, "/openapi.json without key")
        check(request("GET", "/metrics", port=port, raw=True, headers={"X-API-Key": "secret"})[0] == 200,
              "/metrics with key")
    finally:
        srv.close()


@test
def rate_limit_answers_429_with_retry_after():
    srv = Server(extra_config="api_rate_limit_requests: 5\napi_rate_limit_window_seconds: 60\n")
    try:
        srv.wait_ready()
        wait_for(lambda: probe_health(srv.http_port), timeout=60, interval=0.1, what="REST API")
        port = srv.http_port
        codes = [request("GET", "/pool/stats", port=port)[0] for _ in range(8)]
        check(codes[:5] == [200] * 5 and codes[5:] == [429] * 3, codes)
        status, headers, body = request("GET", "/pool/stats", port=port)
        check(status == 429 and int(headers["retry-after"]) >= 1 and "detail" in body, (status, headers))
        check(request("GET", "/health", port=port)[0] == 200, "/health is exempt")
        check(request("GET", "/metrics", port=port, raw=True)[0] == 200, "/metrics is exempt")
    finally:
        srv.close()


@test
def sync_execute_answers_from_the_finished_event():
    """A sync execute answers with the record job.finish committed, carried
    by the job's finished event: no job.get reaches the recorder. A record
    too large for an event (here 300 KB of stdout) is read back instead,
    and view=full waits still read the full record."""
    srv = Server(extra_config="log_level: DEBUG\nmax_stdout_bytes: 1m\n")
    try:
        srv.wait_ready()
        wait_for(lambda: probe_health(srv.http_port), timeout=60, interval=0.1, what="REST API")
        port = srv.http_port
        before = srv.text().count("job.get from")
        for number in range(3):
            status, _, body = request("POST", "/execute", {"code": f"print({number})"}, port=port)
            check(status == 200 and body["stdout"] == f"{number}\n" and body["success"], (status, body))
        wait_for(lambda: srv.text().count("job.finish from") >= 3, timeout=30, interval=0.05,
                 what="the recorder's job.finish lines")
        check(srv.text().count("job.get from") == before,
              f"sync executes read the job back: {srv.text().count('job.get from') - before} job.get")

        big = 300 * 1000
        status, _, body = request("POST", "/execute", {"code": f"print('x' * {big})"}, port=port)
        check(status == 200 and body["stdout"] == "x" * big + "\n", (status, len(body.get("stdout") or "")))
        check(srv.text().count("job.get from") > before, "a large record was not read back")

        status, _, body = request("POST", "/execute/async", {"code": "print('full')"}, port=port)
        check(status == 200, (status, body))
        status, _, full = request("GET", f"/jobs/{body['job_id']}/result?wait=true&view=full", port=port)
        check(status == 200 and full["stdout"] == "full\n" and "input_artifacts" in full
              and "code_hash" in full, (status, full))
    finally:
        srv.close()


@test
def fifty_parallel_sync_executes():
    def one(number):
        status, _, body = request("POST", "/execute", {"code": f"print({number})"}, timeout=300)
        return number, status, body
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    wrong = [(n, s, b) for n, s, b in answers if s != 200 or b.get("stdout") != f"{n}\n"]
    check(not wrong, f"{len(wrong)} wrong answers, e.g. {wrong[:3]}")


@test
def server_stops_cleanly_after_all_of_it():
    #  Exit 0 after SIGTERM; under ASan also: nothing leaked.
    code = server().stop()
    check(code == 0, f"the server exited {code}:\n{server().tail(40)}")


try:
    run()
finally:
    if SERVER is not None:
        SERVER.close()
