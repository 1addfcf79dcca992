#!/usr/bin/env python3
"""Hostile jobs that go straight at kernel interfaces with raw x86_64
syscalls (ctypes): keyrings, io_uring, vsock, namespaces, ptrace, bpf,
perf, userfaultfd, modules, kexec, TIOCSTI, 32-bit and x32 entry points,
personality, capabilities and uid mapping. Each call runs in a forked
child so a seccomp KILL takes only the child; "blocked" means SIGSYS or
-1 with EPERM/ENOSYS/EACCES."""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/hostile free of __pycache__
sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import test, run, check  # noqa: E402
from lib_hostile import (hostile, report_of, expect_status, assert_blocked, blocked,  # noqa: E402
                         require_sandbox, SANDBOX_UID_FLOOR)

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
NR = {
    "ptrace": 101, "personality": 135, "init_module": 175, "delete_module": 176,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "unshare": 272, "perf_event_open": 298, "setns": 308, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "clone": 56, "clone3": 435, "getpid": 39, "ioctl": 16, "open_by_handle_at": 304,
}
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000
X32_SYSCALL_BIT = 0x40000000


def syscall_case(body, **kwargs):
    """Run `outcome = ...` job code; assert the outcome was blocked."""
    result = hostile(body + "\nreport({'outcome': outcome})\n", **kwargs)
    assert_blocked(result)
    expect_status(result, "succeeded")
    return result


@test
def keyctl_and_add_key_blocked():
    result = hostile(f"""
KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING = -3, -4
KEYCTL_JOIN_SESSION_KEYRING = 1
report({{
    "add_key": try_syscall({NR['add_key']}, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"tako-probe"),
                            ctypes.c_char_p(b"secret"), 6, KEY_SPEC_USER_KEYRING),
    "keyctl": try_syscall({NR['keyctl']}, KEYCTL_JOIN_SESSION_KEYRING, ctypes.c_char_p(b"tako-probe")),
    "request_key": try_syscall({NR['request_key']}, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"tako-probe"),
                                0, KEY_SPEC_SESSION_KEYRING),
}})
""")
    rep = report_of(result)
    for name in ("add_key", "keyctl", "request_key"):
        check(blocked(rep[name]), f"{name} not blocked: {rep[name]}")
    expect_status(result, "succeeded")


@test
def io_uring_setup_blocked():
    syscall_case(f"""
params = (ctypes.c_char * 120)()
outcome = try_syscall({NR['io_uring_setup']}, 4, params)
""")


@test
def vsock_socket_blocked():
    result = hostile("""
def make():
    try:
        s = socket.socket(40, socket.SOCK_STREAM)
        s.close()
        return {"ret": 0, "errno": 0}
    except OSError as e:
        return {"ret": -1, "errno": e.errno}
report({"outcome": in_child(make)})
""")
    rep = report_of(result)["outcome"]
    value = rep.get("value") or {}
    # EAFNOSUPPORT is fine too: the kernel has no vsock at all.
    check(blocked(rep) or value.get("errno") == 97, f"AF_VSOCK socket not blocked: {rep}")


@test
def unshare_newuser_blocked():
    syscall_case(f"outcome = try_syscall({NR['unshare']}, {CLONE_NEWUSER})")


@test
def unshare_newns_newnet_blocked():
    syscall_case(f"outcome = try_syscall({NR['unshare']}, {CLONE_NEWNS | CLONE_NEWNET})")


@test
def clone_with_newns_blocked():
    # Raw clone without CLONE_VM behaves like fork; a child that appears
    # exits at once.
    syscall_case(f"""
def attempt():
    ret, err = syscall({NR['clone']}, {CLONE_NEWNS | CLONE_NEWUSER} | signal.SIGCHLD, 0, 0, 0, 0)
    if ret == 0:
        os._exit(0)
    if ret > 0:
        os.waitpid(ret, 0)
    return {{"ret": ret, "errno": err}}
outcome = in_child(attempt)
""")


@test
def clone3_with_namespaces_blocked():
    # seccomp cannot read clone3's flags (they sit behind a pointer), so a
    # deny-list must refuse clone3 outright (ENOSYS makes libc fall back).
    syscall_case(f"""
import struct
def attempt():
    args = struct.pack("<11Q", {CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID}, 0, 0, 0, signal.SIGCHLD, 0, 0, 0, 0, 0, 0)
    buf = ctypes.create_string_buffer(args, len(args))
    ret, err = syscall({NR['clone3']}, buf, len(args))
    if ret == 0:
        os._exit(0)
    if ret > 0:
        os.waitpid(ret, 0)
    return {{"ret": ret, "errno": err}}
outcome = in_child(attempt)
""")


@test
def setns_blocked():
    syscall_case(f"""
def attempt():
    fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    ret, err = syscall({NR['setns']}, fd, 0)
    return {{"ret": ret, "errno": err}}
outcome = in_child(attempt)
""")


@test
def ptrace_traceme_blocked():
    syscall_case(f"outcome = try_syscall({NR['ptrace']}, 0, 0, 0, 0)")


@test
def ptrace_attach_sibling_blocked():
    syscall_case(f"""
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
victim = os.fork()
if victim == 0:
    time.sleep(30)
    os._exit(0)
outcome = try_syscall({NR['ptrace']}, PTRACE_SEIZE, victim, 0, 0)
attach = try_syscall({NR['ptrace']}, PTRACE_ATTACH, victim, 0, 0)
os.kill(victim, signal.SIGKILL)
os.waitpid(victim, 0)
if not (attach.get("signal") == 31 or (attach["value"] or {{}}).get("ret") == -1):
    outcome = attach
""")


@test
def bpf_blocked():
    syscall_case(f"""
import struct
BPF_MAP_CREATE, BPF_MAP_TYPE_ARRAY = 0, 2
attr = struct.pack("<4I", BPF_MAP_TYPE_ARRAY, 4, 4, 1) + bytes(128 - 16)
buf = ctypes.create_string_buffer(attr, len(attr))
outcome = try_syscall({NR['bpf']}, BPF_MAP_CREATE, buf, len(attr))
""")


@test
def perf_event_open_blocked():
    # User-space-only self counting is allowed by perf_event_paranoid=2, so
    # only seccomp stands in the way here.
    syscall_case(f"""
import struct
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, ATTR_SIZE = 1, 0, 128
EXCLUDE_KERNEL, EXCLUDE_HV = 1 << 5, 1 << 6
attr = struct.pack("<IIQQQQQ", PERF_TYPE_SOFTWARE, ATTR_SIZE, PERF_COUNT_SW_CPU_CLOCK, 0, 0, 0,
                   EXCLUDE_KERNEL | EXCLUDE_HV)
attr += bytes(ATTR_SIZE - len(attr))
buf = ctypes.create_string_buffer(attr, len(attr))
outcome = try_syscall({NR['perf_event_open']}, buf, 0, -1, -1, 0)
""")


@test
def userfaultfd_blocked():
    # UFFD_USER_MODE_ONLY works without privilege, so only seccomp refuses.
    syscall_case(f"outcome = try_syscall({NR['userfaultfd']}, os.O_CLOEXEC | 1)")


@test
def module_loading_blocked():
    result = hostile(f"""
fd = os.open("/dev/null", os.O_RDONLY)
report({{
    "init_module": try_syscall({NR['init_module']}, 0, 0, ctypes.c_char_p(b"")),
    "finit_module": try_syscall({NR['finit_module']}, fd, ctypes.c_char_p(b""), 0),
    "delete_module": try_syscall({NR['delete_module']}, ctypes.c_char_p(b"tako_probe"), 0),
}})
""")
    for name, outcome in report_of(result).items():
        check(blocked(outcome), f"{name} not blocked: {outcome}")


@test
def kexec_blocked():
    result = hostile(f"""
report({{
    "kexec_load": try_syscall({NR['kexec_load']}, 0, 0, 0, 0),
    "kexec_file_load": try_syscall({NR['kexec_file_load']}, -1, -1, 0, ctypes.c_char_p(b""), 0),
}})
""")
    for name, outcome in report_of(result).items():
        check(blocked(outcome), f"{name} not blocked: {outcome}")


TIOCSTI = 0x5412


TIOCSTI_CODE = r'''
import fcntl, termios
def inject(request):
    """In a child: a new session whose controlling terminal is a fresh pty
    (so the kernel's own checks allow TIOCSTI), then the raw ioctl. Falls
    back to fd 0 when the sandbox has no /dev/ptmx."""
    def attempt():
        os.setsid()
        fd = 0
        try:
            master, slave = os.openpty()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            fd = slave
        except OSError:
            pass
        c = ctypes.c_char(b"x")
        ret, err = syscall(16, fd, request, ctypes.byref(c))
        return {"ret": ret, "errno": err, "fd": fd}
    return in_child(attempt)
'''


@test
def tiocsti_blocked():
    syscall_case(TIOCSTI_CODE + f"outcome = inject({TIOCSTI})\n")


@test
def tiocsti_with_high_bits_blocked():
    # The kernel truncates the ioctl request to 32 bits; a filter that
    # compares all 64 bits lets TIOCSTI | (1 << 32) through.
    syscall_case(TIOCSTI_CODE + f"outcome = inject({TIOCSTI | (1 << 32)})\n")


# i386 machine code run through ctypes: push rbx; mov eax, NR;
# mov ebx, ARG; int 0x80; pop rbx; ret (rbx is callee-saved). The result comes back in eax as -errno or a value.
INT80_CODE = r'''
import mmap, struct
def int80(nr, arg):
    code = (b"\x53\xb8" + struct.pack("<I", nr) + b"\xbb" + struct.pack("<I", arg)
            + b"\xcd\x80\x5b\xc3")
    def attempt():
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        m.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        ret = ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
        if ret < 0:
            return {"ret": -1, "errno": -ret}
        return {"ret": ret, "errno": 0}
    return in_child(attempt)
'''


def int80_blocked(outcome):
    # SIGSEGV: the machine has no usable 32-bit entry (ia32 emulation off,
    # or a hypervisor that faults `int 0x80`, as on the PVM CI hosts), so
    # the seccomp architecture check is not exercised: say so in TAP.
    if outcome.get("signal") == 11:
        print("# note: int 0x80 faults on this machine (SIGSEGV) even outside a sandbox; "
              "the seccomp i386 filter is not exercised here", flush=True)
        return True
    return blocked(outcome)


@test
def int80_i386_getpid_blocked():
    result = hostile(INT80_CODE + "report({'outcome': int80(20, 0)})\n")
    outcome = report_of(result)["outcome"]
    check(int80_blocked(outcome), f"i386 getpid via int 0x80 went through: {outcome}")


@test
def int80_i386_unshare_blocked():
    # The deny-list bypass that matters: i386 unshare (310) with CLONE_NEWUSER.
    result = hostile(INT80_CODE + f"report({{'outcome': int80(310, {CLONE_NEWUSER})}})\n")
    outcome = report_of(result)["outcome"]
    check(int80_blocked(outcome), f"i386 unshare(CLONE_NEWUSER) via int 0x80 went through: {outcome}")


@test
def x32_syscall_blocked():
    syscall_case(f"outcome = try_syscall({NR['getpid'] | X32_SYSCALL_BIT})")


@test
def personality_read_implies_exec_blocked():
    result = hostile(f"""
READ_IMPLIES_EXEC, QUERY = 0x0400000, 0xffffffff
def attempt():
    ret, err = syscall({NR['personality']}, READ_IMPLIES_EXEC)
    now, _ = syscall({NR['personality']}, QUERY)
    return {{"ret": ret, "errno": err, "now": now}}
report({{"outcome": in_child(attempt)}})
""")
    outcome = report_of(result)["outcome"]
    value = outcome.get("value") or {}
    applied = value.get("now") is not None and value["now"] != -1 and value["now"] & 0x0400000
    check(blocked(outcome) and not applied, f"personality(READ_IMPLIES_EXEC) not blocked: {outcome}")


@test
def capabilities_all_dropped():
    result = hostile("""
with open("/proc/self/status") as f:
    status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
report({k: status.get(k, "").strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                               "NoNewPrivs", "Seccomp")})
""")
    rep = report_of(result)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        check(rep[cap] and int(rep[cap], 16) == 0, f"{cap} not empty: {rep}")
    check(rep["NoNewPrivs"] == "1", f"no_new_privs not set: {rep}")
    check(rep["Seccomp"] == "2", f"seccomp filter not active: {rep}")


@test
def uid_not_root_inside_or_outside():
    result = hostile("""
def read(path):
    with open(path) as f:
        return f.read().split()
report({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
        "uid_map": read("/proc/self/uid_map"), "gid_map": read("/proc/self/gid_map")})
""")
    rep = report_of(result)
    check(rep["uid"] != 0 and rep["euid"] != 0, f"job runs as root inside: {rep}")
    uid_map = [int(x) for x in rep["uid_map"]]
    check(len(uid_map) == 3, f"uid_map should map one range: {rep}")
    inside, outside, count = uid_map
    check(outside >= SANDBOX_UID_FLOOR, f"job maps to a host account uid {outside}: {rep}")
    check(not (inside <= 0 < inside + count and outside == 0), f"host root mapped in: {rep}")
    gid_map = [int(x) for x in rep["gid_map"]]
    check(len(gid_map) == 3 and gid_map[1] >= SANDBOX_UID_FLOOR, f"gid maps to a host group: {rep}")


@test
def setuid_root_fails():
    result = hostile("""
report({"setuid": oserror_of(lambda: os.setuid(0)), "setgid": oserror_of(lambda: os.setgid(0)),
        "setgroups": oserror_of(lambda: os.setgroups([0])),
        "setresuid": oserror_of(lambda: os.setresuid(0, 0, 0)), "uid": os.getuid()})
""")
    rep = report_of(result)
    for name in ("setuid", "setgid", "setgroups", "setresuid"):
        check(rep[name] in (1, 22), f"{name}(0) not refused: {rep}")
    check(rep["uid"] != 0, f"uid became 0: {rep}")


@test
def open_by_handle_at_blocked():
    # The classic container escape (shocker): needs CAP_DAC_READ_SEARCH in
    # the host namespace, and should not be reachable at all.
    syscall_case(f"""
import struct
FILEID_INO32_GEN = 1
handle = ctypes.create_string_buffer(struct.pack("<Ii", 8, FILEID_INO32_GEN) + struct.pack("<II", 2, 0), 16)
outcome = try_syscall({NR['open_by_handle_at']}, -100, handle, 0)
""")


@test
def clock_settime_fails():
    # Sets the clock to what it already reads: harmless if it went through.
    syscall_case("""
class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
ts = timespec()
_libc.clock_gettime(0, ctypes.byref(ts))
outcome = try_syscall(227, 0, ctypes.byref(ts))
""")


@test
def reboot_blocked():
    # LINUX_REBOOT_CMD_CAD_OFF only changes what ctrl-alt-del does.
    syscall_case("outcome = try_syscall(169, 0xfee1dead, 672274793, 0, 0)")


@test
def kernel_log_unreadable():
    syscall_case("""
buf = ctypes.create_string_buffer(4096)
SYSLOG_ACTION_READ_ALL = 3
outcome = try_syscall(103, SYSLOG_ACTION_READ_ALL, buf, 4096)
""")


@test
def priority_cannot_be_raised():
    result = hostile("""
report({"nice": oserror_of(lambda: os.setpriority(os.PRIO_PROCESS, 0, -10)),
        "rt": oserror_of(lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10)))})
""")
    rep = report_of(result)
    check(rep["nice"] in (1, 13), f"negative nice allowed: {rep}")
    check(rep["rt"] in (1, 13), f"real-time scheduling allowed: {rep}")


if __name__ == "__main__":
    require_sandbox()
    run()
