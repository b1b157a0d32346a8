"""What the gpt.ge APIs share: one connection for all three, and for Jimeng and Bailian a text2video/image2video
route pair and the ``/task/{id}`` poll."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from airflow_provider_genmedia.apis.base import RequestModel, TaskApi
from airflow_provider_genmedia.exceptions import GenMediaValidationError


class VideoRequest(RequestModel):
    """A video request that goes to the image2video route when it carries an input image."""

    @property
    def is_image2video(self) -> bool:
        """True when an input image is given."""
        raise NotImplementedError


class GptGeApi(TaskApi):
    """An API served by the gpt.ge aggregator, on its ``gptge`` connection."""

    conn_type: ClassVar[str] = "gptge"
    default_conn_id: ClassVar[str] = "gptge_default"


class GptGeVideoApi(GptGeApi):
    """A gpt.ge video API: ``POST {prefix}/text2video`` or ``{prefix}/image2video``, then ``GET /task/{id}``."""

    route_prefix: ClassVar[str]

    def request_model(self, path: str) -> type[RequestModel] | None:
        """Both routes take the API's one request model."""
        if path not in (f"{self.route_prefix}/text2video", f"{self.route_prefix}/image2video"):
            raise GenMediaValidationError("path", f"{path!r} is not a {self.name} route")
        return self.request_class

    def submit_path(self, request: RequestModel) -> str:
        """image2video when an input image is given, text2video otherwise."""
        if not isinstance(request, VideoRequest):
            raise GenMediaValidationError("body", f"{self.name} takes a video request, not {type(request).__name__}")
        return f"{self.route_prefix}/{'image2video' if request.is_image2video else 'text2video'}"

    def result_path(self, task_id: str) -> str:
        """``/task/{task_id}``: one route for Jimeng and Bailian, told apart by the API recorded at submit."""
        return f"/task/{quote(task_id, safe='')}"
