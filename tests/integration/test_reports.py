"""The report pipeline end to end on the real test lab: suites that pass and fail, under xdist,
write Allure results, JUnit and summary.json; `workshop report` builds the HTML; headless
Chromium shows the labs and the failed checks; and canary secrets planted in clouds.yaml,
lab.toml and an openrc variable appear nowhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pytest_workshop.report.html import readable_text
from tests.conftest import REPO

CANARIES = {
    "clouds.yaml": "canary-cloud-9f3Kq7",
    "lab.toml": "canary-toml-Zx81Lm",
    "openrc": "canary-openrc-Qw55Te",
}

LEAKY_SUITE = """
import logging, os, allure, pytest, yaml

pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: leaks", requires=["docker"])
PW = yaml.safe_load(open(os.environ["LEAKY_CLOUDS"]))["clouds"]["canary"]["auth"]["password"]

@pytest.mark.check("LAB9-01", "parametrized by the password", component="docker", hint="none")
@pytest.mark.parametrize("password", [PW, {"auth": {"password": PW}}])
def test_param(password):
    assert password == "something else"

@pytest.mark.check("LAB9-02", "prints and logs it", component="docker", hint="none")
def test_output():
    print(f"OS_PASSWORD={PW}")
    logging.getLogger("leak").warning("password=%s token=%s", PW, os.environ["OS_PASSWORD"])
    raise AssertionError(f"login failed for password {PW}")

@allure.step("login with {password}")
def login(password):
    return False

@pytest.mark.check("LAB9-03", "steps and parameters carry it", component="docker", hint="none")
def test_steps():
    allure.dynamic.parameter("os_password", PW)
    allure.dynamic.parameter("masked", PW, mode=allure.parameter_mode.MASKED)
    allure.attach(f"password: {PW}", name=f"creds {PW}")
    assert login(PW)

@pytest.fixture(params=[PW])
def secret(request):
    return request.param

@pytest.mark.check("LAB9-04", "a fixture parameter", component="docker", hint=f"none")
def test_fixture_param(secret):
    raise RuntimeError(f"unexpected: {secret}")
"""


@pytest.fixture
def canary_lab(test_lab, tmp_path):
    """The test lab's config, with a canary cloud in (a copy of) its clouds.yaml and a canary
    password in a [swarm] host URL of lab.toml."""
    import tomllib

    from pytest_workshop.config import load_file

    cfg = load_file(test_lab.config)
    clouds = yaml.safe_load(cfg.openstack.clouds_yaml.read_text())
    clouds["clouds"]["canary"] = {
        "auth": {"auth_url": "http://127.0.0.1:1/v3", "username": "x", "password": CANARIES["clouds.yaml"]}
    }
    clouds_copy = tmp_path / "clouds.yaml"
    clouds_copy.write_text(yaml.safe_dump(clouds))
    text = test_lab.config.read_text()
    text = text.replace(str(cfg.openstack.clouds_yaml), str(clouds_copy))
    hosts = tomllib.loads(text)["swarm"]["hosts"]
    canary_host = f"tcp://admin:{CANARIES['lab.toml']}@127.0.0.1:2375"
    text = text.replace(json.dumps(hosts), json.dumps([*hosts, canary_host]))
    config = tmp_path / "lab.toml"
    config.write_text(text)
    assert CANARIES["lab.toml"] in config.read_text()
    suite = tmp_path / "leaky"
    suite.mkdir()
    (suite / "test_leaky.py").write_text(textwrap.dedent(LEAKY_SUITE))
    secrets = set(CANARIES.values()) | set(load_file(config).secrets())
    return config, clouds_copy, suite, secrets


def chromium_text(url: str) -> str:
    """The page as headless Chromium renders it, as plain text (scripts and styles removed)."""
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"pw-chromium-{os.getpid()}"
    try:
        r = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=8000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        subprocess.run(["rm", "-rf", str(profile)], check=False)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", r.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def test_report_pipeline_end_to_end(healthy_lab, canary_lab, tmp_path):
    config, clouds_copy, leaky, secrets = canary_lab
    results, report, single = tmp_path / "results", tmp_path / "report", tmp_path / "report.html"
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.json"
    env = {**os.environ, "LEAKY_CLOUDS": str(clouds_copy), "OS_PASSWORD": CANARIES["openrc"]}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--lab-config",
            str(config),
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "suites/lab3",
            "suites/lab1",
            str(leaky),
            f"--alluredir={results}",
            f"--junitxml={junit}",
            f"--workshop-summary={summary}",
            "-v",
            "-rA",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 1, run.stdout[-3000:]

    # Allure results: one per test, none lost or duplicated under xdist; labels read like the workshop
    data = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    names = sorted(d["name"] for d in data)
    assert len(names) == 14 + 14 + 5, names
    lab3 = next(d for d in data if d["name"].startswith("LAB3-01 "))
    labels = {(x["name"], x["value"]) for x in lab3["labels"]}
    assert {("epic", "Lab 3: etcd"), ("parentSuite", "selftest"), ("story", lab3["name"])} <= labels
    assert "Hint when it fails" in lab3["description"]
    # evidence on failure: LAB9-02 is a docker check, so the engine logs' tails ([lab.logs]) are attached
    failing = next(d for d in data if d["name"].startswith("LAB9-02 "))
    tails = [a for a in failing.get("attachments", []) if a["name"].startswith("last 30 lines of ")]
    assert tails and all((results / a["source"]).is_file() for a in tails), failing.get("attachments")
    assert (results / "categories.json").is_file()
    env_props = (results / "environment.properties").read_text()
    assert "lab=selftest" in env_props and "Docker=" in env_props and "etcd=" in env_props

    # summary.json: lab x check -> outcome, duration, hint for failures
    s = json.loads(summary.read_text())
    checks = s["labs"]["selftest"]
    assert checks["LAB3-01"]["outcome"] == "PASS" and "duration" in checks["LAB3-01"]
    assert checks["LAB9-02"]["outcome"] == "FAIL" and checks["LAB9-02"]["hint"] == "none"
    assert checks["LAB9-04"]["outcome"] == "ERROR"

    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_workshop.cli",
            "report",
            "--results",
            str(results),
            "--out",
            str(report),
            "--single-file",
            str(single),
            "--lab-config",
            str(config),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert built.returncode == 0, built.stderr
    # trends: a second report over the same folder carries the first one's history
    again = subprocess.run(built.args, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    assert len(json.loads((report / "history" / "history-trend.json").read_text())) == 2
    index = (report / "index.html").read_text()
    assert "googletagmanager" not in index and "googletagmanager" not in single.read_text()

    # The secrets, nowhere: terminal, JUnit, results, summary, both reports (base64 decoded)
    outputs = {"terminal": run.stdout + run.stderr + built.stdout + built.stderr}
    for root in (junit, summary, results, report, single):
        for f in [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]:
            outputs[str(f)] = readable_text(f)
    leaks = {where: sorted(s for s in secrets if s in text) for where, text in outputs.items()}
    assert not {w: found for w, found in leaks.items() if found}
    assert "password=*****" in outputs["terminal"]  # redacted, not dropped

    # What the instructor sees: the overview lists the lab and the failure categories...
    overview = chromium_text(f"file://{single}")
    assert "selftest" in overview and "Lab is broken" in overview and "Test bug" in overview
    # ...and the categories tree, opened at a failed check, shows it by ID and title
    categories = json.loads((report / "data" / "categories.json").read_text())
    broken = next(c for c in categories["children"] if c["name"] == "Lab is broken")
    first = broken["children"][0]["children"][0]
    page = chromium_text(f"file://{single}#categories/{first['parentUid']}/{first['uid']}")
    assert re.search(r"LAB9-0\d ", page), page[:2000]
