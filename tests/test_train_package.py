"""coursekit.train as a package: lazy exports, the old names, and its import layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import coursekit.train

TRAIN_DIR = Path(coursekit.train.__file__).parent

#: every public name of the former single-module coursekit/train.py
OLD_NAMES = [
    "Batch",
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatch",
    "GetBatch",
    "History",
    "LossFn",
    "ScheduleName",
    "TrainConfig",
    "autocast_context",
    "cosine_schedule",
    "evaluate",
    "label_smoothing_loss",
    "load_checkpoint",
    "load_or_train",
    "noam_schedule",
    "read_checkpoint_meta",
    "save_checkpoint",
    "train",
]


def _fresh_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_the_losses_does_not_import_the_loop() -> None:
    """A model may import coursekit.train.losses without loading the loop (fresh process)."""
    out = _fresh_python(
        "import sys\n"
        "import coursekit.train.losses\n"
        "from coursekit.train import cross_entropy_loss, noam_schedule\n"
        "print(sorted(m for m in sys.modules if m.startswith('coursekit.train')))\n"
        "import coursekit.train as t\n"
        "t.TrainConfig\n"
        "print('coursekit.train.loop' in sys.modules)\n"
    )
    first, second = out.splitlines()
    loaded = ast.literal_eval(first)
    assert "coursekit.train.losses" in loaded
    for heavy in ("loop", "checkpoints", "optim", "precision"):
        assert f"coursekit.train.{heavy}" not in loaded
    assert second == "True"  # the loop is imported on first use of one of its names


@pytest.mark.parametrize("name", OLD_NAMES)
def test_every_old_name_is_still_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from coursekit.train import {name}", namespace)
    assert namespace[name] is getattr(coursekit.train, name)


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert sorted(coursekit.train.__all__) == sorted(coursekit.train._EXPORTS)
    assert set(OLD_NAMES) <= set(coursekit.train.__all__)
    for name in coursekit.train.__all__:
        value = getattr(coursekit.train, name)
        module = sys.modules[f"coursekit.train.{coursekit.train._EXPORTS[name]}"]
        assert getattr(module, name) is value
        assert name in dir(coursekit.train)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = coursekit.train.nope  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- layering
LOW = {"losses", "schedules", "history"}  # torch and the standard library only
ALLOWED_COURSEKIT = {"coursekit.runtime", "coursekit.files"}


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module, inside a function) for every import statement of ``tree``."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, nested))
            visit(child, nested)

    visit(tree, False)
    return found


@pytest.mark.parametrize("path", sorted(TRAIN_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_import_layering(path: Path) -> None:
    imports = _imports(ast.parse(path.read_text(encoding="utf-8")))
    for module, in_function in imports:
        top = module.split(".")[0]
        if top == "coursekit":
            assert not in_function, f"{path.name}: function-level import of {module}"
            assert path.stem not in LOW, f"{path.name} must not import {module}"
            assert module in ALLOWED_COURSEKIT or module.startswith("coursekit.train."), (
                f"{path.name} imports {module}: the train package may only use "
                f"{sorted(ALLOWED_COURSEKIT)} and its own submodules"
            )
        elif path.stem in LOW:
            assert top == "torch" or top in sys.stdlib_module_names, (
                f"{path.name} imports {module}: only torch and the standard library allowed"
            )
