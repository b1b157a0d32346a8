"""What every adapter does the same way: one check of a submit, the route it chooses, the connection it names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_provider_genmedia.apis import API_NAMES, get_api
from airflow_provider_genmedia.apis.avatar import SUBMIT_PATH, AvatarRequest
from airflow_provider_genmedia.apis.jimeng import IMAGE2VIDEO_PATH, TEXT2VIDEO_PATH, JimengVideoRequest
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.hooks.genmedia import GptGeHook, NovitaHook, client_for, hook_for

IMAGE_URL = "https://example.com/first-frame.png"


def test_a_video_api_chooses_its_route_from_the_request() -> None:
    jimeng = get_api("jimeng")
    assert jimeng.prepare({"prompt": "a kite"}).path == TEXT2VIDEO_PATH
    submission = jimeng.prepare({"prompt": "a kite", "image_urls": [IMAGE_URL]})
    assert submission.path == IMAGE2VIDEO_PATH
    assert submission.body == {"prompt": "a kite", "image_urls": [IMAGE_URL], "seed": -1, "aspect_ratio": "16:9"}
    assert get_api("avatar").prepare({"avatar_url": IMAGE_URL, "audio_url": IMAGE_URL}).path == SUBMIT_PATH


def test_a_prepared_request_is_not_checked_again() -> None:
    request = JimengVideoRequest(prompt="a kite", image_urls=[IMAGE_URL])
    submission = get_api("jimeng").prepare(request, IMAGE2VIDEO_PATH)
    assert submission.request is request
    # Built without its checks, a model instance is trusted as it is: the adapter does not validate it a second time.
    unchecked = AvatarRequest.model_construct(avatar_url="not a url", audio_url=IMAGE_URL, no_watermark=False)
    assert get_api("avatar").prepare(unchecked).body["avatar_url"] == "not a url"
    with pytest.raises(GenMediaValidationError, match=r"^avatar_url: "):
        get_api("avatar").prepare(unchecked.model_dump())


def test_a_route_that_does_not_fit_the_request_is_refused() -> None:
    with pytest.raises(GenMediaValidationError, match=rf"^path: this request must be sent to {TEXT2VIDEO_PATH}"):
        get_api("jimeng").prepare({"prompt": "a kite"}, IMAGE2VIDEO_PATH)
    with pytest.raises(GenMediaValidationError, match=r"^path: novita needs an explicit submit path"):
        get_api("novita").prepare({"request": {}})


def test_each_api_names_its_connection_type_once_and_the_hooks_follow() -> None:
    assert [api.name for api in NovitaHook.served_apis()] == ["novita"]
    assert [api.name for api in GptGeHook.served_apis()] == ["jimeng", "bailian", "avatar"]
    for name in API_NAMES:
        api = get_api(name)
        hook = hook_for(api)
        assert hook.conn_type == api.conn_type
        assert hook.conn_id == api.default_conn_id == hook.default_conn_name
    assert hook_for(get_api("bailian"), "my_gptge").conn_id == "my_gptge"


def test_an_api_name_gives_its_adapter_once_and_an_unknown_name_is_refused() -> None:
    for name in API_NAMES:
        assert get_api(name).name == name
        assert get_api(name) is get_api(name)
    with pytest.raises(GenMediaValidationError, match=r"^api: unknown API 'kling'"):
        get_api("kling")


def test_a_dag_file_with_a_novita_operator_loads_no_other_adapter() -> None:
    code = (
        "import sys; import airflow_provider_genmedia.operators.novita; "
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_genmedia.apis.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "airflow_provider_genmedia.apis.novita" in loaded
    for other in ("jimeng", "bailian", "avatar"):
        assert f"airflow_provider_genmedia.apis.{other}" not in loaded


def test_the_hook_follows_the_connection_type_not_a_connection_id() -> None:
    """A user may name a connection anything: the id never decides which hook serves an API."""
    hook = hook_for(get_api("avatar"), "novita_default")
    assert isinstance(hook, GptGeHook)
    assert hook.conn_id == "novita_default"


def test_a_hook_refuses_an_api_of_another_connection_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before anything is sent: the connection points at a port that nobody listens on."""
    monkeypatch.setenv("AIRFLOW_CONN_NOVITA_DEFAULT", "novita://:emulator-key@127.0.0.1:9")
    submission = get_api("jimeng").prepare({"prompt": "a kite"})
    with pytest.raises(GenMediaValidationError, match=r"^api: NovitaHook serves \('novita',\), not 'jimeng'"):
        NovitaHook().submit(submission)


def test_a_client_is_bound_to_one_api_and_refuses_another_ones_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter is resolved once, when the client is made: the hook by name, ``client_for`` by adapter."""
    monkeypatch.setenv("AIRFLOW_CONN_GPTGE_DEFAULT", "gptge://:emulator-key@127.0.0.1:9")
    client = GptGeHook().client("jimeng")
    assert (client.api, client_for(get_api("jimeng")).api) == (get_api("jimeng"), get_api("jimeng"))
    with pytest.raises(GenMediaValidationError, match=r"^api: GptGeHook serves .*, not 'novita'"):
        GptGeHook().client("novita")
    avatar = get_api("avatar").prepare(
        {"avatar_url": "https://example.com/a.png", "audio_url": "https://example.com/a.mp3"}
    )
    with pytest.raises(GenMediaValidationError, match="the jimeng client cannot send a avatar submission"):
        client.submit(avatar)
