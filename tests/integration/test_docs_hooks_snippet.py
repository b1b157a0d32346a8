"""The snippet of docs/howto/hooks.md runs as the page shows it: its task functions against the emulator."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.conftest import REPO
from tests.emulator_fixtures import EmulatorControl

SNIPPET = REPO / "docs" / "snippets" / "genmedia_hooks_in_tasks.py"


def load_snippet() -> ModuleType:
    spec = importlib.util.spec_from_file_location("genmedia_hooks_in_tasks", SNIPPET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_task_submits_with_the_hook_once_and_another_reads_the_result(emulator_connections: EmulatorControl) -> None:
    snippet = load_snippet()
    task_id = snippet.submit_txt2img.function("a lighthouse")
    emulator_connections.wait("novita", task_id)

    state = snippet.read_task.function(task_id)

    assert state["status"] == "succeeded"
    assert len(state["urls"]) == 1
    assert emulator_connections.stats()["submits"]["novita"] == 1
