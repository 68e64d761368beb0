"""kuryr as Docker sees it: its plugin spec file and its answer to ``Plugin.Activate``, probed
from the engine's own host (a container in the host's network), the way dockerd finds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_workshop.components.explain import Talk, explain
from pytest_workshop.components.service_log import CONTROL_SAYS, JUST_NOW, Witness, meaning
from pytest_workshop.errors import CheckFailed, ComponentUnavailable, WorkshopError

HINT_KURYR = (
    "start kuryr-libnetwork (DevStack: `sudo systemctl restart devstack@kuryr-libnetwork`; "
    "embedded lab: `workshop lab status`)"
)
KURYR_CONFIG = "in kuryr.conf's [neutron] section (DevStack: /etc/kuryr/kuryr.conf)"
# Where Docker looks for legacy plugins (a .spec file holds the plugin's URL)
SPEC_PATHS = (
    "/etc/docker/plugins/kuryr.spec",
    "/usr/lib/docker/plugins/kuryr/kuryr.spec",
    "/usr/lib/docker/plugins/kuryr.spec",
    "/etc/docker/plugins/kuryr/kuryr.spec",
)


@dataclass(frozen=True)
class KuryrProbe:
    """kuryr as the Docker engine's host sees it: the spec file Docker reads, and the plugin's answer."""

    spec_path: str | None
    url: str | None
    answered: bool
    implements: tuple[str, ...]
    detail: str
    witness: Witness | None = None  # what the lab says of kuryr besides its answer

    def failure(self) -> WorkshopError | None:
        """The problem, with what the lab's control and kuryr's log say of its cause."""
        problem = self.problem()
        return kuryr_failure(problem, self.witness) if problem else None

    def problem(self) -> str | None:
        if not self.spec_path:
            return "Docker has no kuryr plugin spec (looked in " + ", ".join(SPEC_PATHS) + ")"
        if not self.answered:
            return f"kuryr-libnetwork at {self.url} (from {self.spec_path}) is not answering: {self.detail}"
        missing = {"NetworkDriver", "IpamDriver"} - set(self.implements)
        if missing:
            return f"kuryr at {self.url} does not implement {', '.join(sorted(missing))}"
        return None


def kuryr_failure(problem: str, witness: Witness | None) -> WorkshopError:
    """kuryr does not answer as Docker needs: what the lab's control and kuryr's log say decide
    the hint. A kuryr that runs is not to be started: its log says why it does not answer (one
    whose credentials Keystone refuses retries at start-up for minutes before it listens); one
    that stopped may have exited on an error its log keeps."""
    state = witness.state() if witness else None
    error = witness.last_error() if witness else None
    read = meaning(error, "kuryr-libnetwork", KURYR_CONFIG, refusals=False) if error else None
    # what the lab's control says is evidence, and says where the cause is not (verdict.py)
    seen = f" (kuryr {state}, {CONTROL_SAYS})" if state else ""
    said = f"; its log: {error.quoted()}" if error else ""
    if read is not None:
        return ComponentUnavailable("kuryr", f"{problem}{seen}: {read[0]}{said}", hint=read[1])
    if state == "paused":
        return ComponentUnavailable(
            "kuryr",
            f"{problem}{seen}",
            hint="resume kuryr-libnetwork (`sudo systemctl kill --signal=CONT devstack@kuryr-libnetwork`)",
        )
    if state == "running":
        where = f"its log ({', '.join(str(p) for p in witness.logs)})" if witness and witness.logs else "its log"
        return ComponentUnavailable(
            "kuryr",
            f"{problem}{seen}{said}",
            hint=f"kuryr-libnetwork runs but does not answer as Docker needs: read {where}; check that it "
            "listens where the spec file points (`[DEFAULT] kuryr_uri` in kuryr.conf)",
        )
    return ComponentUnavailable("kuryr", f"{problem}{seen}{said}", hint=HINT_KURYR)


def kuryr_refused(what: str, text: str, witness: Witness | None) -> WorkshopError:
    """kuryr answered Docker, with an error: its log holds the reason (a bare HTTP 500 carries none)."""
    error = witness.last_error(within=JUST_NOW) if witness else None
    if error is None:
        return CheckFailed(f"{what} failed although kuryr answers: {text}", hint="read kuryr-libnetwork's log")
    read = meaning(error, "kuryr-libnetwork", KURYR_CONFIG)
    if read is None:
        return CheckFailed(
            f"{what} failed although kuryr answers: {text}; kuryr's log: {error.quoted()}",
            hint=f"the error is kuryr-libnetwork's: read its log ({error.path}) around it",
        )
    return CheckFailed(f"{what} failed: {read[0]}; kuryr's log: {error.quoted()}", hint=read[1])


def _stalled_probe(client: Any, waited: float) -> WorkshopError:
    """The probe did not finish. Its container involves no network plugin, yet dockerd holds it
    while kuryr hangs (seen with kuryr-server SIGSTOPped: the probe's `docker run` or its wait
    timed out). So an engine that still answers a ping is waiting on kuryr; one that does not
    answer is the engine's own failure."""
    try:
        client.ping()
    except Exception as e:
        cfg = getattr(client, "workshop_config", None)
        return explain(e, Talk.engine(getattr(cfg, "host", "the lab's engine"), waited))
    return ComponentUnavailable(
        "kuryr",
        f"a probe container on the engine's host did not finish in {waited:.0f} s although the engine answers "
        "a ping: dockerd is waiting on its kuryr plugin, which does not answer (hung or paused?)",
        hint=HINT_KURYR,
    )


# busybox nc, not wget: busybox-static's wget crashes on POST (seen here, 1.35)
PROBE_SCRIPT = r"""
for f in {paths}; do
  if [ -f "/host$f" ]; then echo "SPEC $f"; url=$(head -n1 "/host$f" | tr -d ' \r'); echo "URL $url"; break; fi
done
[ -n "$url" ] || {{ echo NOSPEC; exit 0; }}
case "$url" in http://*) ;; *) echo "NOHTTP"; exit 0 ;; esac
hp=${{url#http://}}; hp=${{hp%%/*}}; h=${{hp%:*}}; p=${{hp##*:}}
out=$(printf 'POST /Plugin.Activate HTTP/1.0\r\nHost: %s\r\nContent-Length: 0\r\n\r\n' "$hp" | nc -w {timeout} "$h" "$p" 2>&1)
case "$out" in "HTTP/1."*" 200 "*) echo "ANSWER $(echo "$out" | tail -n1)" ;; *) echo "NOANSWER $(echo "$out" | head -n1)" ;; esac
"""


def probe(client: Any, image: str, labels: dict[str, str], name: str, timeout: float = 2.0) -> KuryrProbe:
    """Read the spec and call ``Plugin.Activate`` from the engine's own host, the way dockerd does:
    a short-lived helper container with the host's network and its / mounted read-only."""
    import time

    import requests

    from pytest_workshop.run import LABEL_RUN, expect_late_objects

    script = PROBE_SCRIPT.format(paths=" ".join(SPEC_PATHS), timeout=max(1, int(timeout)))
    container = None
    started = time.monotonic()
    try:
        container = client.containers.run(
            image,
            ["sh", "-c", script],
            name=name,
            network_mode="host",
            volumes={"/": {"bind": "/host", "mode": "ro"}},
            labels=labels,
            detach=True,
        )
        container.wait(timeout=timeout + 10)
        out = container.logs().decode(errors="replace")
    except requests.exceptions.RequestException as e:
        if "timed out" not in str(e).lower():
            raise
        if container is None and LABEL_RUN in labels:
            expect_late_objects(labels[LABEL_RUN])  # dockerd may still create it once kuryr answers
        raise _stalled_probe(client, time.monotonic() - started) from e
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except requests.exceptions.RequestException:
                # a stalled engine: the sweeps remove it (the next runs' too, should it outlive this one)
                if LABEL_RUN in labels:
                    expect_late_objects(labels[LABEL_RUN])
    fields = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.strip().splitlines())
    answer = fields.get("ANSWER")
    implements: tuple[str, ...] = ()
    if answer:
        import json

        try:
            implements = tuple(json.loads(answer).get("Implements", []))
        except ValueError:
            pass
    return KuryrProbe(
        spec_path=fields.get("SPEC"),
        url=fields.get("URL"),
        answered=answer is not None,
        implements=implements,
        detail=(fields.get("NOANSWER") or ("not an HTTP URL" if "NOHTTP" in fields else "")).strip()[:160]
        or "no answer",
    )
