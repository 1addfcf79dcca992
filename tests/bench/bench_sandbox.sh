#!/usr/bin/env bash
# Cold sandbox run of print(1+1) against bare /usr/bin/python3 -c 'print(1+1)',
# interleaved so both see the same machine load. Prints p50/p90 and the ratio;
# informative, never pass/fail. Uses the normal (non-ASan) build. When
# runsc is installed, a container_runtime: runsc run is measured too.
#
#   tests/bench/bench_sandbox.sh [BUILD_DIR] [N]
set -u
BUILD=${1:-build}
N=${2:-30}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TAKO="$ROOT/$BUILD/tako-vm"
[ -x "$TAKO" ] || { echo "bench_sandbox: build $TAKO first (make)"; exit 1; }
exec python3 - "$TAKO" "$N" <<'PY'
import os, statistics, subprocess, sys, tempfile, time
tako, n = sys.argv[1], int(sys.argv[2])
with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
    f.write("print(1+1)\n")
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as runsc_config:
    runsc_config.write("container_runtime: runsc\nsecurity_mode: strict\n")
sandbox_cmd = [tako, "sandbox", f.name]
runsc_cmd = [tako, "--config", runsc_config.name, "sandbox", f.name]
has_runsc = any(os.access(p, os.X_OK) for p in ("/usr/bin/runsc", "/usr/local/bin/runsc", "/usr/sbin/runsc"))
bare_cmd = ["/usr/bin/python3", "-c", "print(1+1)"]
def once(cmd):
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, timeout=60)
    if done.returncode != 0:
        sys.exit(f"bench_sandbox: {cmd[0]} failed: {done.stderr.decode()[-500:]}")
    return (time.perf_counter() - start) * 1000
once(sandbox_cmd); once(bare_cmd)          # warm the page cache
if has_runsc:
    once(runsc_cmd)
sandbox, bare, runsc = [], [], []
for _ in range(n):
    sandbox.append(once(sandbox_cmd))
    bare.append(once(bare_cmd))
    if has_runsc:
        runsc.append(once(runsc_cmd))
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
for name, values in (("sandbox", sandbox), ("runsc", runsc), ("bare python", bare)):
    if values:
        print(f"{name:12s} n={len(values)} p50={pct(values, 50):7.1f} ms  p90={pct(values, 90):7.1f} ms")
print(f"ratio p50 {pct(sandbox, 50) / pct(bare, 50):.2f}x  p90 {pct(sandbox, 90) / pct(bare, 90):.2f}x")
if runsc:
    print(f"runsc ratio p50 {pct(runsc, 50) / pct(bare, 50):.2f}x  p90 {pct(runsc, 90) / pct(bare, 90):.2f}x")
os.unlink(f.name)
os.unlink(runsc_config.name)
PY
