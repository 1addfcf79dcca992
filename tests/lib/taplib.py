"""Minimal TAP test helper for black-box tests (stdlib only).

    from taplib import test, run, check

    @test
    def config_rejects_bad_pids_limit():
        check(rc == 1, f"expected exit 1, got {rc}")

    run()   # prints "ok N - name" / "not ok N - name" and exits 0 or 1

Each test is a function; an AssertionError (or any exception) fails it and
its message is printed as a TAP diagnostic. A test that calls
skip("reason") is reported as "ok N - name # SKIP reason". Set
TAP_ONLY=substring to run a subset.
"""
import os
import sys
import time
import traceback

_tests = []


def test(fn):
    _tests.append(fn)
    return fn


class Skip(Exception):
    """Raised by skip(): the test does not apply here."""


def skip(reason):
    raise Skip(reason)


def check(condition, message="check failed"):
    if not condition:
        raise AssertionError(message)


def wait_for(predicate, timeout=10.0, interval=0.01, what="condition"):
    """Poll predicate until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run():
    only = os.environ.get("TAP_ONLY")
    selected = [t for t in _tests if not only or only in t.__name__]
    print(f"1..{len(selected)}", flush=True)
    failures = 0
    for number, fn in enumerate(selected, 1):
        started = time.monotonic()
        try:
            fn()
            print(f"ok {number} - {fn.__name__} ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
        except Skip as reason:
            print(f"ok {number} - {fn.__name__} # SKIP {reason}", flush=True)
        except Exception as error:  # noqa: BLE001 - any failure is a test failure
            failures += 1
            print(f"not ok {number} - {fn.__name__}", flush=True)
            for line in (str(error) or type(error).__name__).splitlines()[:20]:
                print(f"#   {line}", flush=True)
            if not isinstance(error, AssertionError):
                for line in traceback.format_exc().splitlines()[-6:]:
                    print(f"#   {line}", flush=True)
    sys.exit(1 if failures else 0)
