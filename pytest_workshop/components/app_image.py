"""Lab 5's reference app's image, built offline: the host's python 3.11 with its libraries and
standard library on busybox, and the app's sources: no registry, and a build context that
builds in well under a second. Shared by every run, like the test image."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_workshop.components.docker import BUSYBOX, fixtures_dir, image_exists
from pytest_workshop.errors import WorkshopError

if TYPE_CHECKING:
    from docker import DockerClient

APP_NAME = "registry-demo"
APP_IMAGE = "pytest-workshop/registry-demo:1"
# Shared by every run like the test image (`workshop janitor --all` removes it); the digest of
# the app's sources says whether an image on an engine is the current one.
APP_IMAGE_LABELS = {"pytest-workshop.image": "app"}
DIGEST_LABEL = "pytest-workshop.app-digest"
BUILD_TIMEOUT_S = 120
SOURCES = ("etcd_gateway.py", "backend.py", "frontend.py")
HOST_PYTHON = Path("/usr/bin/python3.11")
IMAGE_LAYOUT = b"2"  # what goes into the image besides the sources (2: with the stdlib's bytecode)
PYC_TAG = "cpython-311"  # the host python's sys.implementation.cache_tag
# Parts of the standard library no service needs (and tests): 54 MB -> about 30 MB.
STDLIB_SKIP = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "site-packages",
    "dist-packages",
    "config-3.11-x86_64-linux-gnu",
    "unittest",
    "venv",
}


def app_dir() -> Path:
    return fixtures_dir() / "apps" / APP_NAME


def app_digest() -> str:
    h = hashlib.sha256(IMAGE_LAYOUT)
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (app_dir() / name).read_bytes())
    h.update(HOST_PYTHON.read_bytes()[:4096] if HOST_PYTHON.exists() else b"")
    return h.hexdigest()[:16]


def ensure_app_image(client: DockerClient, ref: str = APP_IMAGE) -> str:
    """The app's image on this engine, built offline when missing or out of date. Returns how."""
    digest = app_digest()
    if image_exists(client, ref):
        labels = client.images.get(ref).labels or {}
        if labels.get(DIGEST_LABEL) == digest or not labels.get("pytest-workshop.image"):
            return "present"  # ours and current, or the attendee's own image under that name
    t0 = time.monotonic()
    build_app_image(client, ref, digest)
    return f"built offline in {time.monotonic() - t0:.1f} s"


def _shared_libraries(binaries: list[Path]) -> set[Path]:
    found: set[Path] = set()
    for chunk in range(0, len(binaries), 50):
        out = subprocess.run(
            ["ldd", *map(str, binaries[chunk : chunk + 50])], capture_output=True, text=True, timeout=30
        ).stdout
        for m in re.finditer(r"(/\S+\.so[.\d]*) \(0x", out):
            found.add(Path(m.group(1)))
    return found


def _add(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    info = tar.gettarinfo(str(path.resolve()), arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    with path.resolve().open("rb") as f:
        tar.addfile(info, f)


def _wanted_bytecode(path: Path) -> bool:
    """The stdlib's compiled modules (Debian compiles them at install), unoptimised only: without
    them every python in a container, the app's and every `docker exec` of the checks, compiles
    what it imports from source each time (json + urllib.request: 0.16 CPU-s instead of 0.03).
    +13 MB. The tar keeps the sources' mtimes, which the .pyc files are checked against."""
    if path.suffix != ".pyc":
        return True
    return path.parent.name == "__pycache__" and path.name.endswith(f".{PYC_TAG}.pyc")


def app_image_context() -> bytes:
    """A build context: the host's python 3.11 with its libraries and standard library on busybox,
    and the app. No registry needed; it builds in about 0.4 s."""
    missing = [str(p) for p in (HOST_PYTHON, BUSYBOX) if not p.exists()]
    if missing:
        raise WorkshopError(
            f"cannot build {APP_IMAGE} offline: {', '.join(missing)} missing",
            hint="apt-get install python3.11-minimal libpython3.11-stdlib busybox-static "
            "(or build fixtures/apps/registry-demo/Dockerfile where a registry is reachable)",
        )
    stdlib = Path("/usr/lib/python3.11")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dockerfile = (
            b"FROM scratch\nCOPY rootfs/ /\n"
            b'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            b"ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1\nWORKDIR /app\n"
            b'CMD ["python3", "/app/backend.py"]\n'
        )
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        _add(tar, BUSYBOX, "rootfs/bin/busybox")
        _add(tar, HOST_PYTHON, "rootfs/usr/bin/python3")
        modules = [p for p in (stdlib / "lib-dynload").glob("*.so")]
        for lib in sorted(_shared_libraries([HOST_PYTHON, *modules])):
            _add(tar, lib, f"rootfs{lib}")
        for path in sorted(stdlib.rglob("*")):
            rel = path.relative_to(stdlib)
            if path.is_dir() or STDLIB_SKIP & set(rel.parts) or path.suffix == ".exe" or not _wanted_bytecode(path):
                continue
            _add(tar, path, f"rootfs/usr/lib/python3.11/{rel}")
        nsswitch = b"hosts: files dns\n"
        info = tarfile.TarInfo("rootfs/etc/nsswitch.conf")
        info.size = len(nsswitch)
        tar.addfile(info, io.BytesIO(nsswitch))
        for name in SOURCES:
            _add(tar, app_dir() / name, f"rootfs/app/{name}")
    return buf.getvalue()


def build_app_image(client: DockerClient, ref: str = APP_IMAGE, digest: str | None = None) -> None:
    context = io.BytesIO(app_image_context())
    labels = {**APP_IMAGE_LABELS, DIGEST_LABEL: digest or app_digest()}
    # a build is an operation of seconds (2.9 s alone on 2 cores, more with three at once): its own bound
    client.images.build(
        fileobj=context, custom_context=True, tag=ref, rm=True, forcerm=True, labels=labels, timeout=BUILD_TIMEOUT_S
    )
