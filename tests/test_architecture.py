"""The package layout keeps its imports one way: a lower layer never imports a higher one.

Layers, highest first: cli -> api -> report -> experiment -> evaluation -> sampling -> train ->
{runs, algorithm, models, data} -> config -> errors. Packages on one layer do not import each other;
report draws experiment's summaries, and experiment never imports report. Every import counts, at
module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "ganforge"
LAYERS: list[set[str]] = [
    {"cli"},
    {"api"},
    {"report"},
    {"experiment"},
    {"evaluation"},
    {"sampling"},
    {"train"},
    {"runs", "algorithm", "models", "data"},
    {"config"},
    {"errors"},
]
LAYER_OF = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}
ENTRY_POINTS = {"__init__", "__main__"}  # the package's front door and `python -m ganforge` sit above every layer


def unit_of(module: str) -> str | None:
    """The layer unit of a dotted module name inside ganforge (``ganforge.train.loop`` -> ``train``)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "ganforge" and len(parts) > 1 else None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every ganforge import in a file, resolving ``from ganforge import x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ganforge":
                found += [(node.lineno, f"ganforge.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, module) for line, module in found if module.startswith("ganforge")]


def source_files() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    units = {path.relative_to(SOURCE).parts[0].removesuffix(".py") for path in source_files()}
    assert units - ENTRY_POINTS <= set(LAYER_OF), f"modules outside the layer list: {units - ENTRY_POINTS - set(LAYER_OF)}"


@pytest.mark.parametrize("path", source_files(), ids=lambda path: str(path.relative_to(SOURCE)))
def test_imports_only_go_down_the_layers(path):
    unit = path.relative_to(SOURCE).parts[0].removesuffix(".py")
    if unit in ENTRY_POINTS:
        return
    wrong = []
    for line, module in imported_modules(path):
        target = unit_of(module)
        if target is None or target == unit or target in ENTRY_POINTS:
            continue
        if LAYER_OF[target] <= LAYER_OF[unit]:
            wrong.append(f"line {line}: {unit} imports {module} ({target} is not below {unit})")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    """The test above can fail: an import of a higher layer is reported."""
    module = tmp_path / "bad.py"
    module.write_text("from ganforge.evaluation.hook import PeriodicEvaluation\n\ndef f():\n    import ganforge.cli\n")
    targets = [unit_of(name) for _, name in imported_modules(module)]
    assert targets == ["evaluation", "cli"]
    assert all(LAYER_OF[target] < LAYER_OF["train"] for target in targets)
