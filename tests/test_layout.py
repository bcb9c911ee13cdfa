"""The package layout reads as the pipeline, and imports run only downward (docs/architecture.md).

Every ``import`` statement of the project's source (module level and inside functions, absolute and relative) is
resolved with :mod:`ast` and checked against the layer rules:

* ``emulator.core`` imports nothing else of the project;
* ``emulator.model`` imports the core;
* ``emulator.training`` and ``emulator.mocks`` import the model and the core, not each other;
* ``data_prep`` imports only ``emulator.core``;
* ``emulator.cli`` sits on top of the emulator stages; nothing imports ``benchmarks`` or a command line
  (``emulator.cli``, ``data_prep.cli``) except itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emulator", "data_prep", "benchmarks")
MAX_LINES = 350  # hard ceiling per module; the aim is ~300

#: layer -> layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "emulator.core": set(),
    "emulator.model": {"emulator.core"},
    "emulator.training": {"emulator.core", "emulator.model"},
    "emulator.mocks": {"emulator.core", "emulator.model"},
    "emulator": {"emulator.core", "emulator.model", "emulator.training", "emulator.mocks"},  # __init__, api.py
    "emulator.cli": {"emulator.core", "emulator.model", "emulator.training", "emulator.mocks"},
    "data_prep": {"emulator.core"},
    "data_prep.cli": {"emulator.core", "data_prep"},
    "benchmarks": {"emulator.core", "emulator.model", "emulator.training", "emulator.mocks", "emulator", "data_prep"},
}
LAYERS = sorted(ALLOWED, key=len, reverse=True)  # most specific prefix first


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str | None:
    if module in ("data_prep.cli",) or module.startswith("data_prep.simulate.cli"):
        return "data_prep.cli"
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every project import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from . import x" / "from pkg import submodule": the names may be modules
            out.append((node.lineno, target))
            out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                    if (ROOT / Path(*f"{target}.{alias.name}".split("."))).with_suffix(".py").is_file()
                    or (ROOT / Path(*f"{target}.{alias.name}".split("."))).is_dir()]
    return [(line, name) for line, name in out if name.split(".")[0] in PACKAGES]


def _imported_names(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, absolute module, imported name or None) of every project import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - max(node.level - 1, 0)] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out += [(node.lineno, target, alias.name) for alias in node.names]
    return [row for row in out if row[1].split(".")[0] in PACKAGES]


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_the_resolver_sees_relative_and_nested_imports(tmp_path):
    # a sanity check of the checker itself on a module of the real tree
    found = dict((name, line) for line, name in _imports(ROOT / "emulator" / "mocks" / "api.py"))
    assert "emulator.model.portable" in found and "emulator.core.cosmology" in found
    assert "emulator.mocks.io" in found  # imported inside generate_mocks


def test_imports_run_only_downward():
    violations = []
    for path in _sources():
        src = _layer(_module_name(path))
        assert src is not None, f"{path} belongs to no layer: add it to ALLOWED"
        for line, target in _imports(path):
            dst = _layer(target)
            if dst is None or dst == src:
                continue
            if dst not in ALLOWED[src]:
                violations.append(f"{path.relative_to(ROOT)}:{line}: {src} imports {target} ({dst})")
    assert not violations, "imports against the layer rules:\n" + "\n".join(violations)


def test_modules_are_small_and_the_top_level_is_thin():
    files = _sources() + sorted((ROOT / "tests").glob("*.py"))
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)
    top = sorted(p.name for p in (ROOT / "emulator").glob("*.py"))
    assert top == ["__init__.py", "api.py"], top


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("emulator.mocks.api", ("lightning", "emulator.training", "data_prep")),
        ("emulator.model.emulate", ("lightning", "emulator.training", "emulator.mocks")),
        ("data_prep.simulate.suite", ("lightning", "emulator.model", "emulator.training", "emulator.mocks")),
        ("emulator.cli", ("lightning", "torch")),
        ("emulator", ("torch",)),
    ],
)
def test_importing_a_stage_loads_no_stage_above_it(module, forbidden):
    code = (f"import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, f"importing {module} loaded {res.stdout.strip() or res.stderr[-500:]}"


def test_lazy_package_exports_resolve():
    import emulator
    import emulator.mocks as mocks

    assert callable(emulator.generate_mocks)
    for name in mocks.__all__:
        assert getattr(mocks, name) is not None, name


def test_every_project_import_resolves():
    """Imports inside functions (lazy, for start-up time) are not run by most tests: resolve them all here."""
    import importlib

    missing = []
    for path in _sources() + sorted((ROOT / "tests").glob("*.py")):
        for line, module, name in _imported_names(path):
            try:
                mod = importlib.import_module(module)
            except ImportError as exc:
                missing.append(f"{path.relative_to(ROOT)}:{line}: {module} ({exc})")
                continue
            if name is not None and not hasattr(mod, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    missing.append(f"{path.relative_to(ROOT)}:{line}: {module} has no {name}")
    assert not missing, "unresolved imports:\n" + "\n".join(missing)
