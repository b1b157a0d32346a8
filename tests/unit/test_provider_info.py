from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from typing import Any

import jsonschema
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_genmedia import connection_type_info, get_provider_info
from airflow_provider_genmedia.hooks.genmedia import GptGeHook, NovitaHook

CONN_TYPES = ("novita", "gptge")


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


def registered_hooks() -> Any:
    """The hooks Airflow's providers manager registered (from the Task SDK's manager where it has one, 3.2+)."""
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:
        from airflow.providers_manager import ProvidersManager

        return ProvidersManager().hooks
    return ProvidersManagerTaskRuntime().hooks


def test_providers_manager_registers_both_hooks() -> None:
    hooks = registered_hooks()
    assert hooks["novita"] is not None
    assert hooks["gptge"] is not None
    assert hooks["novita"].hook_class_name.endswith("NovitaHook")
    assert hooks["gptge"].hook_class_name.endswith("GptGeHook")
    assert hooks["novita"].connection_testable


HOOK_META = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
print(json.dumps([meta.model_dump() for meta in HookMetaService.hook_meta_data()]))
"""


@pytest.fixture(scope="module")
def ui_forms() -> dict[str, dict[str, Any]]:
    """What the API server hands the UI's connection form (``/ui/connections/hook_meta``), computed in a process of
    its own as the API server does, by connection type."""
    done = subprocess.run([sys.executable, "-c", HOOK_META], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {meta["connection_type"]: meta for meta in json.loads(done.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_the_ui_shows_the_declared_connection_form_on_every_airflow(
    ui_forms: dict[str, dict[str, Any]], conn_type: str
) -> None:
    """Airflow 3.2+ builds the form from the provider info's ``conn-fields``, 3.0-3.1 from the hook's own form
    methods; either way the same fields, labels and help."""
    form, declared = ui_forms[conn_type], connection_type_info(conn_type)
    assert set(form["extra_fields"] or {}) == set(declared["conn-fields"])
    for name, field in declared["conn-fields"].items():
        shown = form["extra_fields"][name]
        assert (shown["schema"]["title"], shown["description"]) == (field["label"], field["description"])
        assert field["schema"]["type"][0] in (*shown["schema"]["type"], "number")  # 3.0-3.1: a number is text
    behaviour, standard = declared["ui-field-behaviour"], form["standard_fields"]
    hidden = ["url_schema" if name == "schema" else name for name in behaviour["hidden-fields"]]
    assert [standard[name]["hidden"] for name in hidden] == [True, True, True]
    assert standard["password"]["title"] == behaviour["relabeling"]["password"]
    assert standard["host"]["title"] == behaviour["relabeling"]["host"]
    assert standard["host"]["placeholder"] == behaviour["placeholders"]["host"]
    assert standard["password"]["placeholder"] == behaviour["placeholders"]["password"]


def test_the_gptge_form_says_which_apis_it_serves_in_a_placeholder_not_a_label() -> None:
    declared = connection_type_info("gptge")
    placeholder = declared["ui-field-behaviour"]["placeholders"]["password"]
    assert all(api in placeholder for api in ("Jimeng", "Bailian", "Wan", "avatar")), placeholder
    # A label longer than the form's label column wraps and pushes its field out of line with the others.
    for conn_type in CONN_TYPES:
        relabeled = connection_type_info(conn_type)["ui-field-behaviour"]["relabeling"]
        assert relabeled == {"password": "API Key", "host": "Base URL"}, conn_type
    # The UI names the type by the hook class once it was imported, by the provider info before: both agree.
    hook = registered_hooks()["gptge"]
    assert hook is not None
    assert hook.hook_name == declared["hook-name"] == "gpt.ge"


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="Airflow 3.0's Providers page links no provider's own documentation")
def test_the_providers_page_links_to_the_projects_documentation() -> None:
    import tomllib

    from airflow.providers_manager import ProvidersManager

    from tests.conftest import REPO

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]
    provider = ProvidersManager().providers["airflow-provider-genmedia"]
    assert provider.data["documentation-url"].strip() == declared  # 3.1-3.2 keep the space after the comma
    assert declared.startswith("https://") and "airflow.apache.org" not in declared
