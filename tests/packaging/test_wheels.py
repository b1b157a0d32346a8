"""The three wheels this repository builds: the provider's carries no emulator; the emulator's carries its code, media
and console script, and installs and imports without Airflow or the provider; the stack's (development only) carries
the local Airflow harness, which the emulator's no longer does. Built offline by pip with the hatchling of the dev
extra (a few seconds)."""

from __future__ import annotations

import configparser
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
EMULATOR = REPO / "emulator"
STACK = REPO / "stack"
#: The emulator's media files, by their path inside its wheel.
EMULATOR_MEDIA = sorted(
    path.relative_to(EMULATOR).as_posix() for path in (EMULATOR / "genmedia_emulator" / "media").iterdir()
)


class Wheel:
    """A built wheel: its file names and the text of its metadata files."""

    def __init__(self, path: Path) -> None:
        self.path = path
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


@pytest.fixture(scope="module")
def stack_wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The local Airflow harness's wheel."""
    return build(STACK, tmp_path_factory.mktemp("stack-wheel"))


def test_the_provider_wheel_holds_no_emulator_harness_media_script_or_tests(provider_wheel: Wheel) -> None:
    assert "airflow_provider_genmedia/__init__.py" in provider_wheel.names
    assert [name for name in provider_wheel.names if "emulator" in name or "genmedia_stack" in name] == []
    assert [name for name in provider_wheel.names if name.endswith((".mp4", ".png"))] == []
    assert [name for name in provider_wheel.names if name.startswith("tests/")] == []
    assert provider_wheel.console_scripts() == {}
    dev_only = {name: marker for name, marker in provider_wheel.requirements() if name.startswith("genmedia-")}
    assert dev_only == {"genmedia-emulator": 'extra == "dev"', "genmedia-stack": 'extra == "dev"'}


def test_the_emulator_wheel_holds_its_code_media_and_console_script_but_no_airflow_harness(
    emulator_wheel: Wheel,
) -> None:
    expected = {"genmedia_emulator/__init__.py", "genmedia_emulator/cli.py"}
    assert expected | set(EMULATOR_MEDIA) <= set(emulator_wheel.names)
    assert "genmedia_emulator/media/sample.mp4" in EMULATOR_MEDIA
    assert "genmedia_emulator/stack.py" not in emulator_wheel.names
    assert [name for name in emulator_wheel.names if "genmedia_stack" in name or name.startswith("tests/")] == []
    assert emulator_wheel.console_scripts() == {"genmedia-emulator": "genmedia_emulator.cli:main"}


def test_the_emulator_wheel_depends_on_its_server_libraries_only(emulator_wheel: Wheel) -> None:
    assert emulator_wheel.requirements() == {("aiohttp", ""), ("pydantic", ""), ("pillow", "")}


def test_the_emulator_wheel_installs_and_imports_in_a_venv_without_airflow(
    emulator_wheel: Wheel, tmp_path: Path
) -> None:
    """The wheel with its dependencies (pip, from this machine's package indexes) in a venv of its own."""
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(emulator_wheel.path)]
    installed = subprocess.run(install, capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    program = (
        "import importlib.util, genmedia_emulator, genmedia_emulator.cli\n"
        "assert importlib.util.find_spec('airflow') is None\n"
        "assert importlib.util.find_spec('airflow_provider_genmedia') is None\n"
        "assert importlib.util.find_spec('genmedia_stack') is None\n"
        "print(genmedia_emulator.__version__)\n"
    )
    done = subprocess.run([str(python), "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.1.0"


def test_the_stack_wheel_holds_the_harness_and_depends_on_the_emulator_not_airflow(stack_wheel: Wheel) -> None:
    modules = ("__init__", "processes", "emulator", "services", "machines", "s3", "deployment", "celery_deployment")
    assert {f"genmedia_stack/{module}.py" for module in modules} <= set(stack_wheel.names)
    assert [name for name in stack_wheel.names if "genmedia_emulator" in name or name.startswith("tests/")] == []
    assert stack_wheel.console_scripts() == {}
    dependencies = ("genmedia-emulator", "requests", "psutil", "packaging", "cryptography")
    assert stack_wheel.requirements() == {(name, "") for name in dependencies}


def test_the_harness_imports_without_airflow_or_the_provider() -> None:
    blocked = ("airflow", "airflow_provider_genmedia", "tests", "pytest")
    program = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))\n"  # None in sys.modules: an import of it fails
        "import genmedia_stack\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=STACK, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("wheel_fixture", ["provider_wheel", "emulator_wheel", "stack_wheel"])
def test_each_wheel_carries_the_apache_license_it_declares(wheel_fixture: str, request: pytest.FixtureRequest) -> None:
    wheel: Wheel = request.getfixturevalue(wheel_fixture)
    metadata = Parser().parsestr(wheel.dist_info["METADATA"])
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert wheel.dist_info["LICENSE"].lstrip().startswith("Apache License\n")
    assert "Version 2.0, January 2004" in wheel.dist_info["LICENSE"]
