"""One mapping from the provider's errors to Airflow's outcomes, and every operator and the sensor using it: input that
can never pass fails the task without retry, and nothing is sent (real local HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS
from airflow.sdk import BaseOperator
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.exceptions import (
    GenMediaBudgetExceededError,
    GenMediaError,
    GenMediaServerError,
    GenMediaTaskFailedError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
    MediaTooLargeError,
    UncheckedOutputError,
)
from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator, NovitaTaskOperator
from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.review import MediaReviewOperator
from airflow_provider_genmedia.operators.video import AvatarVideoOperator, BailianVideoOperator, JimengVideoOperator
from airflow_provider_genmedia.outcomes import airflow_outcome, airflow_outcomes
from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor
from tests.unit.triggers.vendor import use_connection

AVATAR_URL = "https://example.com/avatar.png"
UNCERTAIN = GenMediaUncertainSubmitError("novita", "/v3/async/img2img", "HTTP 502", sent_at="2026-12-05T10:00:00Z")


@pytest.mark.parametrize(
    "error",
    [
        GenMediaValidationError("prompt", "is empty"),
        GenMediaBudgetExceededError("max_jobs_per_day=2, and 2 jobs were already counted"),
        GenMediaTaskFailedError("novita task t failed: bad model"),
        MediaTooLargeError("over max_bytes"),
        UncheckedOutputError("output 0 was not checked for NSFW"),
    ],
)
def test_a_permanent_error_fails_without_retry_with_its_own_message(error: GenMediaError) -> None:
    outcome = airflow_outcome(error)
    assert isinstance(outcome, AirflowFailException)
    assert str(outcome) == str(error)
    assert str(airflow_outcome(error, "Nothing more was published")) == f"Nothing more was published: {error}"


def test_an_uncertain_submit_fails_or_retries_as_the_operator_chose() -> None:
    failed = airflow_outcome(UNCERTAIN, on_uncertain_submit="fail")
    retried = airflow_outcome(UNCERTAIN, on_uncertain_submit="resubmit")

    assert isinstance(failed, AirflowFailException)
    sent = "A novita submit to /v3/async/img2img sent at 2026-12-05T10:00:00Z"
    assert str(failed).startswith(f"{sent} may have created a billed job: HTTP 502. Look in the novita console")
    assert isinstance(retried, AirflowException) and not isinstance(retried, AirflowFailException)
    assert str(retried).endswith("A retry submits again, as on_uncertain_submit='resubmit' asks")


def test_a_transient_error_keeps_airflows_retries_and_is_raised_as_it_is() -> None:
    error = GenMediaServerError("unavailable", status_code=503)
    assert airflow_outcome(error) is None
    with pytest.raises(GenMediaServerError), airflow_outcomes():
        raise error


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch, vendor: HTTPServer) -> HTTPServer:
    """The local server as both vendors' default connections: whatever reaches it was sent."""
    use_connection(monkeypatch, "novita", vendor)
    use_connection(monkeypatch, "gptge", vendor)
    return vendor


def rendered(operator: BaseOperator, **values: Any) -> BaseOperator:
    """``operator`` as a template rendered ``values`` into it: checked when the task runs, not when it is built."""
    for name, value in values.items():
        setattr(operator, name, value)
    return operator


def broken_image(tmp_path: Path) -> str:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    return str(broken)


OPERATORS: dict[str, Callable[[Path], tuple[BaseOperator, str]]] = {
    "NovitaImg2ImgOperator": lambda tmp: (
        NovitaImg2ImgOperator(task_id="t", image=broken_image(tmp), prompt="p", model_name="m", deferrable=False),
        "Invalid input, nothing was sent to novita: image: is not a readable image",
    ),
    "NovitaTaskOperator": lambda tmp: (
        rendered(NovitaTaskOperator(task_id="t", endpoint="txt2video", body={"x": 1}, deferrable=False), body="[1]"),
        "Invalid input, nothing was sent to novita: body: must be a JSON object",
    ),
    "JimengVideoOperator": lambda tmp: (
        JimengVideoOperator(task_id="t", prompt="x", aspect_ratio="2:1", deferrable=False),
        "Invalid input, nothing was sent to jimeng: aspect_ratio: ",
    ),
    "BailianVideoOperator": lambda tmp: (
        BailianVideoOperator(task_id="t", model="wan2.6-i2v", prompt="x", image="/no/such.png", deferrable=False),
        "Invalid input, nothing was sent to bailian: image: '/no/such.png' is not an existing file",
    ),
    "AvatarVideoOperator": lambda tmp: (
        AvatarVideoOperator(task_id="t", avatar_url=AVATAR_URL, deferrable=False),
        "Invalid input, nothing was sent to avatar: ",
    ),
    "GenMediaTaskSensor": lambda tmp: (
        rendered(GenMediaTaskSensor(task_id="t", api="novita", genmedia_task_id="t-1", deferrable=False), api="nope"),
        "api: unknown API 'nope'",
    ),
    "NsfwFilterOperator": lambda tmp: (
        NsfwFilterOperator(task_id="t", result={"api": "novita"}),
        "result.task_id: Field required",
    ),
    "PublishMediaOperator": lambda tmp: (
        rendered(PublishMediaOperator(task_id="t", result={}, destination=tmp.as_uri()), destination=str(tmp)),
        "destination: ",
    ),
}


@pytest.mark.parametrize("name", [*OPERATORS, "MediaReviewOperator"])
def test_an_input_error_fails_without_retry_and_sends_nothing(name: str, vendors: HTTPServer, tmp_path: Path) -> None:
    if name == "MediaReviewOperator":
        if not AIRFLOW_V_3_1_PLUS:
            pytest.skip("human-in-the-loop tasks need Airflow 3.1+")
        operator, message = MediaReviewOperator(task_id="t", item="not an item"), "item: expected one entry"
    else:
        operator, message = OPERATORS[name](tmp_path)

    with pytest.raises(AirflowFailException) as raised:
        operator.execute(context={})  # type: ignore[arg-type]

    assert str(raised.value).startswith(message)
    assert isinstance(raised.value.__cause__, GenMediaError) and raised.value.__cause__.permanent
    assert vendors.log == []
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "broken.png"])
