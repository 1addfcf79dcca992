#!/usr/bin/env python3
"""Hostile jobs that exhaust resources: memory, tmpfs space, file size,
output pipes, file descriptors. Each case checks the limit the job hit
and that the host was not touched."""
import os
import shutil
import sys

sys.dont_write_bytecode = True  # keep tests/hostile free of __pycache__
sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import test, run, check  # noqa: E402
from lib_hostile import (hostile, report_of, expect_status, expect_elapsed_below,  # noqa: E402
                         error_type, describe, require_sandbox)

MIB = 1024 * 1024
# The memory limit given to memory bombs, and the most a bomb ever asks for
# (bounded so a sandbox without a memory limit cannot hurt the machine).
BOMB_MEMORY = "128m"
BOMB_CAP_MB = 1536
# Disk fillers stop here even if the tmpfs has no size limit.
FILL_CAP_MB = 1024
# Each filler file stays below any sane RLIMIT_FSIZE.
FILL_PART_MB = 8
# The flood written to stdout / stderr, and the most a result may carry.
FLOOD_MB = 100
CAPTURE_CEILING = 16 * MIB
# fd exhaustion stops here; a sane nofile limit is far below.
FD_CAP = 200000
NOFILE_CEILING = 1048576


def host_free_bytes(path):
    return shutil.disk_usage(path).free


@test
def memory_bomb_bytearray_is_oom():
    result = hostile(f"""
report({{"growing": True}})
chunks = []
for _ in range({BOMB_CAP_MB} // 16):
    chunks.append(bytearray(16 * 1024 * 1024))
report({{"survived_mb": {BOMB_CAP_MB}}})
""", timeout=10, memory=BOMB_MEMORY)
    check(report_of(result)["growing"], "job did not start")
    check("survived_mb" not in (result.get("stdout") or ""), f"no memory limit: {describe(result)}")
    expect_status(result, "oom")
    check(error_type(result) == "oom", f"error.type should be oom: {describe(result)}")


@test
def memory_bomb_mmap_touch_is_oom():
    result = hostile(f"""
import mmap
report({{"mapping": True}})
m = mmap.mmap(-1, {BOMB_CAP_MB} * 1024 * 1024, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for off in range(0, len(m), 4096):
    m[off] = 1
report({{"touched_all": True}})
""", timeout=10, memory=BOMB_MEMORY)
    check(report_of(result)["mapping"], "job did not start")
    check("touched_all" not in (result.get("stdout") or ""), f"no memory limit: {describe(result)}")
    expect_status(result, "oom")
    check(error_type(result) == "oom", f"error.type should be oom: {describe(result)}")


def fill_code(directory):
    # Several files, each below RLIMIT_FSIZE, so the file system's size
    # limit is what stops the job (ENOSPC), not the per-file limit.
    return f"""
written, err, part = 0, None, 0
chunk = b"x" * (1024 * 1024)
try:
    while written < {FILL_CAP_MB} * 1024 * 1024:
        with open("{directory}/tako-probe-fill-%d" % part, "wb") as f:
            for _ in range({FILL_PART_MB}):
                f.write(chunk)
                f.flush()
                written += len(chunk)
        part += 1
except OSError as e:
    err = e.errno
report({{"written_mb": written // (1024 * 1024), "errno": err, "files": part + 1}})
"""


def check_filled(result, before_free):
    rep = report_of(result)
    check(rep["errno"] == 28, f"expected ENOSPC inside the sandbox: {rep}")
    check(rep["written_mb"] < FILL_CAP_MB, f"no size limit: wrote {rep['written_mb']} MB")
    # Host disks may move a little (other people use the machine), never by
    # as much as the job wrote.
    for path in ("/", "/tmp"):
        dropped = before_free[path] - host_free_bytes(path)
        check(dropped < max(rep["written_mb"], 1) * MIB // 2 + 64 * MIB,
              f"host {path} lost {dropped // MIB} MB during the run")
    expect_status(result, "succeeded")


@test
def disk_fill_tmp_is_enospc():
    free = {p: host_free_bytes(p) for p in ("/", "/tmp")}
    check_filled(hostile(fill_code("/tmp"), timeout=20), free)


@test
def disk_fill_output_is_enospc():
    free = {p: host_free_bytes(p) for p in ("/", "/tmp")}
    check_filled(hostile(fill_code("/output"), timeout=20), free)


@test
def huge_file_beyond_fsize_gets_efbig():
    # Python ignores SIGXFSZ, so the write fails with EFBIG at RLIMIT_FSIZE.
    result = hostile(f"""
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
err = None
try:
    with open("/tmp/tako-probe-big", "wb") as f:
        f.seek({FILL_CAP_MB} * 1024 * 1024 * 4)
        f.write(b"x")
except OSError as e:
    err = e.errno
report({{"fsize": [soft, hard], "errno": err}})
""", timeout=10)
    rep = report_of(result)
    check(rep["fsize"][0] != -1 and rep["fsize"][1] != -1, f"RLIMIT_FSIZE is unlimited: {rep}")
    check(rep["errno"] == 27, f"expected EFBIG writing beyond RLIMIT_FSIZE: {rep}")
    expect_status(result, "succeeded")


@test
def huge_file_with_sigxfsz_default_kills_job():
    result = hostile(f"""
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
report({{"writing": True}})
with open("/tmp/tako-probe-big", "wb") as f:
    f.seek({FILL_CAP_MB} * 1024 * 1024 * 4)
    f.write(b"x")
    f.flush()
report({{"wrote": True}})
""", timeout=10)
    check(report_of(result)["writing"], "job did not start")
    check('"wrote"' not in (result.get("stdout") or ""), f"write past RLIMIT_FSIZE worked: {describe(result)}")
    expect_status(result, "failed")
    check(result.get("error") is not None, f"a killed job needs an error: {describe(result)}")


def flood_code(stream):
    return f"""
report({{"flooding": True}})
chunk = b"A" * (1024 * 1024)
out = sys.{stream}.buffer
for _ in range({FLOOD_MB}):
    out.write(chunk)
out.flush()
"""


@test
def stdout_flood_is_truncated_and_fast():
    result = hostile(flood_code("stdout"), timeout=30)
    stdout = result.get("stdout") or ""
    check(result.get("stdout_truncated") is True, f"stdout_truncated should be true: {describe(result)}")
    check(len(stdout.encode()) <= CAPTURE_CEILING, f"stdout not capped: {len(stdout)} bytes")
    check(stdout.startswith("TAKO_REPORT"), "captured stdout should keep its beginning")
    expect_status(result, "succeeded")
    expect_elapsed_below(result, 20)


@test
def stderr_flood_is_truncated_and_fast():
    result = hostile(flood_code("stderr"), timeout=30)
    stderr = result.get("stderr") or ""
    check(result.get("stderr_truncated") is True, f"stderr_truncated should be true: {describe(result)}")
    check(result.get("stdout_truncated") is False, f"stdout was small: {describe(result)}")
    check(len(stderr.encode()) <= CAPTURE_CEILING, f"stderr not capped: {len(stderr)} bytes")
    check(report_of(result)["flooding"], "stdout report lost")
    expect_status(result, "succeeded")
    expect_elapsed_below(result, 20)


@test
def fd_exhaustion_limited_by_nofile():
    result = hostile(f"""
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
raised = None
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    raised = hard
except (ValueError, OSError):
    pass
fds, err = [], None
while len(fds) < {FD_CAP}:
    try:
        fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        err = e.errno
        break
report({{"nofile": [soft, hard], "opened": len(fds), "errno": err}})
""", timeout=20)
    rep = report_of(result)
    check(rep["errno"] == 24, f"expected EMFILE: {rep}")
    check(rep["nofile"][1] < NOFILE_CEILING, f"nofile hard limit too high: {rep}")
    check(rep["opened"] <= rep["nofile"][1], f"opened more than the hard limit: {rep}")
    expect_status(result, "succeeded")


@test
def dev_shm_fill_bounded():
    # /dev/shm is not in the minimal /dev, or it is a bounded tmpfs.
    result = hostile(fill_code("/dev/shm"), timeout=20)
    if result.get("status") == "oom":
        return  # tmpfs pages are charged to the job's memory limit: bounded
    rep = report_of(result)
    check(rep["errno"] in (2, 13, 28, 30), f"/dev/shm should be absent, read-only or full: {rep}")
    check(rep["written_mb"] < FILL_CAP_MB, f"/dev/shm unbounded: {rep}")


@test
def oom_score_adj_cannot_shield_job():
    result = hostile(f"""
err = write_errno("/proc/self/oom_score_adj", "-1000")
report({{"errno": err}})
chunks = []
for _ in range({BOMB_CAP_MB} // 16):
    chunks.append(bytearray(16 * 1024 * 1024))
""", timeout=10, memory=BOMB_MEMORY)
    rep = report_of(result)
    check(rep["errno"] in (1, 13), f"oom_score_adj lowered to -1000: {rep}")
    expect_status(result, "oom")


@test
def segfault_reported_without_core_dump():
    result = hostile("""
import resource
report({"core": resource.getrlimit(resource.RLIMIT_CORE)})
os.chdir("/tmp")
ctypes.string_at(0)
""", timeout=10)
    rep = report_of(result)
    check(rep["core"] == [0, 0], f"RLIMIT_CORE should be 0: {rep}")
    expect_status(result, "failed")
    check(error_type(result) == "segfault", f"error.type should be segfault: {describe(result)}")


if __name__ == "__main__":
    require_sandbox()
    run()
