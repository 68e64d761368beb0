"""The published report: Allure 2's HTML, generated offline, with trends, without analytics.

Why Allure 2 (npm ``allure-commandline``, Java) rather than Allure 3 (npm ``allure``, Node):
Allure 2 reads ``categories.json`` and ``environment.properties`` from the results as
allure-pytest writes them, and carries trends through ``history/``; Allure 3 ignores
categories.json (its config wants JS regexes) and its analytics tag must be stripped by hand.
Allure 2's tag is switched off with ``ALLURE_NO_ANALYTICS=true`` ("1" does not switch it off);
any tag left is stripped anyway.

Two outputs: a folder (``index.html`` + data, served over http, holds ``history/`` for the next
run's trends) and one self-contained file (data embedded as base64), to mail or archive.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import re
import shutil
import subprocess
from pathlib import Path

from pytest_workshop.errors import WorkshopError
from pytest_workshop.report.redact import Redactor

ALLURE_VERSION = "2.46.1"
ALLURE_HOME = Path(os.environ.get("WORKSHOP_ALLURE_HOME", "/opt/pytest-workshop/allure"))
INSTALL_HINT = (
    f"run scripts/install (it runs `npm install --prefix {ALLURE_HOME} allure-commandline@{ALLURE_VERSION}`; "
    "needs Java 17: apt-get install default-jre-headless)"
)
GA_TAG = re.compile(
    r'<script async src="https://www\.googletagmanager\.com/gtag/js[^"]*"></script>\s*<script>\s*window\.dataLayer.*?</script>',
    re.S,
)
BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def find_allure() -> Path:
    candidates = [ALLURE_HOME / "node_modules" / ".bin" / "allure"]
    on_path = shutil.which("allure")
    if on_path:
        candidates.append(Path(on_path))
    for c in candidates:
        if c.exists():
            return c
    raise WorkshopError("the Allure report generator is not installed", hint=INSTALL_HINT)


def _generate(allure: Path, results: Path, out: Path, single_file: bool, timeout: float) -> None:
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
    cmd = [
        str(allure),
        "generate",
        "--clean",
        "-o",
        str(out),
        *(["--single-file"] if single_file else []),
        str(results),
    ]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise WorkshopError(f"allure generate did not finish within {timeout:g} s", hint="retry; check Java") from None
    if r.returncode != 0 or not (out / "index.html").is_file():
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WorkshopError(f"allure generate failed: {tail[0][:200]}", hint="check Java 17 (`java -version`)")


def strip_analytics(html_file: Path) -> int:
    text = html_file.read_text(encoding="utf-8")
    stripped, n = GA_TAG.subn("", text)
    if n:
        html_file.write_text(stripped, encoding="utf-8")
    return n


def readable_text(path: Path) -> str:
    """A file's text plus its base64 blobs decoded (the single-file report embeds its data so)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    decoded = []
    for blob in BASE64_BLOB.findall(text):
        try:
            decoded.append(base64.b64decode(blob + "=" * (-len(blob) % 4)).decode("utf-8", errors="replace"))
        except ValueError:
            continue
    return text + "\n".join(decoded)


def leaked(paths: list[Path], redact: Redactor) -> list[str]:
    """Files under `paths` in which a secret can be read (base64 decoded first)."""
    hits = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            if redact.contains(readable_text(f)):
                hits.append(str(f))
    return hits


def generate(results: Path, out: Path, single_file: Path | None, redact: Redactor, timeout: float = 300) -> list[Path]:
    """Build the report folder (and the single file) from `results`; returns what was written."""
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise WorkshopError(
            f"no Allure results in {results}", hint="run the suites first (pytest writes reports/allure-results)"
        )
    allure = find_allure()
    # Trends: the previous report's history/ goes into the results before generating.
    if (out / "history").is_dir():
        shutil.copytree(out / "history", results / "history", dirs_exist_ok=True)
    _generate(allure, results, out, single_file=False, timeout=timeout)
    written = [out]
    if single_file is not None:
        tmp = single_file.with_name(single_file.name + ".d")
        _generate(allure, results, tmp, single_file=True, timeout=timeout)
        shutil.move(str(tmp / "index.html"), single_file)
        shutil.rmtree(tmp, ignore_errors=True)
        written.append(single_file)
    for html_file in [out / "index.html", *([single_file] if single_file else [])]:
        strip_analytics(html_file)
    hits = leaked(written, redact)
    if hits:
        # Results are redacted when written; this is the last line of defence, so refuse loudly.
        for path in written:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise WorkshopError(
            f"a secret of this lab appears in the generated report ({', '.join(hits[:3])}); it was deleted",
            hint="report this as a bug; the results came from a run that did not redact them",
        )
    return written


def serve(directory: Path, port: int) -> None:
    """Serve the report on 127.0.0.1 only, until Ctrl-C."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"serving {directory} on http://127.0.0.1:{httpd.server_address[1]}/ (Ctrl-C to stop)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
