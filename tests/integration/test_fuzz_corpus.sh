#!/usr/bin/env bash
# Replay every libFuzzer harness over its seed corpus (tests/fuzz/seeds/NAME)
# and the corpus earlier `make fuzz` runs grew: a regression check that any
# input which once crashed a decoder stays fixed. Real fuzzing is `make fuzz`.
set -u
cd "$TAKO_ROOT"
harnesses=$(ls tests/fuzz/fuzz_*.c 2>/dev/null)
echo "1..$(echo "$harnesses" | grep -c .)"
n=0; failed=0
for src in $harnesses; do
  n=$((n + 1))
  name=$(basename "$src" .c)
  if ! make -s "build/fuzz/$name" >"$TAKO_BUILD/test-logs/$name-build.log" 2>&1; then
    echo "not ok $n - $name builds"; failed=$((failed + 1)); continue
  fi
  # libFuzzer adds new inputs to the FIRST directory: keep that one in build/.
  if [ -z "$(ls -A "tests/fuzz/seeds/$name" 2>/dev/null)" ]; then
    echo "not ok $n - $name has no seed corpus in tests/fuzz/seeds/$name"; failed=$((failed + 1)); continue
  fi
  mkdir -p "build/fuzz/corpus/$name"
  dirs="build/fuzz/corpus/$name tests/fuzz/seeds/$name"
  if timeout 300 "build/fuzz/$name" -runs=0 $dirs >"$TAKO_BUILD/test-logs/$name.log" 2>&1 \
     && timeout 120 "build/fuzz/$name" -runs=20000 -seed=1 -rss_limit_mb=1024 -max_len=65536 $dirs \
        >>"$TAKO_BUILD/test-logs/$name.log" 2>&1; then
    echo "ok $n - $name replays its corpus and 20000 mutations"
  else
    failed=$((failed + 1)); echo "not ok $n - $name"; tail -5 "$TAKO_BUILD/test-logs/$name.log" | sed 's/^/# /'
  fi
done
[ $failed -eq 0 ]
