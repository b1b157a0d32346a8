"""The docs' example of trying a DAG on the local stack (docs/snippets/try_on_stack.py, shown in docs/emulator.md)
runs as written: a user copying it gets a deployment that runs the img2img example and pays for one job."""

from __future__ import annotations

import runpy

from tests.conftest import REPO


def test_the_try_on_stack_snippet_runs_as_written() -> None:
    snippet = runpy.run_path(str(REPO / "docs" / "snippets" / "try_on_stack.py"))
    snippet["main"]()  # it asserts the run succeeded and that the emulator was paid once
