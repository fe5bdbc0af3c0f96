"""The command tree itself: every command's help ends with an example, completion scripts
are offered, bad options are refused before any request, and the export commands run end to
end over a fake transport shaped like the exports service's answers (decision 65;
``tests/e2e/test_cli_exports.py`` runs them against the platform)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from outpost_client import Client
from outpost_client.cli import context
from outpost_client.cli.app import app

pytestmark = pytest.mark.unit

runner = CliRunner()


def commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):
            yield from commands(command, path)
        else:
            yield path, command


def test_every_command_has_help_with_an_example() -> None:
    found = list(commands(get_command(app)))
    assert len(found) > 60
    for path, command in found:
        assert command.help, path
        assert (command.epilog or "").startswith("Example: outpost "), path
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Example: outpost" in result.output, path


def test_the_issue_s_groups_are_all_there() -> None:
    names = {path[0] for path, _ in commands(get_command(app))}
    wanted = {
        "login", "whoami", "orgs", "users", "api-keys", "oauth-clients", "devices", "groups",
        "sites", "tokens", "commands", "state", "alert-rules", "alerts", "channels", "exports",
        "audit-log", "events", "readings", "device", "watch", "config-artefacts", "bindings",
    }  # fmt: skip
    assert wanted <= names


def test_the_installed_command_offers_completion_scripts() -> None:
    script = Path(sys.executable).parent / "outpost"  # the console script of the package
    for shell, marker in (("bash", "_OUTPOST_COMPLETE=complete_bash"),):
        done = subprocess.run(
            [str(script), "--show-completion", shell],
            capture_output=True,
            text=True,
            check=False,
            # A process that starts Python and imports the whole CLI, compiling it when no
            # bytecode is cached (PYTHONDONTWRITEBYTECODE): seconds on a quiet machine, more
            # than a minute on a loaded one. A hang still fails, after ten minutes.
            timeout=600,
        )
        assert done.returncode == 0 and marker in done.stdout, (shell, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "xml", "whoami"], "xml"),
        (["devices", "list", "-o", "html"], "html"),
        (["alert-rules", "create", "r", "--sensor", "t", "--condition", "hot"], "condition"),
        (["alert-rules", "create", "r", "--condition", "> 30"], "--sensor"),
        (["alert-rules", "create", "r", "--condition", "nodata 60"], "--sensor"),
        (["readings", "gw-1", "--fn", "median"], "median"),
        (["readings", "--since", "1h"], "name one device"),
        (["exports", "create", "--include", "photos"], "PHOTOS"),
        (["device", "simulate", "--protocol", "coap"], "nats or mqtt"),
    ],
)
def test_bad_options_are_refused_before_any_request(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[httpx.Request] = []
    fake(monkeypatch, lambda r: sent.append(r) or httpx.Response(500))
    result = runner.invoke(
        app, args, env={"OUTPOST_CONFIG": str(tmp_path / "c.yaml"), "OUTPOST_API_KEY": "k"}
    )
    assert result.exit_code != 0
    assert message in result.output
    assert sent == []


def fake(monkeypatch: pytest.MonkeyPatch, answer: Any) -> None:
    """Every client the CLI builds talks to ``answer`` instead of a gateway."""

    def client(self: context.State, profile: Any = None) -> Client:
        chosen = profile or self.profile()
        return Client(chosen.url, chosen.token, transport=httpx.MockTransport(answer))

    monkeypatch.setattr(context.State, "client", client)


def test_export_create_follows_the_job_and_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"ts,value\n" + b"2026-01-01T00:00:00Z,1.5\n" * 1000
    polls = iter(
        [
            {"status": "RUNNING", "progress": {"rowsWritten": 400, "rowsEstimated": 1000}},
            {"status": "READY", "readingCount": 1000, "sizeBytes": len(body),
             "downloadUrl": "/api/v1/exports/e1/file"},
        ]
    )  # fmt: skip
    seen: list[tuple[str, str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        content = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, content))
        if request.method == "POST":
            return httpx.Response(201, json={"id": "e1", "status": "PENDING", **content})
        if request.url.path.endswith("/file"):
            return httpx.Response(200, content=body)
        return httpx.Response(200, json={"id": "e1", **next(polls)})

    fake(monkeypatch, answer)
    target = tmp_path / "out.csv"
    result = runner.invoke(
        app,
        [
            "exports", "create", "--site", "s1", "--from", "2026-01-01T00:00:00Z",
            "--to", "2026-01-02T00:00:00Z", "--include", "readings,annotations",
            "--format", "ndjson", "--download", str(target), "-o", "json",
        ],
        env={"OUTPOST_CONFIG": str(tmp_path / "c.yaml"), "OUTPOST_API_KEY": "sk_live_k"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == body
    method, path, created = seen[0]
    assert (method, path) == ("POST", "/api/v1/exports")
    assert created == {
        "scopeType": "SITE",
        "scopeId": "s1",
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "includes": ["READINGS", "ANNOTATIONS"],
        "format": "NDJSON",
    }
    assert [p for _, p, _ in seen[1:]] == [
        "/api/v1/exports/e1",
        "/api/v1/exports/e1",
        "/api/v1/exports/e1/file",
    ]
    assert json.loads(result.stdout)["status"] == "READY"


def test_export_cancel_refuses_a_finished_job_and_guards_the_race(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE of a finished export deletes it (decision 65): ``cancel`` refuses a finished
    one without sending it, and sends the version it saw as If-Match, so a job that finished
    in between (412) is reported, not deleted, and one that only started is cancelled."""
    env = {"OUTPOST_CONFIG": str(tmp_path / "c.yaml"), "OUTPOST_API_KEY": "sk_live_k"}
    # each GET answers the next (status, version); the last one repeats
    views = {
        "e1": [("READY", 3)],
        "e2": [("RUNNING", 2)],
        "e3": [("RUNNING", 2), ("READY", 3)],  # finished between the GET and the DELETE
        "e4": [("PENDING", 1), ("RUNNING", 2)],  # started between them: cancelled at 2
    }
    deletes: list[tuple[str, str | None]] = []
    current: dict[str, int] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        ident = request.url.path.rsplit("/", 1)[-1]
        if request.method == "DELETE":
            deletes.append((ident, request.headers.get("if-match")))
            if request.headers.get("if-match") != f'"{current[ident]}"':
                return httpx.Response(
                    412, json={"type": "precondition_failed", "message": "changed"}
                )
            return httpx.Response(204)
        seen = views[ident]
        now, version = seen.pop(0) if len(seen) > 1 else seen[0]
        # the job moves on as soon as it has been read
        current[ident] = seen[0][1]
        return httpx.Response(200, json={"id": ident, "status": now, "version": version})

    fake(monkeypatch, answer)
    done = runner.invoke(app, ["exports", "cancel", "e1"], env=env)
    assert done.exit_code == 1 and "is READY: nothing to cancel" in done.output
    running = runner.invoke(app, ["exports", "cancel", "e2"], env=env)
    assert running.exit_code == 0 and "cancelled e2" in running.output
    raced = runner.invoke(app, ["exports", "cancel", "e3"], env=env)
    assert raced.exit_code == 1 and "is READY: nothing to cancel" in raced.output
    started = runner.invoke(app, ["exports", "cancel", "e4"], env=env)
    assert started.exit_code == 0 and "cancelled e4" in started.output
    assert deletes == [("e2", '"2"'), ("e3", '"2"'), ("e4", '"1"'), ("e4", '"2"')]
    deleted = runner.invoke(app, ["exports", "delete", "e1", "--if-match", "3"], env=env)
    assert deleted.exit_code == 0 and "deleted e1" in deleted.output
    assert deletes[-1] == ("e1", '"3"')


def test_typer_is_what_runs_it() -> None:
    assert isinstance(app, typer.Typer)


def test_every_command_that_prints_an_answer_takes_an_output_format() -> None:
    silent = {("login",), ("logout",), ("profiles", "use"), ("exports", "download"),
              ("exports", "cancel")}  # fmt: skip
    for path, command in commands(get_command(app)):
        if path in silent or path[-1] in ("delete", "revoke"):
            continue
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        assert "-o" in options, path


@pytest.mark.parametrize(
    ("args", "sent_sensor"),
    [
        (["--condition", "offline 300"], None),
        (["--condition", "offline 300", "--sensor", "temp"], "temp"),
        (["--condition", "> 30", "--set", "sensor=temp"], "temp"),
    ],
)
def test_an_offline_rule_is_created_without_sensor(
    args: list[str], sent_sensor: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 71: ``--sensor`` is needed for every condition but ``offline N``; without
    it the body has no ``sensor`` at all (the API's default)."""
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        view = {"id": "r1", "sensor": body.get("sensor"), **body}
        return httpx.Response(201, json=view)

    fake(monkeypatch, answer)
    result = runner.invoke(
        app,
        ["alert-rules", "create", "gone", *args, "-o", "json"],
        env={"OUTPOST_CONFIG": str(tmp_path / "c.yaml"), "OUTPOST_API_KEY": "k"},
    )
    assert result.exit_code == 0, result.output
    [body] = bodies
    assert body.get("sensor") == sent_sensor and ("sensor" in body) == (sent_sensor is not None)
    assert body["scope"] == {"type": "ORGANIZATION"}
