"""The declared environment: environment.yml (conda) and pyproject.toml agree, the installed packages satisfy
them, and the test run's warning filter hides only other packages' deprecations."""

from __future__ import annotations

import re
import tomllib
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return {canonicalize_name(r.name): r for r in requirements}


def conda_requirements() -> tuple[dict[str, SpecifierSet], str]:
    """environment.yml's packages and their version ranges (conda's ``=3.11`` read as ``==3.11.*``)."""
    text = (ROOT / "environment.yml").read_text()
    listed = {}
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        item = line.split("#")[0].strip()
        if item.startswith("- ") and not item.endswith(":") and item not in ("- pip", "- -e ."):
            name, spec = re.fullmatch(r"- ([A-Za-z0-9_.-]+)\s*(.*)", item).groups()
            spec = re.sub(r"^=(?!=)([\d.]+)$", r"==\1.*", spec)  # conda's python=3.11
            listed[canonicalize_name(name)] = SpecifierSet(spec)
    return listed, text


def test_environment_yml_names_the_same_packages_and_ranges_as_pyproject():
    declared = pyproject_requirements()
    conda, text = conda_requirements()
    python = conda.pop("python")
    only_conda, only_pyproject = set(conda) - set(declared), set(declared) - set(conda)
    assert not only_conda and not only_pyproject, (
        f"only in environment.yml: {only_conda}; only in pyproject.toml: {only_pyproject}"
    )
    differ = {n: (str(conda[n]), str(r.specifier)) for n, r in declared.items() if conda[n] != r.specifier}
    assert not differ, f"version ranges differ (environment.yml, pyproject.toml): {differ}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda_python = str(python).removeprefix("==").removesuffix(".*")
    assert SpecifierSet(project["requires-python"]).contains(conda_python), (
        python,
        project["requires-python"],
    )
    assert "- -e ." in text


@pytest.mark.parametrize("name", sorted(pyproject_requirements()))
def test_installed_version_satisfies_pyproject(name):
    requirement = pyproject_requirements()[name]
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.fail(f"{requirement.name} is declared in pyproject.toml but not installed")
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is installed, pyproject.toml asks for {requirement.specifier}"
    )


def warn_from(module: str, message: str) -> None:
    """A DeprecationWarning as if raised by code in ``module`` (the filters match the caller's module)."""
    code = "import warnings\nwarnings.warn(message, DeprecationWarning)"
    exec(compile(code, f"<{module}>", "exec"), {"__name__": module, "message": message})


def test_the_warning_filter_shows_our_deprecations_and_hides_tensorflows():
    # The filters in force here are pyproject's [tool.pytest.ini_options] filterwarnings.
    with warnings.catch_warnings(record=True) as caught:
        warn_from("m2nist_utils.training", "ours")
        warn_from("tensorflow.python.framework.ops", "theirs")
        warn_from("keras.src.layers", "theirs too")
    assert [str(w.message) for w in caught] == ["ours"]
