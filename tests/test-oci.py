#!/usr/bin/env python3
"""Guest test of images through an OCI registry and as offline bundles
(issue 16). A real registry (Debian's docker-registry on 127.0.0.1, a free
port, storage in a temporary directory) takes the s390x minimal and full
images of the test cache (`vmexec image push`); a new, empty cache pulls
them (`vmexec image pull`) and runs the probe and an `--image full` command
without downloading a package; `--image REF` in another new cache pulls on
first use. `image export` then `image import` into a clean cache gives the
same keys; a bundle with one byte flipped in a layer is refused with one
line and status 125 and leaves nothing in the cache; `image list` names
where each image came from. The registry is stopped at the end, always.

Environment: VMEXEC, PROBE (the probe built for s390x), XDG_CACHE_HOME (the
test cache: the images are built there on first use, the full one in
minutes). Under CI=true a missing prerequisite is a failure, never a skip."""

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time

from testlib import check, guest_main, skip_or_fail, timed

VMEXEC = os.environ["VMEXEC"]
PROBE = os.environ["PROBE"]
BUILT_CACHE = os.environ["XDG_CACHE_HOME"]
HELLO = b"hello from s390x big-endian\n"

work = tempfile.mkdtemp(prefix="vmexec-test-oci-")
runtime = os.path.join(work, "run")
os.mkdir(runtime, 0o700)
ENV = dict(os.environ, XDG_RUNTIME_DIR=runtime, VMEXEC_IDLE_TIMEOUT="600")
# The registry's storage, apart from WORK: guest_main removes WORK before
# the registry is stopped.
storage = tempfile.mkdtemp(prefix="vmexec-test-registry-")
registry = {}


def env_with(cache, **more):
    return dict(ENV, XDG_CACHE_HOME=cache, **more)


def vm(*args, cache=BUILT_CACHE, env=None, timeout=3600):
    return subprocess.run([VMEXEC, *args], env=env or env_with(cache), capture_output=True, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry():
    port = free_port()
    config = os.path.join(storage, "registry.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage}/blobs\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    log = open(os.path.join(storage, "registry.log"), "wb")
    registry["proc"] = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=log)
    registry["host"] = f"127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    skip_or_fail(f"docker-registry did not listen on 127.0.0.1:{port}")


def stop_registry():
    proc = registry.get("proc")
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ref(tag):
    return f"{registry['host']}/vmexec/s390x:{tag}"


def link_key(cache, name):
    try:
        return os.readlink(os.path.join(cache, "vmexec", "images", name))
    except OSError:
        return None


def setup():
    start_registry()
    # The images of the test cache, built on first use (the full one in minutes).
    for args in (["s390x"], ["s390x", "--full"]):
        started = time.monotonic()
        r = vm("image", "build", *args)
        timed(f"image build {' '.join(args)}", time.monotonic() - started)
        if r.returncode != 0:
            skip_or_fail(f"cannot build the images: {r.stderr.decode()[-500:]}")
    registry["keys"] = (link_key(BUILT_CACHE, "s390x"), link_key(BUILT_CACHE, "s390x-full"))


def test_push():
    for tag, extra in (("minimal", []), ("full", ["--full"])):
        started = time.monotonic()
        r = vm("image", "push", "s390x", *extra, ref(tag), "--tls-verify=false")
        timed(f"push {tag}", time.monotonic() - started)
        check(r.returncode == 0 and b"pushed" in r.stdout, f"image push {tag}: {r.returncode} {r.stderr[-400:]!r}")
    r = vm("image", "push", "s390x", ref("tls"))
    check(r.returncode == 125 and len(r.stderr.splitlines()) == 1,
          f"a push to a registry without TLS needs --tls-verify=false, one line: {r.returncode} {r.stderr!r}")


def no_downloads(cache, what):
    made = sorted(os.listdir(os.path.join(cache, "vmexec")))
    check("debs" not in made and "apt" not in made, f"{what}: no package was downloaded (the cache holds {made})")


def test_pull_and_run():
    cache = os.path.join(work, "pulled")
    minimal_key, full_key = registry["keys"]
    for tag in ("minimal", "full"):
        started = time.monotonic()
        r = vm("image", "pull", ref(tag), "--tls-verify=false", cache=cache)
        timed(f"pull {tag}", time.monotonic() - started)
        check(r.returncode == 0, f"image pull {tag}: {r.returncode} {r.stderr[-400:]!r}")
    check(link_key(cache, "s390x") == minimal_key and link_key(cache, "s390x-full") == full_key,
          f"the pulled images are the current ones with the built keys: {link_key(cache, 's390x')} "
          f"{link_key(cache, 's390x-full')} (built {minimal_key} {full_key})")
    r = vm(PROBE, "hello", cache=cache)
    check(r.returncode == 0 and r.stdout == HELLO, f"the probe runs on the pulled image: {r.stdout!r} {r.stderr!r}")
    r = vm("--target", "s390x", "--image", "full", "--", "sh", "-c", "for p in gcc make meson; do command -v $p; done",
           cache=cache)
    check(r.returncode == 0 and r.stdout.count(b"\n") == 3,
          f"--image full runs a command on the pulled full image: {r.stdout!r} {r.stderr[-400:]!r}")
    no_downloads(cache, "pull, then calls")
    r = vm("image", "list", cache=cache)
    out = r.stdout.decode()
    check(out.count(f"pulled {ref('minimal')}\n") == 1 and out.count(f"pulled {ref('full')}\n") == 1,
          f"image list names the references the images were pulled from: {out!r}")
    vm("stop", "--all")


def test_image_ref_on_call():
    # skopeo's own rule for a registry without TLS, which calls follow.
    home = os.path.join(work, "home")
    os.makedirs(os.path.join(home, ".config", "containers"))
    with open(os.path.join(home, ".config", "containers", "registries.conf"), "w") as f:
        f.write(f'[[registry]]\nlocation = "{registry["host"]}"\ninsecure = true\n')
    cache = os.path.join(work, "first-use")
    env = env_with(cache, HOME=home, VMEXEC_IMAGE=ref("minimal"))
    started = time.monotonic()
    r = subprocess.run([VMEXEC, PROBE, "hello"], env=env, capture_output=True, timeout=1800)
    timed("first call with VMEXEC_IMAGE=REF", time.monotonic() - started)
    check(r.returncode == 0 and r.stdout == HELLO,
          f"VMEXEC_IMAGE=REF pulls on first use and runs the probe: {r.stdout!r} {r.stderr[-400:]!r}")
    r = vm("--target", "aarch64", "--image", ref("minimal"), "--", "true", env=env)
    check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and b"not aarch64" in r.stderr,
          f"--image REF of an s390x image for --target aarch64 is refused in one line: {r.returncode} {r.stderr!r}")
    no_downloads(cache, "--image REF")
    vm("stop", "--all")


def test_export_import():
    bundle = os.path.join(work, "bundle.tar")
    started = time.monotonic()
    r = vm("image", "export", "s390x", "--full", bundle)
    timed("export full", time.monotonic() - started)
    check(r.returncode == 0 and os.path.isfile(bundle), f"image export --full: {r.returncode} {r.stderr[-400:]!r}")
    if os.path.isfile(bundle):
        print(f"     the bundle of the full image: {os.path.getsize(bundle) / (1 << 20):.0f} MiB", flush=True)
    cache = os.path.join(work, "imported")
    started = time.monotonic()
    r = vm("image", "import", bundle, cache=cache)
    timed("import full", time.monotonic() - started)
    check(r.returncode == 0, f"image import: {r.returncode} {r.stderr[-400:]!r}")
    keys = (link_key(cache, "s390x"), link_key(cache, "s390x-full"))
    check(keys == registry["keys"], f"export then import gives the same image keys: {keys} {registry['keys']}")
    out = vm("image", "list", cache=cache).stdout.decode()
    check(out.count(f"imported {bundle}") == 2, f"image list names the imported bundle: {out!r}")
    no_downloads(cache, "import")
    corrupt_import(bundle)


def corrupt_import(bundle):
    # One byte flipped in the middle of the biggest blob (the root filesystem).
    bad = os.path.join(work, "bad.tar")
    shutil.copy(bundle, bad)
    with tarfile.open(bad) as t:
        member = max(t.getmembers(), key=lambda m: m.size)
    with open(bad, "r+b") as f:
        f.seek(member.offset_data + member.size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    cache = os.path.join(work, "corrupt")
    r = vm("image", "import", bad, cache=cache)
    check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and b"corrupt" in r.stderr,
          f"a flipped byte is refused with one line and 125: {r.returncode} {r.stderr!r}")
    images = os.path.join(cache, "vmexec", "images")
    tmp = os.path.join(cache, "vmexec", "tmp")
    left = (os.listdir(images) if os.path.isdir(images) else []) + (os.listdir(tmp) if os.path.isdir(tmp) else [])
    check(left == [], f"nothing of the refused image stays in the cache: {left}")
    os.unlink(bad)


def main():
    for tool in ("skopeo", "docker-registry"):
        if not shutil.which(tool):
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(storage, ignore_errors=True)
            skip_or_fail(f"{tool} is missing (scripts/install-deps installs it)")
    try:
        return guest_main([test_push, test_pull_and_run, test_image_ref_on_call, test_export_import], VMEXEC, ENV,
                          work, setup=setup)
    finally:
        stop_registry()
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
