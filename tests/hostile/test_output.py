#!/usr/bin/env python3
"""Hostile jobs that attack the result collection: /output and
/output/result.json are read by the host after the job, so links, FIFOs,
sockets, sparse giants, floods of files and weird names must not make the
host follow a link out of the sandbox, hang, or blow up."""
import hashlib
import json
import os
import sys

sys.dont_write_bytecode = True  # keep tests/hostile free of __pycache__
sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import test, run, check  # noqa: E402
from lib_hostile import (hostile, report_of, expect_status, expect_elapsed_below,  # noqa: E402
                         describe, require_sandbox, CANARY_PATH, CANARY_CONTENT, HOST_SECRET,
                         ensure_canary)

# Result collection of a hostile /output must still end within this.
COLLECT_BOUND = 30
# A result carries at most this much (output JSON, artifact list).
RESULT_CEILING = 16 * 1024 * 1024
MANY_FILES = 100000
DEEP_LEVELS = 1000
EXDEV = 18


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def artifacts(result):
    arts = result.get("artifacts")
    check(isinstance(arts, list), f"result has no artifacts list: {describe(result)}")
    return arts


def artifact_named(result, name):
    return [a for a in artifacts(result) if a.get("name") == name]


def assert_no_host_content(result, host_files):
    """No artifact has the hash of a host file, and no host secret or canary
    text appears anywhere in the result."""
    hashes = {sha256_of(p): p for p in host_files if os.path.isfile(p)}
    for art in artifacts(result):
        check(art.get("sha256") not in hashes,
              f"artifact {art.get('name')!r} is host file {hashes.get(art.get('sha256'))}")
    text = json.dumps({k: v for k, v in result.items() if not k.startswith("_")})
    check(HOST_SECRET not in text, "the host secret appears in the result")
    check(CANARY_CONTENT not in text and json.loads(CANARY_CONTENT)["canary"] not in text,
          "host canary content appears in the result")


WRITE_OK_ARTIFACT = """
with open("/output/ok.txt", "w") as f:
    f.write("fine")
"""
OK_SHA = hashlib.sha256(b"fine").hexdigest()


def expect_ok_artifact(result):
    ok = artifact_named(result, "ok.txt")
    check(len(ok) == 1 and ok[0].get("sha256") == OK_SHA and ok[0].get("size_bytes") == 4,
          f"the plain artifact next to the trick is missing or wrong: {artifacts(result)}")


@test
def symlink_artifacts_to_host_files_not_followed():
    ensure_canary()
    makefile = os.path.join(os.environ["TAKO_ROOT"], "Makefile")
    result = hostile(WRITE_OK_ARTIFACT + f"""
links = {{"passwd": "/etc/passwd", "shadow": "/etc/shadow", "canary": {CANARY_PATH!r},
          "makefile": {makefile!r}, "environ": "/proc/self/environ", "root_environ": "/proc/1/environ"}}
for name, target in links.items():
    os.symlink(target, "/output/" + name)
report({{"links": sorted(links)}})
""")
    names = {a.get("name") for a in artifacts(result)}
    for name in report_of(result)["links"]:
        check(name not in names, f"symlink artifact {name!r} was collected: {artifacts(result)}")
    assert_no_host_content(result, ["/etc/passwd", "/etc/shadow", CANARY_PATH, makefile])
    expect_ok_artifact(result)
    expect_status(result, "succeeded")


@test
def symlinked_directory_in_output_not_walked():
    result = hostile(WRITE_OK_ARTIFACT + """
os.symlink("/", "/output/rootdir")
os.symlink("/output", "/output/loop")
os.makedirs("/output/sub")
os.symlink("../../../../etc", "/output/sub/up")
report({"made": True})
""")
    for art in artifacts(result):
        name = art.get("name") or ""
        check(not name.startswith(("rootdir", "loop", "sub/up")), f"walked through a symlink: {name!r}")
    assert_no_host_content(result, ["/etc/passwd", "/etc/hostname", "/etc/hosts"])
    expect_ok_artifact(result)
    expect_elapsed_below(result, COLLECT_BOUND)


@test
def hardlink_to_host_files_fails():
    result = hostile("""
report({"passwd": oserror_of(lambda: os.link("/etc/passwd", "/output/pw")),
        "code": oserror_of(lambda: os.link("/code/main.py", "/output/code")),
        "python": oserror_of(lambda: os.link("/usr/bin/python3", "/output/py"))})
""")
    rep = report_of(result)
    for name, err in rep.items():
        check(err in (EXDEV, 1, 2, 13), f"hardlink {name} into /output was not refused: {rep}")
    assert_no_host_content(result, ["/etc/passwd"])
    expect_status(result, "succeeded")


@test
def fifo_in_output_does_not_hang():
    result = hostile(WRITE_OK_ARTIFACT + """
os.mkfifo("/output/fifo")
os.mkfifo("/output/result.json.fifo")
report({"fifo": True})
""")
    check(report_of(result)["fifo"], "job did not run")
    check(not artifact_named(result, "fifo"), f"a FIFO became an artifact: {artifacts(result)}")
    expect_ok_artifact(result)
    expect_elapsed_below(result, COLLECT_BOUND)


@test
def fifo_as_result_json_does_not_hang():
    result = hostile("""
os.mkfifo("/output/result.json")
report({"fifo": True})
""")
    check(report_of(result)["fifo"], "job did not run")
    check(result.get("output") is None, f"output from a FIFO: {describe(result)}")
    expect_elapsed_below(result, COLLECT_BOUND)


@test
def unix_socket_in_output_skipped():
    result = hostile(WRITE_OK_ARTIFACT + """
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("/output/sock")
s.listen(1)
report({"bound": True})
""")
    check(report_of(result)["bound"], "job did not run")
    check(not artifact_named(result, "sock"), f"a socket became an artifact: {artifacts(result)}")
    expect_ok_artifact(result)
    expect_elapsed_below(result, COLLECT_BOUND)


@test
def sparse_giant_file_capped():
    result = hostile("""
made = None
for size in (100 << 30, 10 << 30, 1 << 30, 100 << 20):
    try:
        with open("/output/sparse", "wb") as f:
            f.truncate(size)
        made = size
        break
    except OSError:
        pass
report({"size": made})
""")
    made = report_of(result)["size"]
    expect_elapsed_below(result, COLLECT_BOUND)
    for art in artifact_named(result, "sparse"):
        check(art.get("size_bytes", 0) <= (made or 0), f"artifact larger than the file: {art}")
    if made and made >= (1 << 30):
        check(not artifact_named(result, "sparse"), f"a {made >> 30} GiB artifact was collected: "
              f"{artifact_named(result, 'sparse')}")


@test
def many_small_files_capped():
    result = hostile(f"""
count = 0
try:
    for i in range({MANY_FILES}):
        with open("/output/f%06d" % i, "w") as f:
            f.write("x")
        count += 1
except OSError as e:
    pass
report({{"files": count}})
""", timeout=60)
    made = report_of(result)["files"]
    arts = artifacts(result)
    check(made > 1000, f"job could not create files: {made}")
    check(len(arts) < made, f"artifact count not capped: {len(arts)} of {made}")
    check(len(json.dumps(arts)) < RESULT_CEILING, "artifact list too large")
    expect_elapsed_below(result, 60)


@test
def deep_directory_tree_handled():
    result = hostile(f"""
os.chdir("/output")
depth = 0
try:
    for _ in range({DEEP_LEVELS}):
        os.mkdir("d")
        os.chdir("d")
        depth += 1
    with open("bottom.txt", "w") as f:
        f.write("deep")
except OSError:
    pass
os.chdir("/")
report({{"depth": depth}})
""" + WRITE_OK_ARTIFACT)
    check(report_of(result)["depth"] > 100, f"could not build the tree: {report_of(result)}")
    expect_status(result, "succeeded")
    expect_ok_artifact(result)
    expect_elapsed_below(result, COLLECT_BOUND)


@test
def result_json_symlink_to_host_file_not_followed():
    ensure_canary()
    result = hostile(f"""
os.symlink({CANARY_PATH!r}, "/output/result.json")
report({{"linked": True}})
""")
    check(report_of(result)["linked"], "job did not run")
    check(result.get("output") != json.loads(CANARY_CONTENT), "result.json symlink followed to the host canary")
    assert_no_host_content(result, [CANARY_PATH])


@test
def result_json_symlink_to_proc_environ_not_followed():
    result = hostile("""
os.symlink("/proc/self/environ", "/output/result.json")
report({"linked": True})
""")
    check(report_of(result)["linked"], "job did not run")
    check(result.get("output") is None, f"output read through a symlink: {describe(result)}")
    assert_no_host_content(result, [])


@test
def result_json_invalid_gives_clear_error():
    result = hostile("""
with open("/output/result.json", "w") as f:
    f.write('{"answer": 42, oops')
report({"wrote": True})
""")
    check(report_of(result)["wrote"], "job output lost")
    check(result.get("output") is None, f"invalid JSON produced output: {describe(result)}")
    check(result.get("exit_code") == 0, f"exit code lost: {describe(result)}")
    err = result.get("error") or {}
    check(err.get("type") and err.get("message"), f"no clear error for an invalid result.json: {describe(result)}")
    check("/tmp/" not in err.get("message", "") and "/work" not in err.get("message", ""),
          f"error message leaks a host path: {err}")


@test
def result_json_huge_is_bounded():
    result = hostile("""
written, err = 0, None
try:
    with open("/output/result.json", "w") as f:
        f.write('{"big": "')
        chunk = "A" * (1 << 20)
        for _ in range(200):
            f.write(chunk)
            written += 1
        f.write('"}')
except OSError as e:
    err = e.errno
report({"mb": written, "errno": err})
""", timeout=30)
    report_of(result)
    output = result.get("output")
    check(output is None or len(json.dumps(output)) <= RESULT_CEILING,
          f"huge result.json passed through whole: {len(json.dumps(output))} bytes")
    expect_elapsed_below(result, COLLECT_BOUND)


@test
def result_json_directory_handled():
    result = hostile(WRITE_OK_ARTIFACT + """
os.mkdir("/output/result.json")
report({"made": True})
""")
    check(report_of(result)["made"], "job did not run")
    check(result.get("output") is None, f"output from a directory: {describe(result)}")
    expect_ok_artifact(result)


@test
def weird_artifact_names_handled():
    result = hostile(WRITE_OK_ARTIFACT + """
names = [b"new\\nline", b"\\xff\\xfe-not-utf8", b"esc\\x1b[31mred", b"quote\\"back\\\\slash",
         b"x" * 255, b"...", b" space ", b"tab\\tname", b"\\xe2\\x80\\xae-rtl"]
made = 0
for n in names:
    try:
        with open(b"/output/" + n, "wb") as f:
            f.write(b"w")
        made += 1
    except OSError:
        pass
report({"made": made})
""")
    check(report_of(result)["made"] >= 5, "job could not create the files")
    for art in artifacts(result):
        name = art.get("name")
        check(isinstance(name, str) and name, f"artifact name not a string: {art}")
        check(not name.startswith("/") and ".." not in name.split("/"), f"unsafe artifact name: {name!r}")
    expect_ok_artifact(result)
    expect_status(result, "succeeded")


@test
def binary_stdout_and_stderr_stay_valid_json():
    result = hostile("""
report({"start": True})
sys.stdout.buffer.write(bytes(range(256)) * 64 + b"\\xc3\\x28\\xed\\xa0\\x80")
sys.stdout.flush()
sys.stderr.buffer.write(b"\\x00\\xff" * 1000)
""")
    check(isinstance(result.get("stdout"), str) and isinstance(result.get("stderr"), str),
          f"streams not strings: {describe(result)}")
    check(result["stdout"].startswith("TAKO_REPORT"), "stdout lost its beginning")
    expect_status(result, "succeeded")


@test
def error_record_not_spoofable():
    # The bootstrap reports exceptions through an inherited pipe; the job's
    # own code can write to every fd it inherited. A job that exits 0 must
    # not be able to report itself as oom (or any other error) that way.
    result = hostile("""
fake = b'{"type": "oom", "message": "spoofed by the job"}'
written = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        if int(fd) > 2 and os.readlink("/proc/self/fd/" + fd).startswith("pipe:"):
            written[fd] = os.write(int(fd), fake)
    except OSError as e:
        written[fd] = "ERR %d" % e.errno
report({"written": written})
""")
    rep = report_of(result)
    check(result.get("status") == "succeeded" and result.get("error") is None,
          f"a job that exited 0 reported a forged error through {rep['written']}: "
          f"status={result.get('status')!r} error={result.get('error')}")


if __name__ == "__main__":
    require_sandbox()
    run()
