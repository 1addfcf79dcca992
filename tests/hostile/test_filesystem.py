#!/usr/bin/env python3
"""Hostile jobs that probe the filesystem view: /proc, /sys, secrets in
/etc and in the environment, writes to read-only places, device nodes,
chroot and mount escapes."""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/hostile free of __pycache__
sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import test, run, check  # noqa: E402
from lib_hostile import (hostile, report_of, expect_status, require_sandbox,  # noqa: E402
                         HOST_SECRET, CANARY_PATH)

# Refusals a write to a read-only or unprivileged place may get.
WRITE_REFUSED = (1, 13, 30)  # EPERM, EACCES, EROFS
# Paths that would betray the host's layout if they appeared in the job's
# view of its mounts or of pid 1.
HOST_PATH_HINTS = ("/work", "/root", "/home", os.environ["TAKO_ROOT"], os.path.dirname(os.environ["TAKO_BIN"]))
# The sandbox runs an init and the job; a few helpers at most.
MAX_VISIBLE_PROCESSES = 6


@test
def proc_1_shows_only_sandbox_init():
    result = hostile("""
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError as e:
        return "ERR %d" % e.errno
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
report({"pids": pids, "cmdline1": read("/proc/1/cmdline"), "environ1": read("/proc/1/environ"),
        "cmdlines": {p: read("/proc/%d/cmdline" % p) for p in pids}})
""")
    rep = report_of(result)
    check(len(rep["pids"]) <= MAX_VISIBLE_PROCESSES, f"host processes visible in /proc: {rep['pids'][:40]}")
    everything = rep["cmdline1"] + rep["environ1"] + "".join(rep["cmdlines"].values())
    for hint in HOST_PATH_HINTS + ("tako-hostile-", HOST_SECRET):
        where = [p for p, c in rep["cmdlines"].items() if hint in c]
        check(hint not in everything, f"host detail {hint!r} visible through /proc: in the cmdline of "
              f"pids {where}: {[rep['cmdlines'][p][:200] for p in where]}; environ1={rep['environ1'][:200]!r}")
    expect_status(result, "succeeded")


@test
def mountinfo_shows_no_host_paths():
    result = hostile("""
with open("/proc/self/mountinfo") as f:
    report({"mountinfo": f.read()})
""")
    info = report_of(result)["mountinfo"]
    for hint in HOST_PATH_HINTS:
        check(hint not in info, f"host path {hint!r} in the job's mountinfo:\n{info}")
    check(" / / " in info or "\n" in info, "mountinfo empty")
    expect_status(result, "succeeded")


@test
def memory_maps_show_no_host_paths():
    #  Every file mapped into the job: the interpreter and the system's
    #  libraries under /usr, nothing of where tako-vm lives. (A forked
    #  interpreter maps the zygote's program: it runs from memory.)
    result = hostile("""
with open("/proc/self/maps") as f:
    paths = sorted(set(l.split(None, 5)[5].strip() for l in f if len(l.split(None, 5)) == 6))
report({"paths": paths, "exe": os.readlink("/proc/self/exe")})
""")
    rep = report_of(result)
    for path in rep["paths"] + [rep["exe"]]:
        check(path.startswith(("/usr/", "[", "/memfd:tako-zygote")),
              f"mapped file outside the sandbox's system files: {path!r} (all: {rep['paths']})")
        for hint in HOST_PATH_HINTS:
            check(hint not in path, f"host detail {hint!r} in the job's memory maps: {path!r}")
    expect_status(result, "succeeded")


@test
def proc_sys_hostname_write_fails():
    result = hostile("""
err = write_errno("/proc/sys/kernel/hostname", "tako-probe-pwned")
err2 = oserror_of(lambda: socket.sethostname("tako-probe-pwned"))
report({"errno": err, "sethostname": err2, "hostname": socket.gethostname()})
""")
    rep = report_of(result)
    check(rep["errno"] in WRITE_REFUSED, f"/proc/sys write not refused: {rep}")
    check(rep["sethostname"] in WRITE_REFUSED, f"sethostname not refused: {rep}")
    check(rep["hostname"] != "tako-probe-pwned", f"hostname changed: {rep}")
    expect_status(result, "succeeded")


@test
def sysrq_trigger_write_fails():
    # "h" only prints help to the kernel log, harmless if it ever got through.
    result = hostile("""
report({"errno": write_errno("/proc/sysrq-trigger", "h")})
""")
    rep = report_of(result)
    check(rep["errno"] in WRITE_REFUSED + (2,), f"/proc/sysrq-trigger writable: {rep}")
    expect_status(result, "succeeded")


@test
def proc_kcore_and_kmsg_unreadable():
    result = hostile("""
def probe(path):
    # errno, or how many bytes came back (masking with /dev/null reads 0).
    try:
        with open(path, "rb") as f:
            return {"bytes": len(f.read(16))}
    except OSError as e:
        return {"errno": e.errno}
report({p: probe(p) for p in ("/proc/kcore", "/proc/kmsg", "/dev/mem", "/dev/kmsg", "/proc/1/mem")})
""")
    rep = report_of(result)
    for path, got in rep.items():
        check(got.get("bytes", 0) == 0, f"{path} readable from the job: {rep}")
    expect_status(result, "succeeded")


@test
def sys_absent_empty_or_readonly():
    result = hostile("""
exists = os.path.isdir("/sys")
entries = sorted(os.listdir("/sys")) if exists else []
ro = bool(os.statvfs("/sys").f_flag & os.ST_RDONLY) if exists and entries else None
err = write_errno("/sys/tako-probe", "x") if exists else None
cg = oserror_of(lambda: os.mkdir("/sys/fs/cgroup/tako-probe")) if os.path.isdir("/sys/fs/cgroup") else None
report({"exists": exists, "entries": entries, "readonly": ro, "create": err, "cgroup_mkdir": cg})
""")
    rep = report_of(result)
    check(not rep["exists"] or not rep["entries"] or rep["readonly"], f"/sys is writable: {rep}")
    if rep["exists"]:
        check(rep["create"] in WRITE_REFUSED + (2,), f"file created in /sys: {rep}")
    check(rep["cgroup_mkdir"] in (None, 1, 2, 13, 30), f"cgroup created from the job: {rep}")
    expect_status(result, "succeeded")


@test
def etc_shadow_unreadable():
    result = hostile("""
def probe():
    with open("/etc/shadow") as f:
        return f.read()
try:
    content = probe()
except OSError as e:
    content = None
    err = e.errno
else:
    err = None
report({"errno": err, "root_hash": [l for l in (content or "").splitlines() if l.startswith("root:")]})
""")
    rep = report_of(result)
    check(rep["errno"] in (2, 13), f"/etc/shadow readable in the job: {rep}")
    expect_status(result, "succeeded")


@test
def host_environment_does_not_reach_job():
    result = hostile("""
found = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                found.append(f.read().decode(errors="replace"))
        except OSError:
            pass
report({"environ": dict(os.environ), "proc_environ": found})
""")
    rep = report_of(result)
    env = rep["environ"]
    everything = repr(env) + "".join(rep["proc_environ"])
    check("TAKO_HOSTILE_SECRET" not in env, f"host variable reached the job: {sorted(env)}")
    check(HOST_SECRET not in everything, "host secret visible inside the sandbox")
    for name in ("TAKO_ROOT", "TAKO_BIN", "TAKO_BUILD", "ASAN_OPTIONS", "SSH_AUTH_SOCK", "HOME=/root"):
        check(name not in everything, f"host variable {name} visible inside: {sorted(env)}")
    expect_status(result, "succeeded")


@test
def writes_to_readonly_paths_fail():
    result = hostile("""
targets = ["/usr/tako-probe", "/etc/tako-probe", "/bin/tako-probe", "/code/tako-probe",
           "/input/tako-probe", "/tako-probe", "/usr/bin/tako-probe"]
create = {t: write_errno(t, "x") for t in targets}
modify = {t: write_errno(t, "x", append=True)
          for t in ("/code/main.py", "/input/data.json", "/etc/passwd", "/etc/hosts")}
remove = {t: oserror_of(lambda t=t: os.unlink(t)) for t in ("/code/main.py", "/input/data.json")}
chmod = oserror_of(lambda: os.chmod("/code/main.py", 0o777))
report({"create": create, "modify": modify, "remove": remove, "chmod": chmod})
""", input={"x": 1})
    rep = report_of(result)
    for kind in ("create", "modify", "remove"):
        for path, err in rep[kind].items():
            if kind == "modify" and err == 2:
                continue  # the file is simply not there
            check(err in WRITE_REFUSED, f"{kind} {path} not refused: {rep}")
    check(rep["chmod"] in WRITE_REFUSED, f"chmod /code/main.py not refused: {rep}")
    expect_status(result, "succeeded")


@test
def job_cannot_reach_host_canary_path():
    # Inside, the same path is the job's own /tmp: writing there is allowed
    # and must not change the host file (assert_host_clean checks it).
    result = hostile(f"""
err = write_errno({CANARY_PATH!r}, "overwritten by the job")
report({{"errno": err, "sees": sorted(os.listdir("/tmp"))}})
""")
    rep = report_of(result)
    check(rep["errno"] is None, f"job could not write its own /tmp: {rep}")
    expect_status(result, "succeeded")


@test
def mknod_fails():
    result = hostile("""
import stat
nodes = {p: oserror_of(lambda p=p: os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3)))
         for p in ("/tmp/tako-probe-null", "/dev/tako-probe-mem", "/output/tako-probe-dev")}
blk = oserror_of(lambda: os.mknod("/tmp/tako-probe-sda", stat.S_IFBLK | 0o666, os.makedev(8, 0)))
report({"nodes": nodes, "block": blk})
""")
    rep = report_of(result)
    for path, err in rep["nodes"].items():
        check(err in WRITE_REFUSED, f"mknod {path} not refused: {rep}")
    check(rep["block"] in WRITE_REFUSED, f"block device mknod not refused: {rep}")
    expect_status(result, "succeeded")


@test
def chroot_escape_fails():
    result = hostile("""
os.makedirs("/tmp/jail", exist_ok=True)
err = oserror_of(lambda: os.chroot("/tmp/jail"))
escaped = None
if err is None:
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    escaped = sorted(os.listdir("/"))
report({"errno": err, "root_after": escaped})
""")
    rep = report_of(result)
    check(rep["errno"] in (1,), f"chroot not refused with EPERM: {rep}")
    expect_status(result, "succeeded")


@test
def mount_fails():
    result = hostile("""
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
def do_mount(src, dst, fstype, flags):
    ctypes.set_errno(0)
    rc = _libc.mount(src, dst, fstype, flags, None)
    return {"ret": rc, "errno": ctypes.get_errno()}
MS_REMOUNT, MS_BIND = 32, 4096
report({
    "tmpfs": in_child(lambda: do_mount(b"none", b"/tmp", b"tmpfs", 0)),
    "proc": in_child(lambda: do_mount(b"proc", b"/tmp", b"proc", 0)),
    "remount_rw": in_child(lambda: do_mount(b"none", b"/usr", None, MS_REMOUNT)),
    "bind": in_child(lambda: do_mount(b"/", b"/tmp", None, MS_BIND)),
    "umount": in_child(lambda: {"ret": _libc.umount2(b"/code", 2), "errno": ctypes.get_errno()}),
})
""")
    rep = report_of(result)
    for name, outcome in rep.items():
        value = outcome.get("value") or {}
        ok = outcome.get("signal") == 31 or (value.get("ret") == -1 and value.get("errno") in (1, 38))
        check(ok, f"mount call {name} not refused with EPERM/ENOSYS/SIGSYS: {rep}")
    expect_status(result, "succeeded")


@test
def dev_is_minimal():
    result = hostile("""
report({"dev": sorted(os.listdir("/dev"))})
""")
    dev = report_of(result)["dev"]
    for bad in ("sda", "vda", "mem", "kmem", "port", "kmsg", "tty0", "console", "loop0", "fuse", "kvm"):
        check(bad not in dev, f"/dev/{bad} visible in the sandbox: {dev}")
    check("null" in dev, f"/dev/null missing: {dev}")
    expect_status(result, "succeeded")


@test
def proc_exe_overwrite_fails():
    # runc CVE-2019-5736: a job that can write through /proc/PID/exe of a
    # host-side helper rewrites the host binary.
    import hashlib
    tako = os.environ["TAKO_BIN"]
    with open(tako, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    result = hostile("""
tries = {}
for p in os.listdir("/proc"):
    if p.isdigit() or p == "self":
        tries[p] = oserror_of(lambda p=p: os.close(os.open("/proc/%s/exe" % p, os.O_WRONLY)))
report({"tries": tries})
""")
    tries = report_of(result)["tries"]
    for pid, err in tries.items():
        check(err is not None, f"/proc/{pid}/exe opened for writing: {tries}")
    with open(tako, "rb") as f:
        check(hashlib.sha256(f.read()).hexdigest() == before, "the host tako-vm binary changed")
    expect_status(result, "succeeded")


@test
def no_inherited_file_descriptors():
    # A leaked host directory fd is an escape: openat(fd, "..") walks the
    # host tree. Only stdin, stdout and stderr may reach the job.
    result = hostile("""
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError as e:
        fds[fd] = "ERR %d" % e.errno
escape = {}
for fd, target in fds.items():
    if int(fd) > 2:
        try:
            escape[fd] = sorted(os.listdir("/proc/self/fd/%s/.." % fd))[:20]
        except OSError as e:
            escape[fd] = e.errno
report({"fds": fds, "escape": escape})
""")
    rep = report_of(result)
    extra = {fd: target for fd, target in rep["fds"].items() if int(fd) > 2}
    # The directory fd listdir itself used is closed by then (ENOENT);
    # pipes are the sandbox's own channels (see error_record_not_spoofable
    # in test_output.py); files, directories and sockets are host leaks.
    extra = {fd: t for fd, t in extra.items() if t != "ERR 2" and not t.startswith("pipe:")}
    check(not extra, f"file descriptors inherited by the job: {extra}; escape attempts: {rep['escape']}")
    expect_status(result, "succeeded")


@test
def core_pattern_write_fails():
    # Writing back the current value: harmless even if it ever got through.
    with open("/proc/sys/kernel/core_pattern") as f:
        host_pattern = f.read()
    result = hostile("""
current = open("/proc/sys/kernel/core_pattern").read()
err = write_errno("/proc/sys/kernel/core_pattern", current)
report({"errno": err})
""")
    rep = report_of(result)
    check(rep["errno"] in WRITE_REFUSED, f"/proc/sys/kernel/core_pattern writable: {rep}")
    with open("/proc/sys/kernel/core_pattern") as f:
        check(f.read() == host_pattern, "host core_pattern changed")


@test
def cgroup_namespace_hides_host_path():
    with open("/proc/self/cgroup") as f:
        host_paths = {line.split(":", 2)[2].strip() for line in f if line.strip()}
    result = hostile("""
with open("/proc/self/cgroup") as f:
    report({"cgroup": f.read().splitlines()})
""")
    lines = report_of(result)["cgroup"]
    for line in lines:
        path = line.split(":", 2)[2]
        check(path == "/" or path not in host_paths and "process_api" not in path,
              f"host cgroup path visible inside: {lines}")


@test
def uts_hostname_is_private():
    import socket
    result = hostile("""
report({"hostname": socket.gethostname()})
""")
    check(report_of(result)["hostname"] != socket.gethostname(),
          f"the job sees the host's hostname {socket.gethostname()!r}")


@test
def host_sysv_shared_memory_invisible():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    key = 0x7a6b1000 + (os.getpid() & 0xfff)
    IPC_CREAT, IPC_RMID = 0o1000, 0
    shmid = libc.shmget(key, 4096, IPC_CREAT | 0o666)
    check(shmid >= 0, f"host shmget failed: errno {ctypes.get_errno()}")
    try:
        result = hostile(f"""
shmid, err = syscall(29, {key}, 0, 0)
def entries(path):
    try:
        with open(path) as f:
            return f.read().splitlines()[1:]
    except OSError:
        return []
report({{"shmid": shmid, "errno": err, "shm": entries("/proc/sysvipc/shm")}})
""")
        rep = report_of(result)
        check(rep["shmid"] == -1, f"the job opened a host SysV segment: {rep}")
        check(not any(str(key) in line for line in rep["shm"]), f"host segment listed inside: {rep}")
    finally:
        libc.shmctl(shmid, IPC_RMID, None)


@test
def setuid_binaries_are_powerless():
    result = hostile("""
import subprocess, shutil
mount = shutil.which("mount")
if mount:
    p = subprocess.run([mount, "-t", "tmpfs", "none", "/tmp"], capture_output=True)
    rc = p.returncode
else:
    rc = None
with open("/proc/self/mountinfo") as f:
    tmp_mounts = [l for l in f.read().splitlines() if l.split()[4] == "/tmp"]
report({"mount_rc": rc, "tmp_mounts": len(tmp_mounts),
        "nosuid_usr": bool(os.statvfs("/usr").f_flag & os.ST_NOSUID)})
""")
    rep = report_of(result)
    check(rep["mount_rc"] != 0, f"setuid mount succeeded inside the job: {rep}")
    check(rep["tmp_mounts"] <= 1, f"/tmp was mounted over: {rep}")


@test
def kallsyms_addresses_hidden():
    result = hostile("""
try:
    with open("/proc/kallsyms") as f:
        lines = [next(f) for _ in range(50)]
except (OSError, StopIteration):
    lines = []
report({"nonzero": [l for l in lines if int(l.split()[0], 16) != 0][:3]})
""")
    check(report_of(result)["nonzero"] == [], f"kernel addresses readable: {report_of(result)}")


@test
def proc_pid_links_do_not_reach_host():
    # /proc/N/root, /proc/N/cwd and /proc/N/fd/* of a helper that still sits
    # in the host's mount namespace would be a way out. The host canary's
    # path exists only on the host: seeing it through any link is an escape.
    result = hostile(f"""
me = str(os.getpid())
seen, fds = {{}}, {{}}
for p in os.listdir("/proc"):
    if not p.isdigit() or p == me:
        continue
    for link in ("root", "cwd"):
        path = "/proc/%s/%s%s" % (p, link, {CANARY_PATH!r})
        seen["%s/%s" % (p, link)] = os.path.exists(path)
    try:
        fds[p] = {{fd: os.readlink("/proc/%s/fd/%s" % (p, fd)) for fd in os.listdir("/proc/%s/fd" % p)}}
    except OSError as e:
        fds[p] = e.errno
report({{"seen": seen, "fds": fds}})
""")
    rep = report_of(result)
    reached = [k for k, v in rep["seen"].items() if v]
    check(not reached, f"the host's canary is visible through /proc/{reached}")
    for pid, links in rep["fds"].items():
        if isinstance(links, dict):
            leaks = {fd: t for fd, t in links.items() if any(h in t for h in HOST_PATH_HINTS + ("/tmp/tako-hostile",))}
            check(not leaks, f"pid {pid} holds host files the job can see: {leaks}")
    expect_status(result, "succeeded")


if __name__ == "__main__":
    require_sandbox()
    run()
