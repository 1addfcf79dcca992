#!/usr/bin/env python3
"""tako-vm build --local: job type environments, black-box and offline.

Every test makes its own wheels (a wheel is a zip with the package, and
METADATA, WHEEL and RECORD under NAME-VERSION.dist-info) in a temporary
directory, points pip_find_links at it, and builds into a data_dir of its
own, so nothing here needs the network or a running server."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.environ["TAKO_ROOT"], "tests/lib"))
from taplib import test, run, check  # noqa: E402
from wheels import make_wheel  # noqa: E402

TAKO = os.environ["TAKO_BIN"]
COMMAND_TIMEOUT = 300
# A cached rebuild does no more than stat a directory; this bound leaves
# room for a slow sanitizer build, and still fails if pip ran again.
CACHED_MS_MAX = 200
PYTHON = "/usr/bin/python3"


class Site:
    """A temporary data_dir, a wheel directory and a tako_vm.yaml."""

    def __init__(self, job_types):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.data_dir = os.path.join(self.root, "data")
        # pip runs as nobody in the build sandbox: the wheel directory
        # itself must be readable by others (its parents need not be).
        self.wheels = os.path.join(self.root, "wheels")
        os.mkdir(self.wheels)
        os.chmod(self.wheels, 0o755)
        make_wheel(self.wheels, "pkg", "1.0", "one")
        make_wheel(self.wheels, "pkg", "2.0", "two")
        self.config = os.path.join(self.root, "tako_vm.yaml")
        self.write(job_types)

    def write(self, job_types):
        lines = [f"data_dir: {self.data_dir}", f"pip_find_links: [{self.wheels}]", "job_types:"]
        for name, body in job_types.items():
            lines.append(f"  - name: {name}")
            lines.extend(f"    {line}" for line in body)
        with open(self.config, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TAKO_VM_") and k != "XDG_DATA_HOME"}
        env["HOME"] = self.root
        return env

    def build(self, *args):
        """tako-vm build --local --json ARGS; (rc, [outcomes], stderr)."""
        done = subprocess.run([TAKO, "--config", self.config, "build", "--local", "--json", *args],
                              cwd=self.root, env=self.env(), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return done.returncode, outcomes, done.stderr

    def envs(self):
        path = os.path.join(self.data_dir, "envs")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def leftovers(self):
        return [name for name in self.envs() if name.startswith(".tmp-")]

    def import_value(self, digest, module="pkg"):
        env_path = os.path.join(self.data_dir, "envs", digest)
        code = f"import sys; sys.path.insert(0, {env_path!r}); import {module}; print({module}.VALUE)"
        done = subprocess.run([PYTHON, "-I", "-c", code], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        return done.stdout.strip()

    def close(self):
        self.tmp.cleanup()


DATA = {"data": ["requirements: [pkg==1.0]"]}


@test
def build_installs_the_package_into_the_env_dir():
    site = Site(DATA)
    try:
        rc, outcomes, err = site.build("data")
        check(rc == 0, f"exit {rc}: {err}")
        check(len(outcomes) == 1, outcomes)
        outcome = outcomes[0]
        check(outcome["status"] == "built" and outcome["job_type"] == "data", outcome)
        check(len(outcome["digest"]) == 64, outcome)
        check(outcome["version"] == "data@sha256:" + outcome["digest"][:12], outcome)
        check(outcome["image_ref"] == "envs/" + outcome["digest"], outcome)
        check(outcome["cached"] is False, outcome)
        env_path = os.path.join(site.data_dir, "envs", outcome["digest"])
        check(os.path.isfile(os.path.join(env_path, "pkg", "__init__.py")), os.listdir(env_path))
        check(site.import_value(outcome["digest"]) == "one", "pkg 1.0 is not importable")
        check(site.leftovers() == [], site.envs())
        for phase in ("resolving", "installing", "done"):
            check(f"{phase}:" in err, f"no {phase} progress line in {err!r}")
        meta = json.load(open(os.path.join(env_path, ".tako_env.json"), encoding="utf-8"))
        check(meta["digest"] == outcome["digest"], meta)
        check(meta["spec"]["requirements"] == ["pkg==1.0"], meta)
        print(f"# first build: {outcome['duration_ms']} ms", flush=True)
    finally:
        site.close()


@test
def rebuild_is_instant_with_the_same_version():
    site = Site(DATA)
    try:
        rc, first, err = site.build("data")
        check(rc == 0, err)
        rc, again, err = site.build("data")
        check(rc == 0, err)
        check(again[0]["cached"] is True, again)
        check(again[0]["version"] == first[0]["version"], (first, again))
        check(again[0]["digest"] == first[0]["digest"], (first, again))
        check(again[0]["built_at"] == first[0]["built_at"], (first, again))
        check(again[0]["duration_ms"] <= CACHED_MS_MAX, again)
        check("installing" not in err, f"pip ran again: {err!r}")
        print(f"# cached rebuild: {again[0]['duration_ms']} ms", flush=True)
    finally:
        site.close()


@test
def missing_package_is_a_dependency_error_and_leaves_nothing():
    site = Site({"broken": ["requirements: [nosuchpkg==1.0]"]})
    try:
        rc, outcomes, err = site.build("broken")
        check(rc == 1, f"exit {rc}: {err}")
        check(outcomes == [], outcomes)
        check("dependency_error" in err, err)
        check("nosuchpkg" in err, err)
        check(site.root not in err and site.wheels not in err, f"host path in {err!r}")
        check(site.leftovers() == [], site.envs())
        check([name for name in site.envs() if not name.startswith(".")] == [], site.envs())
    finally:
        site.close()


@test
def two_concurrent_identical_builds_make_one_env():
    site = Site(DATA)
    try:
        results = [None, None]

        def build(index):
            results[index] = site.build("data")

        threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for rc, outcomes, err in results:
            check(rc == 0, f"exit {rc}: {err}")
        digests = {outcomes[0]["digest"] for _, outcomes, _ in results}
        check(len(digests) == 1, digests)
        envs = [name for name in site.envs() if not name.startswith(".")]
        check(envs == list(digests), site.envs())
        check(site.leftovers() == [], site.envs())
        check(site.import_value(envs[0]) == "one", "pkg not importable")
        # One of them installed; the other waited for it and found it built.
        check(sorted(outcomes[0]["cached"] for _, outcomes, _ in results) == [False, True],
              [outcomes for _, outcomes, _ in results])
    finally:
        site.close()


@test
def changed_job_type_gets_a_new_digest_and_keeps_the_old_env():
    site = Site(DATA)
    try:
        rc, first, err = site.build("data")
        check(rc == 0, err)
        site.write({"data": ["requirements: [pkg==2.0]"]})
        rc, second, err = site.build("data")
        check(rc == 0, err)
        check(second[0]["digest"] != first[0]["digest"], (first, second))
        check(second[0]["version"] != first[0]["version"], (first, second))
        check(site.import_value(second[0]["digest"]) == "two", "pkg 2.0 not importable")
        check(site.import_value(first[0]["digest"]) == "one", "the old env is gone")
        # A field that does not change the environment keeps the digest.
        site.write({"data": ["requirements: [pkg==2.0]", "timeout: 77"]})
        rc, third, err = site.build("data")
        check(rc == 0 and third[0]["digest"] == second[0]["digest"], (second, third, err))
        # One that does (the environment variables) changes it.
        site.write({"data": ["requirements: [pkg==2.0]", "environment: {MODE: fast}"]})
        rc, fourth, err = site.build("data")
        check(rc == 0 and fourth[0]["digest"] != second[0]["digest"], (second, fourth, err))
    finally:
        site.close()


@test
def build_all_covers_every_job_type_and_default_is_empty():
    site = Site({"data": ["requirements: [pkg==1.0]"], "plain": ["timeout: 10"]})
    try:
        rc, outcomes, err = site.build("--all")
        check(rc == 0, f"exit {rc}: {err}")
        names = sorted(outcome["job_type"] for outcome in outcomes)
        check(names == ["data", "default", "plain"], names)
        default = next(o for o in outcomes if o["job_type"] == "default")
        plain = next(o for o in outcomes if o["job_type"] == "plain")
        # No requirements: the same empty environment, whatever the name.
        check(default["digest"] == plain["digest"], (default, plain))
        env_path = os.path.join(site.data_dir, "envs", default["digest"])
        check(os.listdir(env_path) == [".tako_env.json"], os.listdir(env_path))
    finally:
        site.close()


@test
def unknown_job_type_and_usage_errors():
    site = Site(DATA)
    try:
        rc, outcomes, err = site.build("nope")
        check(rc == 1 and "unknown job type" in err, f"exit {rc}: {err}")
        rc, outcomes, err = site.build()
        check(rc == 2, f"exit {rc}: {err}")
        rc, outcomes, err = site.build("data", "--bogus")
        check(rc == 2, f"exit {rc}: {err}")
    finally:
        site.close()


def builder_in_registry():
    """True once `tako-vm actor builder` is a known actor (the registry
    in shared/tako_actors.c lists it): an unknown actor is refused at
    once, a known one starts and waits for its broker."""
    with tempfile.TemporaryDirectory() as root:
        config = os.path.join(root, "tako_vm.yaml")
        with open(config, "w", encoding="utf-8") as file:
            file.write(f"data_dir: {root}/data\nbroker_endpoint: tcp://127.0.0.1:1\n")
        probe = subprocess.Popen([TAKO, "--config", config, "actor", "builder"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        try:
            _, err = probe.communicate(timeout=3)
            return "unknown actor" not in err
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.communicate()
            return True


@test
def build_through_the_server():
    if not builder_in_registry():
        print("# skipped: the builder is not in the actor registry yet", flush=True)
        return
    from lib_server import Server  # noqa: E402 - needs the registry line
    wheels = tempfile.mkdtemp(prefix="wheels-", dir=os.environ.get("TAKO_BUILD", "/tmp"))
    os.chmod(wheels, 0o755)
    make_wheel(wheels, "pkg", "1.0", "one")
    server = Server(extra_config=f"pip_find_links: [{wheels}]\n"
                                 "job_types:\n"
                                 "  - name: data\n    requirements: [pkg==1.0]\n"
                                 "  - name: broken\n    requirements: [nosuchpkg==1.0]\n")
    try:
        server.wait_ready()
        done = server.command("build", "data", "--version-tag", "v1")
        check(done.returncode == 0, f"exit {done.returncode}: {done.stderr}\n{server.tail()}")
        for phase in ("resolving", "installing", "done"):
            check(f"{phase}:" in done.stderr, f"no {phase} progress line in {done.stderr!r}")
        check("data@sha256:" in done.stdout, done.stdout)
        again = server.command("build", "data", "--json")
        check(again.returncode == 0, again.stderr)
        outcome = json.loads(again.stdout)
        check(outcome["cached"] is True and outcome["version"] in done.stdout, (done.stdout, outcome))
        failed = server.command("build", "broken")
        check(failed.returncode == 1 and "dependency_error" in failed.stderr, failed.stderr)
        check("nosuchpkg" in failed.stderr and wheels not in failed.stderr, failed.stderr)
        unknown = server.command("build", "nope")
        check(unknown.returncode == 1 and "unknown job type" in unknown.stderr, unknown.stderr)
    finally:
        server.close()
        shutil.rmtree(wheels, ignore_errors=True)


run()
