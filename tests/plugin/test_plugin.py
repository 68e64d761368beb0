"""The plugin seen from outside, with pytester: options, config errors, verdicts, output, catalogue.

These use synthetic checks that touch no component, so they test the plugin's policy alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

NO_COMPONENTS = '[lab]\nname = "bare"\n'
ETCD_ONLY = '[lab]\nname = "etcd-only"\n[etcd]\nendpoints = ["http://127.0.0.1:1"]\n'

SUITE = """
import pytest
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample", requires=["etcd"])

@pytest.mark.check("LAB9-01", "Passing check", component="etcd", hint="nothing to do")
def test_pass():
    pass

@pytest.mark.check("LAB9-02", "Failing check", component="etcd", hint="turn it off and on again")
def test_fail():
    assert 1 == 2, "the widget is broken"

@pytest.mark.check("LAB9-03", "Docker check in an etcd lab", component="docker", hint="start docker")
def test_docker():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_header_shows_source_and_endpoints_not_secrets(suite: pytest.Pytester) -> None:
    suite.makefile(
        ".toml",
        lab='[etcd]\nendpoints = ["http://root:hunter2-canary@127.0.0.1:1"]\nusername = "root"\npassword = "hunter2-canary"\n',
    )
    result = suite.runpytest("--co")
    result.stdout.fnmatch_lines(["lab: * (from ./lab.toml *lab.toml)", "  etcd: http://127.0.0.1:1", "workshop run: *"])
    assert "hunter2-canary" not in result.stdout.str() + result.stderr.str()


def test_lab_config_option_beats_local_file(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", lab='[lab]\nname = "local"\n', other='[lab]\nname = "explicit"\n')
    result = suite.runpytest("--co", "--lab-config", "other.toml")
    result.stdout.fnmatch_lines(["lab: explicit (from --lab-config *other.toml)"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[etcd]\nendpoints = [", "*lab.toml: not valid TOML*fix: correct the syntax*"),
        (
            '[etcd]\nendpoint = ["http://x:1"]\n',
            "*lab.toml: etcd.endpoint: unknown key (fix: remove it or use one of: *endpoints*",
        ),
        ('[lab]\nallow_breakage = "no"\n', "*lab.toml: lab.allow_breakage: expected true or false*"),
        ('[docker]\nhost = "tcp://"\n', "*lab.toml: docker.host: 'tcp://' names no address*"),
        (
            '[etcd]\nendpoints = ["http://a:2379", "http://a:2379"]\n',
            "*etcd.endpoints: 'http://a:2379' is listed twice*",
        ),
        ("[etcd]\nmembers = 0\n", "*etcd.members: expected a whole number >= 1*"),
        ("[swarm]\nnodes = 3\n", "*lab.toml: swarm: a swarm with no engine to reach it by*"),
    ],
)
def test_bad_config_is_one_line_usage_error(suite: pytest.Pytester, content: str, expected: str) -> None:
    suite.makefile(".toml", lab=content)
    result = suite.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expected}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert len([line for line in result.stderr.lines if line.strip()]) == 1


def test_missing_config_file_from_env(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_CONFIG", "/nonexistent/lab.toml")
    result = suite.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: /nonexistent/lab.toml: file not found (fix: check the path given by WORKSHOP_LAB_CONFIG)"]
    )


def test_verdicts_absent_component_skips_topic_component_fails(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", lab=NO_COMPONENTS)
    result = suite.runpytest("-rs")
    # etcd is lab9's topic: absent means failure (a FAIL, not an error). docker is not: absent means
    # skip, with the reason.
    result.assert_outcomes(failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*LAB9-03: this lab has no docker (configuration: ./lab.toml *"])
    result.stdout.fnmatch_lines(["*has no etcd, but lab9 is about etcd*", "*hint: add an ?etcd? section*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_failure_is_one_line_with_hint_and_checklist(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", lab=ETCD_ONLY)
    result = suite.runpytest()
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "LAB9-02 Failing check",
            "  the widget is broken",
            "  hint: turn it off and on again",
            "*workshop checklist*",
            "Lab 9: sample  (1 fail, 1 pass, 1 skip)",
            "  PASS  LAB9-01  Passing check",
            "  FAIL  LAB9-02  Failing check",
            "        the widget is broken",
            "        hint: turn it off and on again",
            "  SKIP  LAB9-03  Docker check in an etcd lab",
        ]
    )
    assert "assert 1 == 2" not in result.stdout.str()  # no traceback by default...
    detailed = suite.runpytest("--tb=long")
    assert "assert 1 == 2" in detailed.stdout.str()  # ...but the usual flag brings it back


def test_bug_in_a_check_keeps_traceback_and_says_so(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", lab=ETCD_ONLY)
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.check("LAB9-04", "Buggy check", component="etcd", hint="h")
        def test_bug():
            {}["missing"]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*KeyError*",
            "  ERROR LAB9-04  Buggy check",
            "*unexpected error in the check itself*",
            "*bug in the suite*",
        ]
    )


def test_watchdog_bounds_a_hanging_check(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", lab=ETCD_ONLY + '[timeouts.checks]\n"LAB9-05" = 1\n')
    pytester.makepyfile(
        """
        import time, pytest
        @pytest.mark.check("LAB9-05", "Hanging check", component="etcd", hint="h")
        def test_hang():
            time.sleep(60)
        """
    )
    t0 = time.monotonic()
    result = pytester.runpytest()
    assert time.monotonic() - t0 < 10
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*LAB9-05 did not finish within its bound of 1 s*"])


def test_catalogue_lists_without_running(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", lab=NO_COMPONENTS)
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.check("LAB9-02", "Second", component="etcd", hint="h")
        def test_b():
            raise SystemExit("must not run")
        @pytest.mark.check("LAB9-01", "First", component="docker", hint="h")
        def test_a():
            raise SystemExit("must not run")
        """
    )
    result = pytester.runpytest("--workshop-checks")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*LAB9-01  docker    First", "*LAB9-02  etcd      Second", "2 checks"])


def test_duplicate_ids_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", lab=NO_COMPONENTS)
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.check("LAB9-01", "One", component="etcd", hint="h")
        def test_a(): pass
        @pytest.mark.check("LAB9-01", "Two", component="etcd", hint="h")
        def test_b(): pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: check ID LAB9-01 is used twice*"])


def test_unreachable_component_fails_with_component_hint(pytester: pytest.Pytester) -> None:
    # A real client against a closed port: connection refused is immediate, no mock involved.
    pytester.makefile(".toml", lab='[docker]\nhost = "unix:///nonexistent/docker.sock"\n')
    pytester.makepyfile(
        """
        import pytest
        pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9", requires=["docker"])
        @pytest.mark.check("LAB9-06", "Engine answers", component="docker", hint="check hint")
        def test_engine(docker_client): pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)  # a fixture that cannot reach the lab: a FAIL, not an error
    result.stdout.fnmatch_lines(
        [
            "*FAIL  LAB9-06  Engine answers",
            "*docker: no engine socket at /nonexistent/docker.sock",
            "*hint: start the Docker engine*",
        ]
    )


def test_workshop_checks_cli_counts(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_workshop.cli import main

    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    ids = [line.split()[0] for line in out.splitlines() if line.strip().startswith("LAB")]
    assert sum(i.startswith("LAB1-") for i in ids) >= 12 and sum(i.startswith("LAB3-") for i in ids) >= 12
    assert sum(i.startswith("LAB2-") for i in ids) >= 14
    assert len(ids) == len(set(ids))
    # by lab, then by the guide's step with its title
    assert "Lab 3: etcd" in out and "  3.1  A three-member cluster" in out


def test_unknown_check_ids_are_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", lab=ETCD_ONLY)
    result = suite.runpytest("--check-ids", "LAB9-01,LAB9-99,LAB7-01")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --check-ids: LAB7-01, LAB9-99 are not checks of the suites given*"])


def test_every_skip_shows_its_reason_in_the_checklist(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", lab=ETCD_ONLY)
    result = suite.runpytest()  # not verbose: the reason is there all the same
    result.stdout.fnmatch_lines(
        ["  SKIP  LAB9-03  Docker check in an etcd lab", "        skipped: LAB9-03: this lab has no docker*"]
    )


def test_a_fixture_that_the_lab_fails_is_a_fail_of_the_component(pytester: pytest.Pytester) -> None:
    """A fixture's set-up meets an error of the lab (here a real gRPC error from a closed port):
    the check FAILs with the component's hint, it is not an ERROR and not 'a bug in the suite'."""
    pytester.makefile(".toml", lab='[etcd]\nendpoints = ["http://127.0.0.1:1"]\n[timeouts]\nrequest = 1\n')
    pytester.makepyfile(
        """
        import pytest
        pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9", requires=["etcd"])

        @pytest.fixture
        def raw_call(etcd):
            pass

        @pytest.mark.check("LAB9-07", "Put works", component="etcd", hint="check hint")
        def test_put(etcd, raw_call):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL  LAB9-07  Put works", "*no endpoint answered*", "*hint: start etcd*"])
    assert "bug in the suite" not in result.stdout.str()


def test_junit_carries_each_failures_message_and_hint(suite: pytest.Pytester) -> None:
    """Instructors' tools and the detection matrix read the hint of every failed check from JUnit."""
    from pytest_workshop.faults.matrix import hints, verdicts

    suite.makefile(".toml", lab=ETCD_ONLY)
    suite.runpytest("--junitxml=junit.xml")
    junit = suite.path / "junit.xml"
    assert verdicts(junit) == {"LAB9-01": "PASS", "LAB9-02": "FAIL", "LAB9-03": "SKIP"}
    assert hints(junit) == {"LAB9-02": "turn it off and on again"}


def test_expected_shape_is_the_workshops_not_the_endpoints_typed(pytester: pytest.Pytester) -> None:
    """One endpoint (the usual attendee set-up) still means a 3-member cluster; a reduced lab says so."""
    pytester.makepyfile(
        test_standard="def test_shape(lab):\n    assert (lab.etcd.expected_members, lab.swarm.expected_managers) == (3, 3)\n",
        test_reduced="def test_shape(lab):\n    assert (lab.etcd.expected_members, lab.swarm.expected_managers) == (1, 1)\n",
    )
    pytester.makefile(".toml", lab='[etcd]\nendpoints = ["http://127.0.0.1:2379"]\n[docker]\n[swarm]\n')
    pytester.runpytest("test_standard.py").assert_outcomes(passed=1)
    pytester.makefile(".toml", lab="[etcd]\nmembers = 1\n[docker]\n[swarm]\nnodes = 1\n")
    pytester.runpytest("test_reduced.py").assert_outcomes(passed=1)


def test_a_fault_in_force_is_named_in_the_header_and_at_the_end(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instructor's `workshop break` (or a killed run's fault) explains failures: every run says so."""
    from pytest_workshop.faults.journal import Journal

    journal_dir = suite.path / "journal"
    monkeypatch.setattr("pytest_workshop.faults.journal.DEFAULT_DIR", journal_dir)
    Journal("etcd-only", journal_dir).record("etcd-leader-killed", {"members": ["etcd2"]}, origin="instructor")
    suite.makefile(".toml", lab=ETCD_ONLY)
    result = suite.runpytest()
    result.stdout.fnmatch_lines(
        [
            "FAULT IN FORCE: etcd-leader-killed (members ?'etcd2'?), injected by an instructor*workshop fix --all*",
            "*faults in force on this lab*",
            "*hint: `workshop fix --all` restores it*",
        ]
    )


def test_a_misspelled_check_marker_keyword_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.check("LAB9-01", "Slow", component="etcd", hint="h", timout=30)
        def test_slow():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@pytest.mark.check('LAB9-01', 'Slow', ...): *timout*"])


def test_unknown_check_ids_under_xdist_are_a_usage_error_too(suite: pytest.Pytester) -> None:
    """The xdist controller collects nothing: it checks the IDs against the test files' text."""
    suite.makefile(".toml", lab=ETCD_ONLY)
    result = suite.runpytest_subprocess("-n", "2", "--check-ids", "LAB9-99")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --check-ids: LAB9-99 is not a check of the suites given*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


MODULE_OF_CHECKS = """
import os, pytest
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample")

@pytest.mark.parametrize("i", range(6))
@pytest.mark.check("LAB9-{n:02d}", "Check {n}", component="etcd", hint="none")
def test_check(i):
    with open("workers.log", "a") as f:
        f.write(f"{{__name__}} {{os.environ.get('PYTEST_XDIST_WORKER')}}\\n")
"""


@pytest.mark.parametrize("dist", [None, "load"])
def test_under_xdist_a_modules_checks_stay_on_one_worker(pytester: pytest.Pytester, dist: str | None) -> None:
    """Module-scoped set-ups (lab5's app) are built once and experiments stay in order: the plugin
    schedules by module (loadscope) unless --dist is given."""
    pytester.makefile(".toml", lab=ETCD_ONLY)  # the checks touch no component: etcd is only declared
    pytester.makepyfile(**{f"test_mod{n}": MODULE_OF_CHECKS.format(n=n) for n in range(1, 5)})
    args = ["-n", "3", "-p", "no:cacheprovider"] + (["--dist", dist] if dist else [])
    pytester.runpytest_subprocess(*args)
    lines = (pytester.path / "workers.log").read_text().split()
    workers: dict[str, set[str]] = {}
    for module, worker in zip(lines[::2], lines[1::2], strict=True):
        workers.setdefault(module, set()).add(worker)
    assert len(workers) == 4 and sum(1 for _ in lines[::2]) == 24
    if dist is None:
        assert all(len(w) == 1 for w in workers.values()), workers
        assert len(set().union(*workers.values())) > 1, "the modules did not run in parallel"
    else:
        assert any(len(w) > 1 for w in workers.values()), workers  # --dist load, as asked


TIMED_MODULE = """
import os, time, pytest
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample")

@pytest.mark.parametrize("i", range({count}))
@pytest.mark.check("LAB9-{n:02d}", "Check {n}", component="etcd", hint="none")
def test_check(i):
    time.sleep({sleep})
    with open("workers.log", "a") as f:
        f.write(f"{{__name__}} {{os.environ.get('PYTEST_XDIST_WORKER')}}\\n")
"""


def test_under_xdist_the_longest_module_runs_alone(pytester: pytest.Pytester) -> None:
    """Each worker starts with one module: the next goes to whichever worker runs out first, not
    into the queue behind the longest module (xdist's loadscope gives each worker two at once)."""
    pytester.makefile(".toml", lab=ETCD_ONLY)
    pytester.makepyfile(
        test_a_long=TIMED_MODULE.format(n=1, count=2, sleep=1.5),
        test_b_short=TIMED_MODULE.format(n=2, count=1, sleep=0),
        test_c_short=TIMED_MODULE.format(n=3, count=1, sleep=0),
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    lines = (pytester.path / "workers.log").read_text().split()
    worker_of = dict(zip(lines[::2], lines[1::2], strict=True))
    assert worker_of["test_c_short"] == worker_of["test_b_short"] != worker_of["test_a_long"], worker_of


@pytest.mark.parametrize("parallel", [2, 3])
def test_under_xdist_no_more_modules_at_once_than_the_lab_takes(pytester: pytest.Pytester, parallel: int) -> None:
    """[lab] parallel caps the modules running at once whatever -n says (a 2-core lab stalls
    past 4): the workers past it are shut down before any gets work."""
    pytester.makefile(".toml", lab=ETCD_ONLY.replace("[lab]\n", f"[lab]\nparallel = {parallel}\n"))
    pytester.makepyfile(**{f"test_m{n}": TIMED_MODULE.format(n=n, count=2, sleep=0.3) for n in range(1, 5)})
    result = pytester.runpytest_subprocess("-n", "4", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    lines = (pytester.path / "workers.log").read_text().split()
    assert len(set(lines[1::2])) == parallel, lines
    result.stdout.fnmatch_lines([f"parallel: {parallel} suites at once ([lab] parallel), not -n 4"])


RELEASED_AFTER_LAST_USER = """
import pytest
from pytest_workshop.plugin.concurrency import modules_kept_together, release_after_last_user

events = []

@pytest.fixture(scope="module")
def deployment(request):
    release = release_after_last_user(request, lambda: events.append("released"), modules_kept_together(request.config))
    yield "deployed"
    release()

def test_uses_it(deployment):
    events.append("first")

def test_uses_it_last(deployment):
    events.append("last user")

def test_only_collects():
    assert events == ["first", "last user", "released"]

def test_released_once():
    assert events.count("released") == 1
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]])
def test_a_module_fixture_is_released_after_its_last_user_not_at_the_modules_end(
    pytester: pytest.Pytester, xdist: list[str]
) -> None:
    """lab5's app is removed while LAB5-12 waits for a lease, not after it (pytester: the order)."""
    pytester.makefile(".toml", lab=ETCD_ONLY)
    pytester.makepyfile(test_release=RELEASED_AFTER_LAST_USER)
    result = pytester.runpytest_subprocess(*xdist, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["solve", "lab9"], "workshop: lab9: is no lab of the guide (fix: use one of lab0, lab1"),
        (["check", "lab3", "--step", "2.1"], "workshop: --step: 2.1: is no step of lab3 (fix: use one of 3.1, 3.2"),
        (["solve", "lab3", "--lab", "attendee-07"], "workshop: --lab: names a lab of a fleet, but no fleet is given"),
    ],
)
def test_solve_and_check_refuse_bad_input_in_one_line(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_workshop.cli import main

    assert main(argv) == 4
    err = capsys.readouterr().err
    assert err.startswith(said) and len(err.strip().splitlines()) == 1, err


def test_solve_refuses_a_lab_that_does_not_allow_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_workshop.cli import main

    config = tmp_path / "lab.toml"
    config.write_text('[lab]\nname = "attendee-07"\n\n[docker]\nhost = "ssh://root@attendee-07"\n')
    assert main(["solve", "lab3", "--lab-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "solving this lab is not allowed" in err and "allow_solve = true" in err, err


GROUNDED_SUITE = """
import pytest
from pytest_workshop.api import CheckFailed
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample", stands_on=["sample ground"])

@pytest.mark.check("LAB9-01", "The app answers", component="etcd", hint="fix the app's code")
def test_app():
    assert False, "the app did not answer"

@pytest.mark.check("LAB9-02", "The app registers", component="etcd", hint="fix the app's code")
def test_registers():
    raise CheckFailed("no registration", hint="register it")
"""


def grounded_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, finding: Any) -> pytest.RunResult:
    """The suite, with a ground of the test's own giving ``finding``: the plugin's policy alone
    (no component is read; pytester runs in this process, so the registry is this one's)."""
    from pytest_workshop.plugin import grounds

    monkeypatch.setitem(grounds.GROUNDS, "sample ground", lambda lab: finding)
    pytester.makepyfile(test_suite=GROUNDED_SUITE)
    pytester.makefile(".toml", lab=ETCD_ONLY)
    return pytester.runpytest()


def test_what_a_suite_stands_on_is_said_before_its_checks_own_finding(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = grounded_run(pytester, monkeypatch, ("the ground is cut", "mend the ground"))
    out = result.stdout.str()
    assert "the ground is cut; what the check saw: the app did not answer" in out, out
    assert "the ground is cut; what the check saw: no registration" in out, out
    assert "hint: mend the ground; once that is fixed, if the check still fails: fix the app's code" in out, out
    assert "if the check still fails: register it" in out, out


def test_a_ground_that_is_sound_leaves_the_checks_own_finding(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = grounded_run(pytester, monkeypatch, None).stdout.str()
    assert "the app did not answer" in out and "hint: fix the app's code" in out and "what the check saw" not in out


def test_an_unknown_ground_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=GROUNDED_SUITE)
    pytester.makefile(".toml", lab=ETCD_ONLY)
    result = pytester.runpytest("--co")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*workshop_lab(stands_on=...) names sample ground; known grounds: swarm overlay*"])


DEEP_SUITE = """
import pytest
from pytest_workshop.api import CheckFailed

def helper_that_finds_it():
    raise CheckFailed("the widget is cut", hint="mend the widget")

@pytest.mark.check("LAB9-01", "The widget", component="etcd", hint="fix it")
def test_widget():
    helper_that_finds_it()
"""


@pytest.mark.parametrize(("args", "traceback"), [((), False), (("-vv",), True), (("--tb=long",), True)])
def test_a_labs_failure_is_one_line_unless_a_traceback_is_asked_for(
    pytester: pytest.Pytester, args: tuple[str, ...], traceback: bool
) -> None:
    pytester.makepyfile(test_suite=DEEP_SUITE)
    pytester.makefile(".toml", lab=ETCD_ONLY)
    out = pytester.runpytest(*args).stdout.str()
    assert "the widget is cut" in out and "mend the widget" in out
    assert ("def helper_that_finds_it" in out) is traceback, out
