"""Image sizes, and images scaled down to a vendor's limits."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.images import fit_image, image_mime_type, image_size


def png(width: int = 40, height: int = 30, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_size_and_non_images() -> None:
    assert image_size(png(40, 30)) == (40, 30)
    with pytest.raises(GenMediaValidationError, match="image: is not a readable image"):
        image_size(b"GIF89a but not really")
    with pytest.raises(GenMediaValidationError, match="avatar: is not a readable image") as raised:
        image_size(b"", field="avatar")
    assert raised.value.field == "avatar"


def test_fit_image_scales_down_to_the_pixel_and_byte_limits() -> None:
    data = png(400, 300)
    assert fit_image(data, max_pixels=400 * 300, max_bytes=len(data)) is data
    fitted = fit_image(data, max_pixels=10_000, max_bytes=10**6)
    width, height = image_size(fitted)
    assert width * height <= 10_000
    assert abs(width / height - 4 / 3) < 0.05
    noisy = Image.effect_noise((300, 300), 100).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    small = fit_image(buffer.getvalue(), max_pixels=10**6, max_bytes=20_000)
    assert len(small) <= 20_000


def test_fit_image_keeps_transparency() -> None:
    fitted = fit_image(png(200, 200, "RGBA"), max_pixels=2_500, max_bytes=10**6)
    with Image.open(io.BytesIO(fitted)) as image:
        assert (image.format, image.mode) == ("PNG", "RGBA")


@pytest.mark.parametrize("pixels", [100 * 100, 200 * 200])  # over the limit: Pillow warns; over twice it: it raises
def test_an_image_over_pillows_pixel_limit_is_a_validation_error_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, pixels: int
) -> None:
    side = int(pixels**0.5)
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)  # Pillow's own setting, lowered to make small bombs
    for read in (image_size, image_mime_type):
        with pytest.raises(GenMediaValidationError, match=r"^image: has more than 4096 pixels"):
            read(buffer.getvalue(), field="image")
    with pytest.raises(GenMediaValidationError, match="has more than 4096 pixels"):
        fit_image(buffer.getvalue(), max_pixels=100, max_bytes=1000)
