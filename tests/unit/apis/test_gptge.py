"""What the three gpt.ge APIs share: one connection type, the route pair of the video APIs, the ``/task/{id}`` poll."""

from __future__ import annotations

import base64

import pytest

from airflow_provider_genmedia.apis import apis_on, get_api
from airflow_provider_genmedia.apis.avatar import AvatarApi
from airflow_provider_genmedia.apis.bailian import BailianApi
from airflow_provider_genmedia.apis.gptge import GptGeApi, GptGeVideoApi
from airflow_provider_genmedia.apis.jimeng import JimengApi, JimengVideoRequest
from airflow_provider_genmedia.apis.novita import Img2ImgBody
from airflow_provider_genmedia.exceptions import GenMediaValidationError


def test_one_gptge_connection_serves_jimeng_bailian_and_avatar() -> None:
    assert sorted(api.name for api in apis_on("gptge")) == ["avatar", "bailian", "jimeng"]
    for name in ("jimeng", "bailian", "avatar"):
        api = get_api(name)
        assert isinstance(api, GptGeApi)
        assert (api.conn_type, api.default_conn_id) == ("gptge", "gptge_default")
    assert not isinstance(get_api("novita"), GptGeApi)


@pytest.mark.parametrize(("api", "prefix"), [(JimengApi(), "/task/jimeng"), (BailianApi(), "/task/bailian")])
def test_a_video_api_takes_its_own_two_routes_and_no_other(api: GptGeVideoApi, prefix: str) -> None:
    assert api.request_model(f"{prefix}/text2video") is api.request_class
    assert api.request_model(f"{prefix}/image2video") is api.request_class
    other = "/task/bailian" if prefix == "/task/jimeng" else "/task/jimeng"
    for path in (f"{other}/text2video", f"{prefix}/video", "/task/x", "/avatar/generation"):
        with pytest.raises(GenMediaValidationError, match="route") as raised:
            api.request_model(path)
        assert raised.value.field == "path"


def test_the_route_follows_the_input_image() -> None:
    api = JimengApi()
    image = base64.b64encode(b"not checked as an image here").decode()
    assert api.submit_path(JimengVideoRequest(prompt="a cat")) == "/task/jimeng/text2video"
    with_image = JimengVideoRequest(prompt="a cat", aspect_ratio="1:1", binary_data_base64=[image])
    assert api.submit_path(with_image) == "/task/jimeng/image2video"
    with_url = JimengVideoRequest(prompt="a cat", aspect_ratio="1:1", image_urls=["https://example.com/cat.png"])
    assert api.submit_path(with_url) == "/task/jimeng/image2video"


def test_a_request_of_another_kind_is_refused_by_name() -> None:
    body = Img2ImgBody.model_construct()
    with pytest.raises(GenMediaValidationError, match="jimeng takes a video request, not Img2ImgBody"):
        JimengApi().submit_path(body)


def test_jimeng_and_bailian_poll_one_route_with_the_id_quoted() -> None:
    for api in (JimengApi(), BailianApi()):
        assert api.result_path("abc-123") == "/task/abc-123"
        assert api.result_path("a b/c?d") == "/task/a%20b%2Fc%3Fd"
    assert AvatarApi().result_path("a/b") == "/avatar/task/a%2Fb"  # the avatar polls a route of its own
