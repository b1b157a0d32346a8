"""The emulator's balance routes, as the vendors document them, lowered per job at the prices it is given; and the
usage that Bailian's task results report."""

from __future__ import annotations

import pytest
import requests

from tests.emulator_fixtures import EmulatorControl, sample_body

NOVITA_BALANCE = "/openapi/v1/billing/balance/detail"
GPTGE_QUOTA = "/v1/dashboard/billing/subscription"
GPTGE_USAGE = "/v1/dashboard/billing/usage"


def test_novita_answers_its_balance_in_ten_thousandths_of_a_dollar_as_strings(emulator: EmulatorControl) -> None:
    emulator.configure(balance={"novita": 12.5})
    response = emulator.call("GET", NOVITA_BALANCE)
    assert response.status_code == 200
    assert response.json() == {
        "availableBalance": "125000",
        "cashBalance": "125000",
        "creditLimit": "0",
        "pendingCharges": "0",
        "outstandingInvoices": "0",
    }


def test_gptge_answers_the_keys_quota_and_its_usage_in_hundredths(emulator: EmulatorControl) -> None:
    emulator.configure(balance={"gptge": 5}, prices={"jimeng": {"per_job": 1.25}})
    emulator.submit("jimeng", "/task/jimeng/text2video", sample_body("/task/jimeng/text2video")[1])
    assert emulator.call("GET", GPTGE_QUOTA).json() == {
        "object": "billing_subscription",
        "has_payment_method": True,
        "soft_limit_usd": 5.0,
        "hard_limit_usd": 5.0,
        "system_hard_limit_usd": 5.0,
        "access_until": 0,
    }
    assert emulator.call("GET", GPTGE_USAGE).json() == {"object": "list", "total_usage": 125.0}


@pytest.mark.parametrize("path", [NOVITA_BALANCE, GPTGE_QUOTA, GPTGE_USAGE])
def test_the_balance_routes_need_the_key(emulator: EmulatorControl, path: str) -> None:
    assert requests.get(f"{emulator.url}{path}", timeout=10).status_code == 401


def test_each_job_lowers_its_hosts_balance_at_its_price(emulator: EmulatorControl) -> None:
    emulator.configure(
        balance={"novita": 1, "gptge": 10},
        prices={
            "novita": {"per_job": 0.001, "per_output": 0.0015},
            "bailian": {"per_job": 0.5},
            "avatar": {"per_output": 2},
        },
    )
    for path in ("/v3/async/img2img", "/task/bailian/text2video", "/avatar/generation", "/task/jimeng/text2video"):
        api, body = sample_body(path)
        emulator.submit(api, path, body)
    stats = emulator.stats()
    # img2img makes the sample's 2 images; the avatar task is one video (in two files); Jimeng has no price.
    assert stats["spent"] == {"novita": pytest.approx(0.004), "gptge": pytest.approx(2.5)}
    assert stats["balance"] == {"novita": pytest.approx(0.996), "gptge": pytest.approx(7.5)}
    assert emulator.call("GET", NOVITA_BALANCE).json()["availableBalance"] == "9960"


def test_a_balance_spent_below_zero_is_owed(emulator: EmulatorControl) -> None:
    emulator.configure(balance={"novita": 0.001}, prices={"novita": {"per_job": 0.003}})
    emulator.submit("novita", "/v3/async/txt2img", sample_body("/v3/async/txt2img")[1])
    answer = emulator.call("GET", NOVITA_BALANCE).json()
    assert (answer["availableBalance"], answer["cashBalance"], answer["outstandingInvoices"]) == ("-20", "0", "20")


def test_setting_a_balance_anew_starts_its_spending_afresh(emulator: EmulatorControl) -> None:
    emulator.configure(balance={"novita": 3}, prices={"novita": {"per_job": 1}})
    emulator.submit("novita", "/v3/async/txt2img", sample_body("/v3/async/txt2img")[1])
    assert emulator.stats()["balance"]["novita"] == 2
    emulator.configure(latency=0)  # another setting leaves the spending alone
    assert emulator.stats()["balance"]["novita"] == 2
    emulator.configure(balance={"novita": 3})
    assert emulator.stats()["balance"] == {"novita": 3, "gptge": 100}


def test_stats_count_the_balance_reads_of_each_host(emulator: EmulatorControl) -> None:
    for path in (NOVITA_BALANCE, GPTGE_QUOTA, GPTGE_USAGE):
        emulator.call("GET", path)
    assert emulator.stats()["balance_reads"] == {"novita": 1, "gptge": 2}


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"balance": {"openai": 1}}, "unknown key 'openai'"),
        ({"prices": {"kling": {"per_job": 1}}}, "unknown key 'kling'"),
        ({"prices": {"novita": {"per_job": -1}}}, "greater than or equal to 0"),
        ({"prices": {"novita": {"per_image": 1}}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_balance_or_prices_settings_are_refused(emulator: EmulatorControl, settings: dict, words: str) -> None:
    response = requests.post(f"{emulator.url}/_emulator/config", json=settings, timeout=10)
    assert response.status_code == 400
    assert words in response.json()["error"]


@pytest.mark.parametrize(
    ("parameters", "usage"),
    [
        ({"size": "1280*720", "duration": 10}, {"video_count": 1, "video_ratio": "1280*720", "video_duration": 10}),
        ({"size": "1920*1080", "duration": 5}, {"video_count": 1, "video_ratio": "1920*1080", "video_duration": 5}),
    ],
)
def test_bailian_results_report_dashscope_usage(emulator: EmulatorControl, parameters: dict, usage: dict) -> None:
    _, body = sample_body("/task/bailian/text2video")
    body["parameters"] = parameters
    task_id = emulator.submit("bailian", "/task/bailian/text2video", body)
    answer = emulator.wait("bailian", task_id).json()
    assert answer["usage"] == usage
    result = emulator.result("bailian", task_id)
    assert result.usage is not None
    assert result.usage.reported == usage
