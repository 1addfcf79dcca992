#!/usr/bin/env python3
"""tako-vm config / tako-vm validate, black-box.

Every run happens in a fresh temporary directory with a clean
environment (no TAKO_VM_* from the caller, HOME inside the temp dir), so
no stray tako_vm.yaml on the machine can change the outcome."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
from taplib import test, run, check  # noqa: E402

TAKO = os.environ["TAKO_BIN"]
ROOT = os.environ["TAKO_ROOT"]
EXAMPLE = os.path.join(ROOT, "tako_vm.yaml.example")
COMMAND_TIMEOUT = 60


def clean_env(home, **overrides):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAKO_VM_") and k != "XDG_DATA_HOME"}
    env["HOME"] = home
    env.update(overrides)
    return env


def tako(*args, cwd, env=None):
    """Run tako-vm; returns (exit code, stdout, stderr)."""
    done = subprocess.run([TAKO, *args], cwd=cwd, env=env or clean_env(cwd),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return path


@test
def validate_example_exits_0():
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = tako("validate", EXAMPLE, cwd=tmp)
        check(rc == 0, f"expected exit 0, got {rc}: {err}")
        check(out.strip() == f"{EXAMPLE}: OK", f"unexpected output {out!r}")


@test
def pids_limit_5_on_line_3_fails_naming_option_and_line():
    with tempfile.TemporaryDirectory() as tmp:
        path = write(tmp, "tako_vm.yaml", "log_level: INFO\nmax_workers: 4\n"
                                          "container_limits: {pids_limit: 5}\n")
        rc, out, err = tako("validate", path, cwd=tmp)
        check(rc == 1, f"expected exit 1, got {rc}")
        check(f"{path}:3: container_limits.pids_limit: 5 is out of range (10–1000)" in err,
              f"error line missing in: {err!r}")
        # The same file found by the search order gives the same error.
        rc, out, err = tako("validate", cwd=tmp)
        check(rc == 1 and "tako_vm.yaml:3:" in err and "pids_limit" in err, err)
        rc, out, err = tako("config", cwd=tmp)
        check(rc == 1 and "pids_limit" in err, f"config should fail too: {rc} {err!r}")


@test
def env_override_shows_in_config_json():
    with tempfile.TemporaryDirectory() as tmp:
        env = clean_env(tmp, TAKO_VM_API_RATE_LIMIT_REQUESTS="77")
        rc, out, err = tako("config", "--json", cwd=tmp, env=env)
        check(rc == 0, f"exit {rc}: {err}")
        effective = json.loads(out)
        check(effective["api_rate_limit_requests"] == 77, f"got {effective['api_rate_limit_requests']}")
        check(effective["data_dir"] == os.path.join(tmp, ".tako_vm"), effective["data_dir"])


@test
def bad_env_value_names_the_variable():
    with tempfile.TemporaryDirectory() as tmp:
        env = clean_env(tmp, TAKO_VM_ENABLE_SECCOMP="perhaps")
        rc, out, err = tako("config", "--json", cwd=tmp, env=env)
        check(rc == 1, f"expected exit 1, got {rc}")
        check("TAKO_VM_ENABLE_SECCOMP" in err, err)


@test
def config_flag_beats_tako_vm_config():
    with tempfile.TemporaryDirectory() as tmp:
        from_env = write(tmp, "from-env.yaml", "max_workers: 3\n")
        explicit = write(tmp, "explicit.yaml", "max_workers: 9\n")
        write(tmp, "tako_vm.yaml", "max_workers: 5\n")
        env = clean_env(tmp, TAKO_VM_CONFIG=from_env)
        rc, out, err = tako("--config", explicit, "config", "--json", cwd=tmp, env=env)
        check(rc == 0, f"exit {rc}: {err}")
        check(json.loads(out)["max_workers"] == 9, out)
        check(explicit in err, f"file used not named: {err!r}")
        # Without --config, TAKO_VM_CONFIG beats ./tako_vm.yaml ...
        rc, out, err = tako("config", "--json", cwd=tmp, env=env)
        check(rc == 0 and json.loads(out)["max_workers"] == 3, out)
        # ... which beats the defaults.
        rc, out, err = tako("config", "--json", cwd=tmp)
        check(rc == 0 and json.loads(out)["max_workers"] == 5, out)


@test
def missing_explicit_file_is_an_error():
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = tako("--config", "nope.yaml", "config", cwd=tmp)
        check(rc == 1 and "nope.yaml" in err, f"{rc} {err!r}")
        rc, out, err = tako("validate", "nope.yaml", cwd=tmp)
        check(rc == 1 and "nope.yaml" in err, f"{rc} {err!r}")
        env = clean_env(tmp, TAKO_VM_CONFIG=os.path.join(tmp, "gone.yaml"))
        rc, out, err = tako("validate", cwd=tmp, env=env)
        check(rc == 1 and "TAKO_VM_CONFIG" in err, f"{rc} {err!r}")


@test
def no_file_means_defaults():
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = tako("validate", cwd=tmp)
        check(rc == 0 and "OK" in out, f"{rc} {out!r} {err!r}")
        rc, out, err = tako("config", cwd=tmp)
        check(rc == 0, err)
        check("# source: no file found" in out, out[:200])
        check("server_host: \"127.0.0.1\"" in out and "pids_limit: 100" in out, out)


@test
def show_defaults_ignores_files_and_env():
    with tempfile.TemporaryDirectory() as tmp:
        write(tmp, "tako_vm.yaml", "max_workers: 7\n")
        env = clean_env(tmp, TAKO_VM_SERVER_PORT="9999")
        rc, out, err = tako("config", "--show-defaults", "--json", cwd=tmp, env=env)
        check(rc == 0, err)
        effective = json.loads(out)
        check(effective["max_workers"] == 4 and effective["server_port"] == 8000, out)
        check([t["name"] for t in effective["job_types"]] == ["default"], out)


@test
def api_keys_are_shown_only_as_hashes():
    with tempfile.TemporaryDirectory() as tmp:
        secret = "plain-secret-key-for-the-test-123"
        path = write(tmp, "keys.yaml", f"api_keys:\n  - \"{secret}\"\n")
        for extra in ([], ["--json"]):
            rc, out, err = tako("--config", path, "config", *extra, cwd=tmp)
            check(rc == 0, err)
            check(secret not in out and secret not in err, "plain key leaked")
            check("sha256:" in out, out)
            check("plain API key hashed" in err, err)


@test
def every_error_is_listed():
    with tempfile.TemporaryDirectory() as tmp:
        path = write(tmp, "bad.yaml",
                     "max_workers: 0\n"
                     "log_levl: INFO\n"
                     "docker_image: code-executor:latest\n"
                     "job_types:\n"
                     "  - name: x\n"
                     "    requirements: [\"--index-url=http://evil\"]\n")
        rc, out, err = tako("validate", path, cwd=tmp)
        check(rc == 1, f"exit {rc}")
        for expected in (f"{path}:1: max_workers:", f"{path}:2: log_levl: unknown option",
                         "did you mean log_level?", f"{path}:3: docker_image is not used",
                         f"{path}:6: job_types[x].requirements[0]:"):
            check(expected in err, f"missing {expected!r} in {err!r}")


@test
def help_and_usage():
    with tempfile.TemporaryDirectory() as tmp:
        for command in ("config", "validate"):
            rc, out, err = tako(command, "--help", cwd=tmp)
            check(rc == 0 and f"usage: tako-vm {command}" in out, f"{command}: {rc} {out!r}")
        rc, out, err = tako("help", "config", cwd=tmp)
        check(rc == 0 and "--show-defaults" in out, out)
        rc, out, err = tako("config", "--bogus", cwd=tmp)
        check(rc == 2, f"config --bogus: exit {rc}")
        rc, out, err = tako("validate", "a.yaml", "b.yaml", cwd=tmp)
        check(rc == 2, f"validate with two files: exit {rc}")


run()
