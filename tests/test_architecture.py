"""The package's shape as checked contracts: layering, stated public APIs, module size.

CONTRIBUTING.md draws the map these tests hold the code to.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tabresnet_course"
MAX_MODULE_LINES = 750


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULE_FILES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def imports_from_package(path: Path) -> list[tuple[str, str, int]]:
    """``(module, name, line)`` for every ``from tabresnet_course... import name`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tabresnet_course"):
            found.extend((node.module, alias.name, node.lineno) for alias in node.names)
    return found


def test_the_layering_contract_holds():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint_imports, "import-linter is not installed: pip install -e '.[test]'"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("path", MODULE_FILES, ids=module_name)
def test_every_module_states_its_public_names(path):
    module = importlib.import_module(module_name(path))
    assert hasattr(module, "__all__"), f"{path.relative_to(ROOT)} has no __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{path.relative_to(ROOT)}: __all__ names {missing}, which the module does not define"
    assert len(module.__all__) == len(set(module.__all__)), f"{path.relative_to(ROOT)}: a name twice in __all__"


@pytest.mark.parametrize("path", MODULE_FILES, ids=module_name)
def test_modules_stay_readable_in_one_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_MODULE_LINES})"


def test_modules_import_only_each_others_public_names():
    """Package modules, tests and benchmarks import a name only from the module that states it."""
    offences = []
    users = MODULE_FILES + sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    for path in users:
        for source, name, line in imports_from_package(path):
            module = importlib.import_module(source)
            if source == "tabresnet_course":
                continue  # the lazily loaded top-level names
            is_submodule = hasattr(module, "__path__") and importlib.util.find_spec(f"{source}.{name}")
            if name not in getattr(module, "__all__", ()) and not is_submodule:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {name} from {source}")
    assert not offences, "imports of names outside the source module's __all__:\n" + "\n".join(offences)


def test_the_top_level_package_exports_what_the_readme_teaches():
    import tabresnet_course

    for name in tabresnet_course.__all__:
        assert getattr(tabresnet_course, name) is not None
    readme = (ROOT / "README.md").read_text()
    taught = {alias for _, alias, _ in imports_from_readme(readme)}
    assert taught <= set(tabresnet_course.__all__), sorted(taught - set(tabresnet_course.__all__))


def imports_from_readme(readme: str) -> list[tuple[str, str, int]]:
    """The package imports of the README's Python blocks."""
    blocks = readme.split("```python")[1:]
    found = []
    for block in blocks:
        code = block.split("```")[0]
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tabresnet_course"):
                found.extend((node.module, alias.name, node.lineno) for alias in node.names)
    return found
