"""The two wheels this repository builds: the provider's carries no emulator, the emulator's carries its code, media,
stack harness and console script, and needs neither Airflow nor the provider. Built offline by pip with the hatchling
of the dev extra (a few seconds)."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
EMULATOR = REPO / "emulator"
#: The emulator's media files, by their path inside its wheel.
EMULATOR_MEDIA = sorted(
    path.relative_to(EMULATOR).as_posix() for path in (EMULATOR / "genmedia_emulator" / "media").iterdir()
)


class Wheel:
    """A built wheel: its file names and the text of its metadata files."""

    def __init__(self, path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            self.names = archive.namelist()
            self.dist_info = {
                name.rsplit("/", 1)[1]: archive.read(name).decode()
                for name in self.names
                if name.split("/", 1)[0].endswith(".dist-info")
            }

    def console_scripts(self) -> dict[str, str]:
        """The ``console_scripts`` entry points."""
        entry_points = configparser.ConfigParser()
        entry_points.optionxform = str  # type: ignore[assignment,method-assign]
        entry_points.read_string(self.dist_info.get("entry_points.txt", ""))
        return dict(entry_points["console_scripts"]) if entry_points.has_section("console_scripts") else {}

    def requirements(self) -> set[tuple[str, str]]:
        """Each dependency as ``(name, marker)``: an extra's are marked ``extra == "<name>"``, the others ``""``."""
        metadata = Parser().parsestr(self.dist_info["METADATA"])
        parsed = (Requirement(line) for line in metadata.get_all("Requires-Dist", []))
        return {(canonicalize_name(requirement.name), str(requirement.marker or "")) for requirement in parsed}


def build(project: Path, into: Path) -> Wheel:
    """The wheel of ``project``, built by pip without build isolation (the venv's hatchling, no download)."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(into)]
    subprocess.run([*command, str(project)], check=True, capture_output=True, timeout=300)
    (wheel,) = into.glob("*.whl")
    return Wheel(wheel)


@pytest.fixture(scope="module")
def provider_wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The provider's wheel."""
    return build(REPO, tmp_path_factory.mktemp("provider-wheel"))


@pytest.fixture(scope="module")
def emulator_wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The emulator's wheel."""
    return build(EMULATOR, tmp_path_factory.mktemp("emulator-wheel"))


def test_the_provider_wheel_holds_no_emulator_code_media_script_or_tests(provider_wheel: Wheel) -> None:
    assert "airflow_provider_genmedia/__init__.py" in provider_wheel.names
    assert [name for name in provider_wheel.names if "emulator" in name] == []
    assert [name for name in provider_wheel.names if name.endswith((".mp4", ".png"))] == []
    assert [name for name in provider_wheel.names if name.startswith("tests/")] == []
    assert provider_wheel.console_scripts() == {}
    emulator_requirements = {marker for name, marker in provider_wheel.requirements() if name == "genmedia-emulator"}
    assert emulator_requirements == {'extra == "dev"'}


def test_the_emulator_wheel_holds_its_code_media_harness_and_console_script(emulator_wheel: Wheel) -> None:
    expected = {"genmedia_emulator/__init__.py", "genmedia_emulator/cli.py", "genmedia_emulator/stack.py"}
    assert expected | set(EMULATOR_MEDIA) <= set(emulator_wheel.names)
    assert "genmedia_emulator/media/sample.mp4" in EMULATOR_MEDIA
    assert [name for name in emulator_wheel.names if name.startswith("tests/")] == []
    assert emulator_wheel.console_scripts() == {"genmedia-emulator": "genmedia_emulator.cli:main"}


def test_the_emulator_wheel_depends_on_neither_airflow_nor_the_provider(emulator_wheel: Wheel) -> None:
    names = {name for name, _ in emulator_wheel.requirements()}
    assert {"aiohttp", "pydantic", "pillow", "requests"} <= names
    assert {name for name in names if "airflow" in name} == set()


def test_the_emulator_and_its_harness_import_without_airflow_or_the_provider() -> None:
    blocked = ("airflow", "airflow_provider_genmedia", "tests", "pytest")
    program = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))\n"  # None in sys.modules: an import of it fails
        "import genmedia_emulator, genmedia_emulator.cli, genmedia_emulator.stack\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=EMULATOR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("wheel_fixture", ["provider_wheel", "emulator_wheel"])
def test_each_wheel_carries_the_apache_license_it_declares(wheel_fixture: str, request: pytest.FixtureRequest) -> None:
    wheel: Wheel = request.getfixturevalue(wheel_fixture)
    metadata = Parser().parsestr(wheel.dist_info["METADATA"])
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert wheel.dist_info["LICENSE"].lstrip().startswith("Apache License\n")
    assert "Version 2.0, January 2004" in wheel.dist_info["LICENSE"]
