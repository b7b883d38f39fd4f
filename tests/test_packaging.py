"""The conda environment and pyproject list the same dependencies; the CLI is wired."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch", "python": None, "pip": None}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _conda_names() -> set[str]:
    names: set[str] = set()
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if in_deps and re.match(r"^\s+- ", line):
            item = line.split("- ", 1)[1].split("#")[0].strip()
            if item.startswith("-") or item.endswith(":") or not item:
                continue
            name = _name(item)
            name = CONDA_TO_PYPI.get(name, name)
            if name:
                names.add(name)
    return names


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["lab"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["dev"]}
    conda = _conda_names()
    assert wanted - conda == set(), f"missing from environment.yml: {sorted(wanted - conda)}"
    assert conda - wanted == set(), (
        f"in environment.yml but not pyproject: {sorted(conda - wanted)}"
    )
    text = (ROOT / "environment.yml").read_text()
    assert (
        "conda-forge" in text
        and "- pytorch\n" not in text.split("channels:")[1].split("dependencies:")[0]
    )


def test_torch_range_admits_the_ci_build():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if _name(r) == "torch")
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_req[len("torch") :])


def test_cli_help_and_data_list():
    out = subprocess.run(
        [sys.executable, "-m", "coursekit.cli", "data", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tinyshakespeare" in out and "license" in out


def test_ci_runs_the_readme_commands():
    """.ci/run must install and test exactly as the README's quick start says."""
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    install = next(
        line.split("#")[0].strip() for line in quick.splitlines() if "pip install" in line
    )
    test = next(line.split("#")[0].strip() for line in quick.splitlines() if "pytest" in line)
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci, f"README install command {install!r} is not what .ci/run runs"
    assert re.search(rf"^{re.escape(test)}\s*$", ci, re.M), (
        f"README test command {test!r} not in .ci/run"
    )
    assert "torch==2.13.0" in ci
