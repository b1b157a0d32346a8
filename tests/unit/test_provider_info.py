from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files

import jsonschema

from airflow_provider_genmedia import get_provider_info
from airflow_provider_genmedia.hooks.genmedia import GptGeHook, NovitaHook


def test_provider_info_matches_airflows_schema() -> None:
    schema = json.loads((files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_hooks_match_their_connection_types() -> None:
    declared = {entry["connection-type"]: entry for entry in get_provider_info()["connection-types"]}
    for hook in (NovitaHook, GptGeHook):
        entry = declared[hook.conn_type]
        assert entry["hook-class-name"] == f"{hook.__module__}.{hook.__name__}"
        assert entry["ui-field-behaviour"]["placeholders"]["host"] == hook.default_base_url
        assert "_" not in hook.conn_type and "-" not in hook.conn_type


def test_providers_manager_registers_hooks_fields_and_behaviours() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["novita"].hook_class_name.endswith("NovitaHook")
    assert hooks["gptge"].hook_class_name.endswith("GptGeHook")
    assert hooks["novita"].connection_testable
    manager = ProvidersManager()
    behaviour = manager.field_behaviours["gptge"]
    assert set(behaviour["hidden_fields"]) == {"port", "schema", "login"}
    assert behaviour["relabeling"]["password"].startswith("API Key")
    widgets = manager.connection_form_widgets
    assert widgets["extra__novita__timeout"].field["schema"]["type"] == ["number", "null"]
    assert widgets["extra__gptge__max_retries"].field["value"] == 4


def airflow_json(*command: str) -> list[dict[str, str]]:
    """Run an ``airflow`` CLI command with ``-o json`` and decode its table (the last line it prints)."""
    done = subprocess.run([sys.executable, "-m", "airflow", *command, "-o", "json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_airflow_cli_lists_the_provider_and_both_connection_types() -> None:
    assert "airflow-provider-genmedia" in {entry["package_name"] for entry in airflow_json("providers", "list")}
    types = {entry["connection_type"]: entry["class"] for entry in airflow_json("providers", "hooks")}
    assert types["novita"] == "airflow_provider_genmedia.hooks.genmedia.NovitaHook"
    assert types["gptge"] == "airflow_provider_genmedia.hooks.genmedia.GptGeHook"


def test_the_gptge_form_says_which_apis_it_serves() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    declared = {entry["connection-type"]: entry for entry in get_provider_info()["connection-types"]}
    label = declared["gptge"]["ui-field-behaviour"]["relabeling"]["password"]
    assert all(api in label for api in ("Jimeng", "Bailian", "Wan", "avatar")), label
    # The UI names the type by the hook class once it was imported, by the provider info before: both agree.
    assert ProvidersManagerTaskRuntime().hooks["gptge"].hook_name == declared["gptge"]["hook-name"] == "gpt.ge"


def test_the_providers_page_links_to_the_projects_documentation() -> None:
    import tomllib

    from airflow.providers_manager import ProvidersManager

    from tests.conftest import REPO

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]
    provider = ProvidersManager().providers["airflow-provider-genmedia"]
    assert provider.data["documentation-url"] == declared
    assert declared.startswith("https://") and "airflow.apache.org" not in declared
