"""The house's import contract: the core and the faces (cli, tui, view) load without torch, and
nothing below imports what stands above it.

- `ssltui.core` (configuration, presets, events, run store, graph, Table 1, sweep space) imports
  neither torch, textual, typer nor the trainer, at module level or anywhere else.
- The faces never import torch; the CLI imports the trainer only inside the function that trains,
  the TUI and the view never (the app trains through `ssltui run` in its own process).
- The trainer never imports a face.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ssltui"
FACES = ("cli", "tui", "view")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path, module_level_only: bool) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the file (or only those at module level)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def _offending(paths: list[Path], banned: tuple[str, ...], module_level_only: bool) -> list[str]:
    return [
        f"{p.relative_to(ROOT.parent)}:{line} imports {name}"
        for p in paths
        for line, name in _imports(p, module_level_only)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]


def test_core_imports_no_torch_no_ui_no_trainer_anywhere():
    banned = (
        "torch",
        "torchvision",
        "textual",
        "typer",
        "rich",
        "ssltui.trainer",
        "ssltui.cli",
        "ssltui.tui",
        "ssltui.view",
    )
    assert _offending(_modules("core"), banned, module_level_only=False) == []


@pytest.mark.parametrize("face", FACES)
def test_faces_import_no_torch_and_the_trainer_only_inside_functions(face):
    assert _offending(_modules(face), ("torch", "torchvision"), module_level_only=False) == []
    assert _offending(_modules(face), ("ssltui.trainer",), module_level_only=True) == []


@pytest.mark.parametrize("face", ("tui", "view"))
def test_the_app_and_the_view_never_import_the_trainer(face):
    """The app trains through `ssltui run` in its own process; it reads the run store."""
    assert _offending(_modules(face), ("ssltui.trainer",), module_level_only=False) == []


def test_trainer_imports_no_face():
    assert (
        _offending(
            _modules("trainer"),
            ("textual", "typer", "ssltui.cli", "ssltui.tui", "ssltui.view"),
            module_level_only=False,
        )
        == []
    )


def test_the_core_and_the_faces_load_without_torch():
    """Every module of the core, the view, the CLI and the TUI app, imported in a fresh
    interpreter, leaves torch and the trainer unloaded: the TUI's first frame never waits for torch."""
    names = [
        ".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        for package in ("core", *FACES)
        for p in _modules(package)
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')"
        " or m.startswith('ssltui.trainer'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


# Where a method's name is also another thing's name, with the reason.
SAME_WORD = {
    "supervised": {
        "core/evaluations/supervised.py",  # the baseline's evaluation is named after it
        "core/presets.py",
    }
}  # DEFAULT_PRESET, the baseline's preset


def test_each_method_name_is_written_only_in_its_declaration():
    """Every list of method names (schema, forms, table order, graph) is derived from the registry:
    a method's name is a string literal only in the module that declares it."""
    from ssltui.core import registry

    declared = {m.name: {f"core/methods/{m.name}.py", *SAME_WORD.get(m.name, ())} for m in registry.methods()}
    found: dict[str, set[str]] = {name: set() for name in declared}
    for path in sorted(ROOT.rglob("*.py")):
        literals = _string_literals(path)
        for name in declared:
            if name in literals:
                found[name].add(str(path.relative_to(ROOT)))
    assert found == declared


def test_the_registries_list_the_shipped_methods_and_evaluations_in_table_order():
    from ssltui.core import registry
    from ssltui.core.config import RunConfig

    assert registry.method_names()[:3] == ("supervised", "simclr", "rotnet")
    assert registry.evaluation_names() == ("supervised", "linear", "semi", "knn")
    for m in registry.methods():
        assert set(m.default_evaluations) <= set(m.evaluations) <= set(registry.evaluation_names())
        if m.settings is not None:  # each method's settings are a section of the run configuration
            assert RunConfig.model_fields[m.name].annotation is m.settings


def test_recording_the_versions_does_not_import_torchvision():
    """Every run records torchvision's version; importing the package for it cost each CLI run
    about 1.8 s of CPU (its models) on a run that never touches torchvision (synthetic data)."""
    code = (
        "import sys; from ssltui.trainer.runner import versions; v = versions(); "
        "imported = 'torchvision' in sys.modules; import torchvision; "
        "print(imported, v['torchvision'] == torchvision.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"], out
