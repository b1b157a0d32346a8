"""Video operators for the gpt.ge APIs: Jimeng, Ali Bailian (Wan) and the digital human (talking avatar).

Arguments carry the vendors' own field names, as gpt.ge's pages give them (docs/vendor-sources.md):

- Jimeng: https://gpt.morphogen.top/en/video/jimeng/generate-text-to-video.html and
  https://gpt.morphogen.top/en/video/jimeng/generate-image-to-video.html;
- Bailian: https://gpt.morphogen.top/en/video/bailian/text-to-video.html and
  https://gpt.morphogen.top/en/video/bailian/image-to-video.html;
- the digital human: https://gpt.morphogen.top/en/video/digital-human/generate.html.

Submit, resume, waiting and completion are `GenMediaSubmitOperator`'s; each operator here only builds its
vendor's body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_genmedia.apis import TaskApi, get_api
from airflow_provider_genmedia.inputs import encode_image
from airflow_provider_genmedia.operators.base import GenMediaSubmitOperator
from airflow_provider_genmedia.urls import is_http_url


class JimengVideoOperator(GenMediaSubmitOperator):
    """Make a 5 s Jimeng video from a prompt, or from an image and a prompt, and return the `GenerationResult` json.

    ``POST /task/jimeng/text2video``, or ``/task/jimeng/image2video`` when ``image`` is given: an http(s) URL
    is sent as ``image_urls``, a local path, ``ObjectStoragePath``, bytes or base64 as ``binary_data_base64``.

    :param prompt: What happens in the video, at most 150 characters.
    :param image: The first frame (optional).
    :param aspect_ratio: 16:9, 9:16, 1:1, 4:3, 3:4 or 21:9; image2video also takes 9:21.
    :param seed: -1 for a random seed.
    """

    api: ClassVar[TaskApi] = get_api("jimeng")
    template_fields: Sequence[str] = ("prompt", "image", "aspect_ratio", "seed", "conn_id")

    def __init__(
        self, *, prompt: str, image: Any = None, aspect_ratio: str = "16:9", seed: int = -1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image = image
        self.aspect_ratio = aspect_ratio
        self.seed = seed

    def build_request(self) -> tuple[None, dict[str, Any]]:
        """The body, with the image as a URL or as base64; the adapter sends it to text2video or image2video."""
        body: dict[str, Any] = {"prompt": self.prompt, "seed": self.seed, "aspect_ratio": self.aspect_ratio}
        image = self.setting("image")
        if image is not None and is_http_url(image):
            body["image_urls"] = [str(image).strip()]
        elif image is not None:
            body["binary_data_base64"] = [encode_image(image).data]
        return None, body


class BailianVideoOperator(GenMediaSubmitOperator):
    """Make a Wan video through Ali Bailian and return the `GenerationResult` json.

    ``POST /task/bailian/text2video`` for text-to-video models (``wan2.6-t2v``, ...), which take ``size``;
    ``/task/bailian/image2video`` for image-to-video models (``wan2.6-i2v``, ...), which take ``image`` and
    ``resolution``. ``image`` is sent as ``input.img_url``: an http(s) URL as given, anything else (a local
    path, ``ObjectStoragePath``, bytes or base64) as a base64 data URI. Sizes, resolutions, durations and the
    ``audio`` switch are checked against the model's documented limits before anything is sent.

    :param model: The Wan model, e.g. ``wan2.6-t2v`` or ``wan2.6-i2v``.
    :param prompt: What happens in the video (``input.prompt``).
    :param image: The first frame, for image-to-video models (``input.img_url``).
    :param negative_prompt: What to avoid (``input.negative_prompt``).
    :param audio_url: A wav/mp3 soundtrack, 3-30 s (``input.audio_url``).
    :param template: An effect template of image-to-video models (``input.template``).
    :param size: ``"W*H"`` of text-to-video models (``parameters.size``).
    :param resolution: 480P, 720P or 1080P of image-to-video models (``parameters.resolution``).
    :param duration: Seconds of video; 5 or 10, up to 15 for wan2.6 models (``parameters.duration``).
    :param prompt_extend: Let the vendor rewrite the prompt (``parameters.prompt_extend``).
    :param shot_type: ``single`` or ``multi``; needs ``prompt_extend`` (``parameters.shot_type``).
    :param seed: 0..2147483647 (``parameters.seed``).
    :param audio: False makes a cheaper silent video; wan2.6-i2v-flash only (``parameters.audio``).
    :param watermark: Add the vendor's watermark (``parameters.watermark``).
    """

    api: ClassVar[TaskApi] = get_api("bailian")
    #: Every setting sent to Bailian, so that Rendered Templates shows what was asked (media bytes elided).
    template_fields: Sequence[str] = (
        "model",
        "prompt",
        "negative_prompt",
        "image",
        "audio_url",
        "template",
        "size",
        "resolution",
        "duration",
        "prompt_extend",
        "shot_type",
        "seed",
        "audio",
        "watermark",
        "conn_id",
    )

    def __init__(
        self,
        *,
        model: str,
        prompt: str,
        image: Any = None,
        negative_prompt: str | None = None,
        audio_url: str | None = None,
        template: str | None = None,
        size: str | None = None,
        resolution: str | None = None,
        duration: int = 5,
        prompt_extend: bool | None = None,
        shot_type: str | None = None,
        seed: int | None = None,
        audio: bool | None = None,
        watermark: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.prompt = prompt
        self.image = image
        self.negative_prompt = negative_prompt
        self.audio_url = audio_url
        self.template = template
        self.size = size
        self.resolution = resolution
        self.duration = duration
        self.prompt_extend = prompt_extend
        self.shot_type = shot_type
        self.seed = seed
        self.audio = audio
        self.watermark = watermark

    def _img_url(self) -> str | None:
        """``input.img_url``: an http(s) URL as given, any other image as a base64 data URI."""
        image = self.setting("image")
        if image is None or is_http_url(image):
            return None if image is None else str(image).strip()
        return encode_image(image).data_uri

    def build_request(self) -> tuple[None, dict[str, Any]]:
        """``{"model", "input", "parameters"}``; the adapter checks them against the model and picks the route."""
        body = {
            "model": self.model,
            "input": {
                "prompt": self.prompt,
                "negative_prompt": self.negative_prompt,
                "audio_url": self.audio_url,
                "img_url": self._img_url(),
                "template": self.template,
            },
            "parameters": {
                "size": self.size,
                "resolution": self.resolution,
                "duration": self.duration,
                "prompt_extend": self.prompt_extend,
                "shot_type": self.shot_type,
                "seed": self.seed,
                "audio": self.audio,
                "watermark": self.watermark,
            },
        }
        return None, body


class AvatarVideoOperator(GenMediaSubmitOperator):
    """Make a talking-avatar (digital human) video and return the `GenerationResult` json.

    ``POST /avatar/generation`` with exactly one voice source: ``audio_url`` (a recording), ``create_voice``
    (``{"audio_url", "language", "text"}``: clone a voice from a sample of at least 20 s and speak ``text``) or
    ``use_voice`` (``{"voice_engine_id", "audio_id", "language", "text"}``). The result's video is the one
    without watermark (``no_wm_work_video_path``) when ``no_watermark`` is true, else ``work_video_path``.

    :param avatar_url: An http(s) URL of the face image or video.
    :param audio_url: The speech to lip-sync.
    :param create_voice: Clone a voice and speak a text.
    :param use_voice: Speak a text with an existing voice.
    :param no_watermark: Ask for a video without the vendor's watermark.
    """

    api: ClassVar[TaskApi] = get_api("avatar")
    template_fields: Sequence[str] = (
        "avatar_url",
        "audio_url",
        "create_voice",
        "use_voice",
        "no_watermark",
        "conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"create_voice": "json", "use_voice": "json"}

    def __init__(
        self,
        *,
        avatar_url: str,
        audio_url: str | None = None,
        create_voice: dict[str, Any] | None = None,
        use_voice: dict[str, Any] | None = None,
        no_watermark: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.avatar_url = avatar_url
        self.audio_url = audio_url
        self.create_voice = create_voice
        self.use_voice = use_voice
        self.no_watermark = no_watermark

    def build_request(self) -> tuple[None, dict[str, Any]]:
        """The avatar body; the request model checks that exactly one voice source is given."""
        body = {
            "avatar_url": self.avatar_url,
            "audio_url": self.audio_url,
            "create_voice": self.create_voice,
            "use_voice": self.use_voice,
            "no_watermark": self.no_watermark,
        }
        return None, body
