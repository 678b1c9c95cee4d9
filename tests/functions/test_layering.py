"""The layering the functions package promises, read from the source (imports) and checked at run time.

* ``cvat_ext.models`` (model code) imports nothing of cvat-ext but itself and ``cvat_ext.errors``;
* the runtime a function image imports (``cvat_ext.functions`` minus ``sdk`` and ``dev``) imports
  neither the dev tools, nor the cvat-sdk wrappers, nor cvat_sdk / nuclio_sdk / torch at import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cvat_ext"
RUNTIME = sorted(
    p for p in (PACKAGE / "functions").glob("*.py") if p.name != "__init__.py"
)  # sdk/ and dev/ are sub-packages, not matched


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in ``path`` (function-level ones too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "models").glob("*.py")), ids=lambda p: p.name)
def test_model_code_depends_on_nothing_above_it(path: Path) -> None:
    ours = {m for m in _imports(path) if m.startswith("cvat_ext")}
    above = {m for m in ours if not (m.startswith("cvat_ext.models") or m == "cvat_ext.errors")}
    assert not above, f"{path.name} imports {sorted(above)}"


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: p.name)
def test_runtime_does_not_import_dev_tools_or_the_sdk(path: Path) -> None:
    bad = {
        m
        for m in _imports(path)
        if m.startswith(("cvat_ext.functions.dev", "cvat_ext.functions.sdk", "cvat_sdk", "cvat_ext.cvat"))
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_importing_the_runtime_loads_no_heavy_or_dev_module() -> None:
    modules = ", ".join(f"cvat_ext.functions.{p.stem}" for p in RUNTIME)
    watched = ("torch", "cv2", "cvat_sdk", "nuclio_sdk", "cvat_ext.functions.dev.gateway")
    code = f"import sys, {modules}\nprint(','.join(m for m in {watched!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""
