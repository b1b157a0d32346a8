"""The operators' documentation: a ``:param:`` line per argument (Airflow's docs render them), and sources cited
by public URL or a ``docs/`` page of this repository, never by a file outside it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest
from airflow.sdk import BaseOperator

import airflow_provider_genmedia
from airflow_provider_genmedia import operators, sensors

PACKAGE = airflow_provider_genmedia.__name__
PACKAGE_DIR = Path(airflow_provider_genmedia.__file__).parent
#: Files outside the repository that earlier docstrings cited instead of the vendors' pages.
OUTSIDE_SOURCES = ("shared/seeds", "reference/apis.md", "DESIGN.md")


def modules(package: ModuleType) -> list[ModuleType]:
    """The package and every module under it, imported."""
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        found.append(importlib.import_module(info.name))
    return found


def operator_classes() -> list[type[BaseOperator]]:
    """Every operator and sensor class defined under ``operators`` and ``sensors`` (not those imported there)."""
    classes = {
        obj
        for package in (operators, sensors)
        for module in modules(package)
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseOperator) and obj.__module__ == module.__name__
    }
    return sorted(classes, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def provider_classes(cls: type) -> list[type]:
    """``cls`` and the classes of this provider it inherits from."""
    return [base for base in cls.__mro__ if base.__module__.split(".")[0] == PACKAGE]


def init_arguments(cls: type) -> set[str]:
    """The named arguments of every provider ``__init__`` the class runs (``self`` and ``**kwargs`` left out)."""
    names: set[str] = set()
    for base in provider_classes(cls):
        init = vars(base).get("__init__")
        if init is None:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.name != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                names.add(parameter.name)
    return names


def documented_params(cls: type) -> set[str]:
    """Names with a ``:param name:`` (or ``:param type name:``) line in the docstrings of the class and its
    provider bases."""
    names: set[str] = set()
    for base in provider_classes(cls):
        doc = vars(base).get("__doc__") or ""
        names.update(re.findall(r"^\s*:param\s+(?:[^:\s]+\s+)?(\w+)\s*:", doc, flags=re.MULTILINE))
    return names


OPERATORS = operator_classes()


def test_the_walk_finds_the_providers_operators_and_sensors() -> None:
    names = {cls.__name__ for cls in OPERATORS}
    assert {"GenMediaSubmitOperator", "NovitaImg2ImgOperator", "GenMediaTaskSensor"} <= names


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_every_init_argument_has_a_param_line(cls: type) -> None:
    missing = sorted(init_arguments(cls) - documented_params(cls))
    assert not missing, f"{cls.__module__}.{cls.__qualname__} has no ':param <name>:' line for {missing}"


def test_no_file_of_the_package_cites_files_outside_the_repository() -> None:
    citing = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if any(source in line for source in OUTSIDE_SOURCES)
    ]
    assert not citing, "cite the vendor's URL or docs/vendor-sources.md instead:\n" + "\n".join(citing)
