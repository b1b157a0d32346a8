"""The trust rule: literal values are the DAG author's; templated locations must fall under the configured roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import ObjectStoragePath
from airflow.sdk.definitions._internal.templater import LiteralValue
from PIL import Image

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.trust import (
    DEFAULT_DESTINATION_ROOT,
    DESTINATION_PARAM_PATTERN,
    IMAGE_PARAM_PATTERN,
    LINK_PARAM_PATTERN,
    check_location,
    is_literal,
    location,
    roots,
    stored_location,
)


@pytest.fixture
def jinja_env() -> Any:
    return NovitaImg2ImgOperator(task_id="t", image="x.png", prompt="p", model_name="m").get_template_env()


@pytest.fixture
def inside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A root folder configured as the only input and destination root, with a PNG in it."""
    root = tmp_path / "inputs"
    root.mkdir()
    Image.new("RGB", (64, 64)).save(root / "in.png")
    monkeypatch.setenv("AIRFLOW__GENMEDIA__INPUT_ROOTS", str(root))
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DESTINATION_ROOTS", f"s3://bucket/out, {root.as_uri()}")
    return root


@pytest.mark.parametrize(
    ("value", "root", "under"),
    [
        ("/data/inputs/a.png", "/data/inputs", True),
        ("/data/inputs", "/data/inputs", True),
        ("/data/inputs-evil/a.png", "/data/inputs", False),
        ("/data/inputs/../secrets/a.png", "/data/inputs", False),
        ("file:///data/inputs/a.png", "/data/inputs", True),
        ("/data/inputs/a.png", "file:///data/inputs/", True),
        ("s3://bucket/in/a.png", "s3://bucket/in", True),
        ("s3://bucket/in/a.png", "s3://bucket", True),  # a whole bucket as the root
        ("s3://bucket/in/a.png", "s3://bucket/", True),
        ("s3://bucket//in/a.png", "s3://bucket/in", True),
        ("S3://bucket/in/a.png", "s3://bucket/in", True),
        ("s3://bucket/in/../out/a.png", "s3://bucket/in", False),
        ("s3://bucket/inputs/a.png", "s3://bucket/in", False),
        ("s3://other/in/a.png", "s3://bucket/in", False),
        ("s3://my_conn@bucket/in/a.png", "s3://bucket/in", False),
        ("gs://bucket/in/a.png", "s3://bucket/in", False),
        ("file:///data/inputs/a.png", "s3://bucket/data/inputs", False),
    ],
)
def test_a_location_is_under_a_root_part_by_part_after_normalising(value: str, root: str, under: bool) -> None:
    assert location(value).is_under(location(root)) is under


def test_a_symlink_inside_a_root_cannot_lead_out_of_it(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (root / "link").symlink_to(outside)
    assert not location(str(root / "link" / "secret.png")).is_under(location(str(root)))
    assert location(str(root / "own.png")).is_under(location(str(root)))


def test_the_roots_default_to_the_dags_folder_and_the_temporary_genmedia_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    monkeypatch.delenv("AIRFLOW__GENMEDIA__INPUT_ROOTS", raising=False)
    monkeypatch.delenv("AIRFLOW__GENMEDIA__DESTINATION_ROOTS", raising=False)
    assert (roots("input_roots"), roots("destination_roots")) == ([str(tmp_path)], [DEFAULT_DESTINATION_ROOT])
    monkeypatch.setenv("AIRFLOW__GENMEDIA__INPUT_ROOTS", " /a, s3://b/c ,")
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DESTINATION_ROOTS", "")
    assert (roots("input_roots"), roots("destination_roots")) == (["/a", "s3://b/c"], [])


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (b"\x89PNG", None),
        ("https://example.com/a.png", None),
        ("data:image/png;base64,AAAA", None),
        ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", None),
        ("/etc/passwd", "/etc/passwd"),
        ("s3://bucket/key.png", "s3://bucket/key.png"),
        (Path("/data/a.png"), "/data/a.png"),
        (ObjectStoragePath("file:///data/a.png"), "file:///data/a.png"),
        (None, None),
    ],
)
def test_only_paths_and_uris_are_locations(value: Any, where: str | None) -> None:
    assert stored_location(value) == where


def test_a_location_outside_every_root_is_refused_naming_the_setting_and_the_field(inside: Path) -> None:
    check_location("image", str(inside / "in.png"), "input_roots")
    with pytest.raises(GenMediaValidationError, match=r"^image: '/etc/passwd' .*\[genmedia\] input_roots") as raised:
        check_location("image", "/etc/passwd", "input_roots")
    assert raised.value.permanent
    check_location("destination", "s3://bucket/out/run-1", "destination_roots")
    with pytest.raises(GenMediaValidationError, match=r"destination: .*\[genmedia\] destination_roots"):
        check_location("destination", "s3://bucket/outside", "destination_roots")


def test_no_root_at_all_refuses_every_templated_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DESTINATION_ROOTS", "")
    with pytest.raises(GenMediaValidationError, match=r"\(none set\)"):
        check_location("destination", "file:///tmp/genmedia/x", "destination_roots")


def test_literal_values_are_told_from_templated_ones_without_rendering(jinja_env: Any) -> None:
    from airflow.sdk import BaseOperator

    upstream = BaseOperator(task_id="up")
    assert is_literal("/data/a.png", jinja_env, (), set())
    assert is_literal(["/a", {"b": ("/c", 1, None)}], jinja_env, (), set())
    assert is_literal(LiteralValue("{{ params.x }}"), jinja_env, (), set())
    assert is_literal(ObjectStoragePath("file:///data/a.png"), jinja_env, (), set())
    assert not is_literal("{{ params.image }}", jinja_env, (), set())
    assert not is_literal("/data/{% if true %}a{% endif %}", jinja_env, (), set())
    assert not is_literal("/data/{# note #}a", jinja_env, (), set())
    assert not is_literal("query.sql", jinja_env, (".sql",), set())
    assert not is_literal(["/a", {"b": "{{ dag_run.conf.b }}"}], jinja_env, (), set())
    assert not is_literal(upstream.output, jinja_env, (), set())
    assert not is_literal(ObjectStoragePath("file:///data/{{ ds }}.png"), jinja_env, (), set())
    assert not is_literal(lambda context, jinja_env: "/a", jinja_env, (), set())
    resolved = "/data/from-xcom.png"
    assert not is_literal(resolved, jinja_env, (), {id(resolved)})


def img2img(image: Any) -> NovitaImg2ImgOperator:
    return NovitaImg2ImgOperator(task_id="img2img", image=image, prompt="p", model_name="m")


def test_a_templated_image_outside_input_roots_fails_the_task_without_retry(inside: Path) -> None:
    operator = img2img("{{ params.image }}")
    operator.render_template_fields(context={"params": {"image": "/etc/passwd"}})  # type: ignore[arg-type]
    assert operator.templated_fields == {"image"}
    with pytest.raises(AirflowFailException, match=r"nothing was sent to novita: image: .*\[genmedia\] input_roots"):
        operator.execute({})  # type: ignore[arg-type]


def test_a_templated_image_inside_input_roots_and_a_literal_one_anywhere_pass(inside: Path, tmp_path: Path) -> None:
    templated = img2img("{{ params.image }}")
    templated.render_template_fields(context={"params": {"image": str(inside / "in.png")}})  # type: ignore[arg-type]
    templated.check_locations(["image"], "input_roots")
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (64, 64)).save(outside)
    literal = img2img(str(outside))
    literal.render_template_fields(context={})  # type: ignore[arg-type]
    assert literal.templated_fields == frozenset()
    literal.check_locations(["image"], "input_roots")


def test_a_mapped_argument_resolved_from_xcom_is_templated(inside: Path) -> None:
    operator = img2img("/etc/passwd")  # as unmapped from expand(image=<XComArg>): Airflow hands its id over
    resolved = {id(operator.image)}
    operator._do_render_template_fields(operator, operator.template_fields, {}, operator.get_template_env(), resolved)  # type: ignore[arg-type]
    assert operator.templated_fields == {"image"}
    with pytest.raises(GenMediaValidationError, match="input_roots"):
        operator.check_locations(["image"], "input_roots")


def test_a_templated_destination_outside_destination_roots_fails_before_anything_is_read(inside: Path) -> None:
    operator = PublishMediaOperator(task_id="publish", result={}, destination="{{ params.d }}")
    operator.render_template_fields(context={"params": {"d": "file:///etc/cron.d"}})  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match=r"destination: .*\[genmedia\] destination_roots"):
        operator.execute({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "value", "valid"),
    [
        (DESTINATION_PARAM_PATTERN, "file:///tmp/genmedia/out", True),
        (DESTINATION_PARAM_PATTERN, "s3://bucket/prefix", True),
        (DESTINATION_PARAM_PATTERN, "/tmp/genmedia/out", False),
        (DESTINATION_PARAM_PATTERN, "s3://bucket/{{ var.value.x }}", False),
        (DESTINATION_PARAM_PATTERN, "s3://bucket/a b", False),
        (IMAGE_PARAM_PATTERN, "/data/product.png", True),
        (IMAGE_PARAM_PATTERN, "s3://bucket/in/shot.JPEG", False),
        (IMAGE_PARAM_PATTERN, "s3://bucket/in/shot.jpeg", True),
        (IMAGE_PARAM_PATTERN, "https://example.com/a", True),
        (IMAGE_PARAM_PATTERN, "/etc/passwd", False),
        (IMAGE_PARAM_PATTERN, "/data/{{ x }}.png", False),
        (LINK_PARAM_PATTERN, "https://example.com/a.mp3", True),
        (LINK_PARAM_PATTERN, "file:///etc/passwd", False),
    ],
)
def test_the_example_dags_param_patterns_take_only_what_they_name(pattern: str, value: str, valid: bool) -> None:
    from airflow.sdk import Param

    try:
        from airflow.sdk.exceptions import ParamValidationError
    except ImportError:  # Airflow < 3.2, where airflow.exceptions holds it (and 3.2 deprecates it)
        from airflow.exceptions import ParamValidationError  # type: ignore[no-redef]

    param = Param("", type="string", pattern=pattern)
    if valid:
        assert param.resolve(value) == value
    else:
        with pytest.raises(ParamValidationError):
            param.resolve(value)
