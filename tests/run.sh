#!/usr/bin/env bash
# Run every test suite against one build directory and print one summary.
#
#   tests/run.sh [BUILD_DIR] [SUITE...]
#
# Suites: unit (Criterion: every class self-test and tests/unit/*.c),
# then every executable tests/integration/test_* and tests/hostile/test_*,
# in name order, then the hostile suites again with every job's interpreter
# forked from a zygote (suite "zygote" selects that pass). Each suite speaks TAP ("ok N - name" / "not ok N - name");
# this script counts the lines and ends with "N passed, N failed".
set -u
BUILD=${1:-build/asan}
shift || true
ONLY=("$@")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export TAKO_BUILD="$ROOT/$BUILD"
export TAKO_BIN="$ROOT/$BUILD/tako-vm"
export TAKO_ROOT="$ROOT"
# LeakSanitizer cannot work under ptrace-less namespaces; leaks are checked
# in unit tests (valgrind) instead. Abort on the first ASan/UBSan error.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
SUITE_TIMEOUT=${TAKO_SUITE_TIMEOUT:-900}
LOGDIR="$ROOT/$BUILD/test-logs"
mkdir -p "$LOGDIR"

# One private PostgreSQL (unix socket only) for every suite that needs a
# database; stopped when the run ends.
if [ -z "${TAKO_TEST_DATABASE_URL:-}" ]; then
  TAKO_TEST_DATABASE_URL=$("$TAKO_BIN" dev up --data-dir "$TAKO_BUILD/testdb" 2>"$LOGDIR/testdb.err") \
    || { cat "$LOGDIR/testdb.err"; echo "tests: cannot start the test database"; echo "0 passed, 1 failed"; exit 1; }
  export TAKO_TEST_DATABASE_URL
  trap '"$TAKO_BIN" dev down --data-dir "$TAKO_BUILD/testdb" >/dev/null 2>&1' EXIT
fi

passed=0; failed=0; failed_names=()

wanted() {
  [ ${#ONLY[@]} -eq 0 ] && return 0
  for o in "${ONLY[@]}"; do [[ "$1" == *"$o"* ]] && return 0; done
  return 1
}

# count_tap SUITE LOGFILE EXIT_CODE
count_tap() {
  local suite=$1 log=$2 rc=$3 p f
  p=$(grep -cE '^ok( [0-9]+)? -' "$log")
  f=$(grep -cE '^not ok( [0-9]+)? -' "$log")
  passed=$((passed + p)); failed=$((failed + f))
  while IFS= read -r line; do failed_names+=("$suite: ${line#not ok }"); done \
    < <(grep -E '^not ok( [0-9]+)? -' "$log")
  # A suite that crashed or timed out without reporting a failure still fails.
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    failed=$((failed + 1)); failed_names+=("$suite: exited with status $rc")
  fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$rc" -eq 0 ]; then
    failed=$((failed + 1)); failed_names+=("$suite: ran no test")
  fi
  printf '%-32s %4d passed, %d failed (rc=%d)\n' "$suite" "$p" "$f" "$rc"
}

if wanted unit; then
  log="$LOGDIR/unit.tap"
  timeout "$SUITE_TIMEOUT" "$BUILD/tako-unit" --tap="$log" -j2 >"$LOGDIR/unit.out" 2>&1
  rc=$?
  grep -E '^(not ok|# )' "$log" | head -40
  count_tap unit "$log" $rc
fi

for t in tests/integration/test_* tests/hostile/test_*; do
  [ -x "$t" ] || continue
  wanted "$t" || continue
  name=${t#tests/}
  log="$LOGDIR/$(echo "$name" | tr '/' '_').tap"
  timeout "$SUITE_TIMEOUT" "$t" >"$log" 2>"$log.err"
  rc=$?
  grep -E '^not ok' "$log" | head -20
  [ $rc -ne 0 ] && tail -n 15 "$log.err"
  count_tap "$name" "$log" $rc
done

# The hostile suites once more, every job's interpreter forked from a
# zygote (tako_zygote.h: how warm pools and the jobs they cannot serve
# start) instead of exec'd: the same attacks against the other way in.
for t in tests/hostile/test_*; do
  [ -x "$t" ] || continue
  wanted "$t" || wanted zygote || continue
  name="${t#tests/} (zygote)"
  log="$LOGDIR/$(echo "${t#tests/}" | tr '/' '_').zygote.tap"
  TAKO_HOSTILE_ZYGOTE=1 timeout "$SUITE_TIMEOUT" "$t" >"$log" 2>"$log.err"
  rc=$?
  grep -E '^not ok' "$log" | head -20
  [ $rc -ne 0 ] && tail -n 15 "$log.err"
  count_tap "$name" "$log" $rc
done

echo
if [ ${#failed_names[@]} -gt 0 ]; then
  echo "failures:"
  printf '  %s\n' "${failed_names[@]}"
  echo "(logs in $LOGDIR)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
