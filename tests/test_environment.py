"""environment.yml (conda) and pyproject.toml must name the same packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def names(requirements) -> set[str]:
    return {
        re.split(r"[\s<>=!~\[;]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = names(project["dependencies"]) | names(project["optional-dependencies"]["dev"])
    conda = []
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        item = line.split("#")[0].strip()
        if item.startswith("- ") and not item.endswith(":") and item not in ("- pip", "- -e ."):
            conda.append(item[2:])
    listed = names(conda) - {"python"}
    assert listed == declared, (
        f"only in environment.yml: {listed - declared}; only in pyproject: {declared - listed}"
    )
    assert "- -e ." in text
