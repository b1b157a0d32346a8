"""Properties of the local NSFW scorer's decoding: whatever bytes an output's file holds, scoring it gives a score or
raises the provider's own error (`UndecodableMediaError`), never a decoder's exception. Any bytes get the profile's
10,000 examples; real images and videos damaged (cut short, bytes overwritten or spliced in) get 300, since a fifth
of them still decode and each of those runs the model (17-75 ms on a 2-core machine)."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from airflow_provider_genmedia.exceptions import GenMediaError
from airflow_provider_genmedia.nsfw_local import LocalNsfwModel
from airflow_provider_genmedia.results import MediaOutput
from genmedia_emulator.media import sample_mp4

OUTPUTS = {
    "png": MediaOutput(url="http://x/o.png", kind="image", format="png"),
    "jpeg": MediaOutput(url="http://x/o.jpeg", kind="image", format="jpeg"),
    "gif": MediaOutput(url="http://x/o.gif", kind="image", format="gif"),
    "mp4": MediaOutput(url="http://x/o.mp4", kind="video", format="mp4"),
}


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (48, 32), (40 * n, 90, 200 - 40 * n)) for n in range(3)]
    frames[0].save(buffer, format=fmt, **({"save_all": True, "append_images": frames[1:]} if fmt == "GIF" else {}))
    return buffer.getvalue()


#: A real file of each kind, small, for the strategies to damage.
REAL = {"png": _image("PNG"), "jpeg": _image("JPEG"), "gif": _image("GIF"), "mp4": sample_mp4()}


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` cut short, or with a few bytes overwritten, or with random bytes spliced in."""
    cut = draw(st.integers(min_value=0, max_value=len(data)))
    how = draw(st.sampled_from(["cut", "overwrite", "splice"]))
    if how == "cut":
        return data[:cut]
    patch = draw(st.binary(min_size=1, max_size=16))
    return data[:cut] + patch + data[cut + (len(patch) if how == "overwrite" else 0) :]


kinds = st.sampled_from(sorted(OUTPUTS))
#: Any bytes, given as an output of each kind (``st.binary`` starts from the empty file and short ones).
any_files = st.tuples(kinds, st.binary(max_size=4096))
damaged_files = kinds.flatmap(lambda kind: st.tuples(st.just(kind), damaged(REAL[kind])))


@pytest.fixture(scope="module")
def model() -> LocalNsfwModel:
    return LocalNsfwModel()


@pytest.fixture(scope="module")
def path() -> Iterator[Path]:
    """One file the examples write in turn (a function-scoped tmp_path would be shared by them anyway)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "output"


def score_or_our_error(model: LocalNsfwModel, path: Path, kind: str, data: bytes) -> None:
    """Score ``data`` as an output of ``kind``: a score 0..100, or the provider's error; anything else fails."""
    path.write_bytes(data)
    try:
        score = model.score(OUTPUTS[kind], path)
    except GenMediaError:
        return
    assert score is not None and 0 <= score.confidence <= 100


@given(any_files)
def test_any_bytes_give_a_score_or_an_undecodable_media_error(
    model: LocalNsfwModel, path: Path, file: tuple[str, bytes]
) -> None:
    score_or_our_error(model, path, *file)


@settings(max_examples=300)
@given(damaged_files)
def test_damaged_images_and_videos_give_a_score_or_an_undecodable_media_error(
    model: LocalNsfwModel, path: Path, file: tuple[str, bytes]
) -> None:
    score_or_our_error(model, path, *file)
