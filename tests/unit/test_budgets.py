"""The daily spend ledger: units per UTC day, create-if-absent objects that racing threads, processes and S3 writers
cannot take twice, and the refusal that names what to change."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_genmedia.budgets import DailyBudget, SpendLedger
from airflow_provider_genmedia.exceptions import GenMediaBudgetExceededError, GenMediaValidationError
from tests.s3_fixtures import BUCKET, S3_CONN_ID

CONN = "novita_default"
OWNER = {"api": "novita", "path": "/v3/async/img2img"}


def clock_at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def ledger_at(root: Path, moment: datetime) -> SpendLedger:
    return SpendLedger(ObjectStoragePath(f"file://{root}"), clock=clock_at(moment))


def test_the_day_is_the_utc_date_and_rolls_over_at_utc_midnight(tmp_path: Path) -> None:
    budget = DailyBudget(max_jobs=2)
    before_midnight = datetime(2026, 12, 5, 23, 59, 59, tzinfo=UTC)
    ledger_at(tmp_path, before_midnight).take(CONN, budget, 1, OWNER)
    # 18:30 in New York on the 5th is 23:30 UTC: still the 5th's budget.
    ledger_at(tmp_path, datetime(2026, 12, 5, 18, 30, tzinfo=timezone(timedelta(hours=-5)))).take(
        CONN, budget, 1, OWNER
    )
    with pytest.raises(GenMediaBudgetExceededError):
        ledger_at(tmp_path, before_midnight).take(CONN, budget, 1, OWNER)

    midnight = ledger_at(tmp_path, datetime(2026, 12, 6, 0, 0, 0, tzinfo=UTC))
    midnight.take(CONN, budget, 1, OWNER)

    assert midnight.used(CONN, "jobs", "2026-12-05") == 2
    assert midnight.used(CONN, "jobs", "2026-12-06") == 1


def test_the_refusal_names_the_connection_budget_day_count_and_how_to_raise_it(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path, datetime(2026, 12, 5, 12, tzinfo=UTC))
    for _ in range(3):
        ledger.take(CONN, DailyBudget(max_jobs=3), 1, OWNER)

    with pytest.raises(GenMediaBudgetExceededError) as refused:
        ledger.take(CONN, DailyBudget(max_jobs=3), 1, OWNER)

    message = str(refused.value)
    assert "connection 'novita_default'" in message
    assert "max_jobs_per_day=3" in message
    assert "3 jobs were already counted on 2026-12-05 (UTC)" in message
    assert "Nothing was sent" in message
    assert "raise the extra max_jobs_per_day of connection 'novita_default'" in message


def test_each_connection_has_its_own_budget(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path, datetime(2026, 12, 5, 12, tzinfo=UTC))
    ledger.take(CONN, DailyBudget(max_jobs=1), 1, OWNER)
    ledger.take("novita_team_b", DailyBudget(max_jobs=1), 1, OWNER)
    with pytest.raises(GenMediaBudgetExceededError):
        ledger.take(CONN, DailyBudget(max_jobs=1), 1, OWNER)


def test_an_output_budget_takes_a_unit_per_output_and_nothing_when_too_few_are_left(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path, datetime(2026, 12, 5, 12, tzinfo=UTC))
    budget = DailyBudget(max_jobs=10, max_outputs=5)
    ledger.take(CONN, budget, 4, OWNER)

    with pytest.raises(GenMediaBudgetExceededError, match=r"max_outputs_per_day=5.*this submit asks for 2"):
        ledger.take(CONN, budget, 2, OWNER)

    # The refused submit holds nothing: neither its job unit nor any output unit.
    assert ledger.used(CONN, "jobs", "2026-12-05") == 1
    assert ledger.used(CONN, "outputs", "2026-12-05") == 4
    ledger.take(CONN, budget, 1, OWNER)
    assert ledger.used(CONN, "outputs", "2026-12-05") == 5


def test_a_zero_budget_allows_nothing(tmp_path: Path) -> None:
    with pytest.raises(GenMediaBudgetExceededError, match="max_jobs_per_day=0"):
        ledger_at(tmp_path, datetime(2026, 12, 5, tzinfo=UTC)).take(CONN, DailyBudget(max_jobs=0), 1, OWNER)


def test_a_released_reservation_frees_its_units(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path, datetime(2026, 12, 5, 12, tzinfo=UTC))
    budget = DailyBudget(max_jobs=1, max_outputs=4)
    reservation = ledger.take(CONN, budget, 4, OWNER)
    assert len(reservation.objects) == 5

    reservation.release()

    assert ledger.used(CONN, "outputs", "2026-12-05") == 0
    ledger.take(CONN, budget, 4, OWNER)


def race(take: Callable[[], bool], contenders: int) -> int:
    """Start ``contenders`` threads at once, each taking one unit; the number that got one."""
    barrier = threading.Barrier(contenders)
    won: list[bool] = []

    def contend() -> None:
        barrier.wait()
        won.append(take())

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(won)


def try_take(ledger: SpendLedger, budget: DailyBudget) -> bool:
    try:
        ledger.take(CONN, budget, 1, OWNER)
    except GenMediaBudgetExceededError:
        return False
    return True


def test_racing_threads_take_exactly_the_budget_on_local_disk(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path, datetime(2026, 12, 5, 12, tzinfo=UTC))
    budget = DailyBudget(max_jobs=7)
    assert race(lambda: try_take(ledger, budget), 24) == 7
    assert ledger.used(CONN, "jobs", "2026-12-05") == 7


def _take_in_process(root: str, start: object, wins: object) -> None:
    """A process of the race below: wait for the start, try three takes, count the wins."""
    ledger = SpendLedger(ObjectStoragePath(f"file://{root}"), clock=clock_at(datetime(2026, 12, 5, 12, tzinfo=UTC)))
    start.wait()  # type: ignore[attr-defined]
    for _ in range(3):
        if try_take(ledger, DailyBudget(max_jobs=7)):
            with wins.get_lock():  # type: ignore[attr-defined]
                wins.value += 1  # type: ignore[attr-defined]


def test_racing_processes_take_exactly_the_budget_on_local_disk(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    start, wins = context.Event(), context.Value("i", 0)
    processes = [context.Process(target=_take_in_process, args=(str(tmp_path), start, wins)) for _ in range(6)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert wins.value == 7
    assert ledger_at(tmp_path, datetime(2026, 12, 5, tzinfo=UTC)).used(CONN, "jobs", "2026-12-05") == 7


def test_racing_writers_take_exactly_the_budget_on_s3(s3_server: str) -> None:
    root = ObjectStoragePath(f"s3://{BUCKET}/ledger-race", conn_id=S3_CONN_ID)
    ledger = SpendLedger(root, clock=clock_at(datetime(2026, 12, 5, 12, tzinfo=UTC)))
    budget = DailyBudget(max_jobs=5)

    assert race(lambda: try_take(ledger, budget), 12) == 5
    assert ledger.used(CONN, "jobs", "2026-12-05") == 5
    slot = root / CONN / "2026-12-05" / "jobs" / "000001.json"
    # The conditional PUT itself refuses an object that exists: this is what makes the race safe.
    assert ledger._create(slot, b"{}") is False


def test_a_store_that_cannot_create_only_if_absent_is_refused() -> None:
    with pytest.raises(GenMediaValidationError, match=r"^\[genmedia\] spend_ledger_path: memory:// cannot"):
        SpendLedger(ObjectStoragePath("memory://ledger"))


def test_the_default_ledger_is_under_airflow_home_for_the_local_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__GENMEDIA__SPEND_LEDGER_PATH", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert str(SpendLedger.configured().root) == f"file://{tmp_path}/genmedia/spend-ledger"


def test_a_distributed_executor_must_name_a_shared_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__GENMEDIA__SPEND_LEDGER_PATH", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    with pytest.raises(GenMediaValidationError, match="AIRFLOW__GENMEDIA__SPEND_LEDGER_PATH") as refused:
        SpendLedger.configured()
    assert "budget" in str(refused.value)
    assert "nothing was sent" in str(refused.value)
