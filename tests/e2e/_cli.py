"""Running the ``outpost`` command line in-process (typer's test runner) against the e2e
platform, with a config file of the test's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from outpost_client.cli.app import app


class Cli:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()

    def run(self, *args: str, ok: bool = True) -> Any:
        result = self.runner.invoke(
            app,
            list(args),
            env={"OUTPOST_CONFIG": str(self.config), "NO_COLOR": "1", "COLUMNS": "120"},
            catch_exceptions=False,
        )
        if ok:
            assert result.exit_code == 0, (args, result.exit_code, result.output)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)
