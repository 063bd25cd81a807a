"""Checks on the project itself: table of contents, environment files, command line."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from toc_chapters import toc_files  # noqa: E402


def test_every_toc_entry_exists_and_is_a_jupytext_notebook():
    files = toc_files()
    assert len(files) >= 3
    for name in files:
        path = ROOT / name
        assert path.is_file(), f"_toc.yml names {name}, which does not exist"
        assert path.read_text().startswith("---\njupytext:"), f"{name} has no jupytext header"


def test_every_chapter_in_book_is_in_the_toc():
    listed = {Path(name).name for name in toc_files()}
    on_disk = {path.name for path in (ROOT / "book").glob("*.md")}
    assert on_disk <= listed, f"chapters missing from _toc.yml: {sorted(on_disk - listed)}"


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [
        req for extra in ("book", "test", "spark") for req in project["optional-dependencies"][extra]
    ]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(dep["pip"] for dep in environment["dependencies"] if isinstance(dep, dict))
    conda_section = [dep for dep in environment["dependencies"] if isinstance(dep, str)]
    assert f"python={project['requires-python'].removeprefix('>=')}" in conda_section
    listed = [req for req in pip_section if not req.startswith("-e")]
    assert sorted(map(normalise, listed)) == sorted(
        set(map(normalise, declared))
    )  # once each, even if two extras need it
    assert "-e .[book,test,spark]" in pip_section


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tabresnet_course", *args], capture_output=True, text=True, cwd=ROOT)


def test_command_line_help_and_version():
    import tabresnet_course

    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"tabresnet-course {tabresnet_course.__version__}"
    help_text = run_cli("--help")
    assert help_text.returncode == 0 and "usage: tabresnet-course" in help_text.stdout
