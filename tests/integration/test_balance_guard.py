"""The connection extras ``min_balance`` and ``prices`` against the emulator's documented balance routes: a submit
is refused before anything is sent while the balance is below the threshold, and each result carries its cost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.exceptions import GenMediaBalanceError
from airflow_provider_genmedia.hooks.genmedia import GptGeHook, NovitaHook
from airflow_provider_genmedia.operators.novita import NovitaTaskOperator
from airflow_provider_genmedia.operators.video import BailianVideoOperator
from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger
from tests.emulator_fixtures import EmulatorControl, sample_body
from tests.unit.operators.state import StateStore
from tests.unit.operators.test_submit import TaskInstance
from tests.unit.triggers.test_task import run_to_end

PRICES = {
    "currency": "USD",
    "novita": {"per_output": 0.002, "/v3/async/txt2img": {"per_job": 0.001, "per_output": 0.0015}},
}


def connect(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorControl, conn_type: str, **extra: Any) -> str:
    """A connection of ``conn_type`` to the emulator with ``extra``; its id."""
    conn_id = f"{conn_type}_spend"
    connection = {"conn_type": conn_type, "host": emulator.url, "password": emulator.api_key, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return conn_id


def submit(hook: NovitaHook | GptGeHook, path: str) -> str:
    api, body = sample_body(path)
    return hook.submit(get_api(api).prepare(body, path))


def test_novita_below_min_balance_sends_nothing_and_says_what_to_change(
    emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(balance={"novita": 0.5})
    conn_id = connect(monkeypatch, emulator, "novita", min_balance=1, max_retries=3)
    with pytest.raises(GenMediaBalanceError) as raised:
        submit(NovitaHook(conn_id), "/v3/async/txt2img")
    message = str(raised.value)
    assert "connection 'novita_spend'" in message
    assert "0.5 USD" in message
    assert "below its min_balance 1" in message
    assert "nothing was sent" in message
    assert "lower or clear the extra min_balance" in message
    assert emulator.api_key not in message
    assert raised.value.resendable  # nothing was sent: no job exists
    stats = emulator.stats()
    assert stats["submit_requests"]["novita"] == 0
    assert stats["balance_reads"]["novita"] == 1  # read once, never retried: the refusal is not transient


def test_novita_at_or_above_min_balance_submits_and_pays(
    emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(balance={"novita": 1.0015}, prices={"novita": {"per_job": 0.001}})
    hook = NovitaHook(connect(monkeypatch, emulator, "novita", min_balance=1))
    assert hook.balance().amount == pytest.approx(1.0015)
    submit(hook, "/v3/async/txt2img")
    submit(hook, "/v3/async/txt2img")
    with pytest.raises(GenMediaBalanceError, match=r"is 0\.9995 USD, below its min_balance 1"):
        submit(hook, "/v3/async/txt2img")
    assert emulator.stats()["submits"]["novita"] == 2


def test_gptge_refuses_once_the_keys_quota_left_is_below_min_balance(
    emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(balance={"gptge": 2}, prices={"bailian": {"per_job": 1.5}})
    hook = GptGeHook(connect(monkeypatch, emulator, "gptge", min_balance=0.75))
    submit(hook, "/task/bailian/text2video")
    balance = hook.balance()
    assert (balance.amount, balance.currency) == (0.5, "USD")
    with pytest.raises(GenMediaBalanceError, match=r"gpt\.ge balance of connection 'gptge_spend' is 0\.5 USD"):
        submit(hook, "/avatar/generation")
    stats = emulator.stats()
    assert stats["submit_requests"] == {"novita": 0, "jimeng": 0, "bailian": 1, "avatar": 0}


def test_without_min_balance_the_balance_is_never_read(
    emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(balance={"novita": 0})
    submit(NovitaHook(connect(monkeypatch, emulator, "novita")), "/v3/async/txt2img")
    assert emulator.stats()["balance_reads"]["novita"] == 0


def test_an_operator_below_min_balance_fails_without_retry_and_keeps_no_record(
    emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(balance={"gptge": 0.2})
    conn_id = connect(monkeypatch, emulator, "gptge", min_balance=1)
    store = StateStore()
    operator = BailianVideoOperator(
        task_id="video", conn_id=conn_id, model="wan2.6-t2v", prompt="a kite", size="1280*720", duration=5
    )
    with pytest.raises(AirflowFailException, match="min_balance"):
        operator.execute({"task_state_store": store, "ti": TaskInstance()})  # type: ignore[arg-type]
    assert emulator.stats()["submit_requests"]["bailian"] == 0
    assert store.values == {}  # nothing was sent, so a later try has nothing to resume


def test_a_priced_result_carries_its_cost_and_the_log_says_it(
    emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conn_id = connect(monkeypatch, emulator, "novita", prices=json.dumps(PRICES))
    _, body = sample_body("/v3/async/txt2img")
    operator = NovitaTaskOperator(
        task_id="generate", conn_id=conn_id, endpoint="txt2img", body=body, deferrable=False, poll_interval=0.05
    )
    result = operator.execute({"task_state_store": StateStore(), "ti": TaskInstance()})  # type: ignore[arg-type]
    assert result["usage"] == {
        "outputs": 2,
        "video_seconds": None,
        "resolution": "256x192",
        "reported": None,
        "estimated_cost": 0.004,
        "currency": "USD",
    }
    # The task log (the operator's logger, written by Airflow's structlog): one line per job.
    [line] = [line for line in capsys.readouterr().out.splitlines() if "usage:" in line]
    assert "succeeded with 2 output(s); usage: 2 outputs, 256x192; estimated cost 0.004 USD" in line


async def test_the_trigger_prices_the_result_it_completes_from_the_connection(
    emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = {"currency": "CNY", "bailian": {"per_job": 0.2, "/task/bailian/text2video": {"per_video_second": 0.7}}}
    conn_id = connect(monkeypatch, emulator, "gptge", prices=prices)
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DEFER_SETTLE", "0")
    path = "/task/bailian/text2video"
    _, body = sample_body(path)
    task_id = emulator.submit("bailian", path, body)
    trigger = GenMediaTaskTrigger("bailian", task_id, conn_id, 0.05, request=body, path=path)
    [event] = await run_to_end(trigger)
    assert event.payload["status"] == "succeeded"
    assert event.payload["result"]["usage"] == {
        "outputs": 1,
        "video_seconds": 5.0,
        "resolution": "1280x720",
        "reported": {"video_count": 1, "video_ratio": "1280*720", "video_duration": 5},
        "estimated_cost": 3.5,
        "currency": "CNY",
    }
