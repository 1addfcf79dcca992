#!/usr/bin/env bash
# The sandbox's first process is a raw clone of one thread of a
# multi-threaded host: glibc still believes the host's other threads exist.
# Any glibc wrapper that acts on "every thread" (setuid family, setgroups)
# waits for them forever — a real hang seen once in a few hundred starts.
# The child path must use raw system calls for those; this checks the
# sandbox sources never call the wrappers.
set -u
cd "$TAKO_ROOT"
echo "1..1"
hits=$(grep -nE '(^|[^_A-Za-z])(setresuid|setresgid|setreuid|setregid|setuid|setgid|seteuid|setegid|setgroups|initgroups)[[:space:]]*\(' \
         actors/executor/sandbox_*.c | grep -vE '^\S+:[0-9]+:[[:space:]]*//')
if [ -z "$hits" ]; then
  echo "ok 1 - the sandbox child calls no glibc set*id/setgroups wrapper"
else
  echo "not ok 1 - the sandbox child calls no glibc set*id/setgroups wrapper"
  echo "$hits" | sed 's/^/# /'
fi
