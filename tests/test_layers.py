"""The tree reads as the pipeline: each module imports only its own layer or the layers below.

Layers, bottom to top (docs/architecture.md): foundation (errors, samples, options) ->
anatomy knowledge (names, landmark_set, tissue) -> io -> geometry -> detection
(anatomy.detect, anatomy.locate) -> model (torch only) -> dataset / methods / training /
evaluation -> report -> stages -> cli.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "skull2face"

LAYERS = [  # (module prefix, layer); the longest matching prefix wins
    ("skull2face", 0), ("skull2face.errors", 0), ("skull2face.samples", 0), ("skull2face.options", 0),
    ("skull2face.anatomy", 1), ("skull2face.anatomy.names", 1), ("skull2face.anatomy.landmark_set", 1),
    ("skull2face.anatomy.tissue", 1),
    ("skull2face.io", 2),
    ("skull2face.geometry", 3), ("skull2face.phantoms", 3), ("skull2face.statistics", 3),
    ("skull2face.anatomy.detect", 4), ("skull2face.anatomy.locate", 4), ("skull2face.anatomy.mr_skull", 4), ("skull2face.anatomy.mr_extract", 4), ("skull2face.anatomy.measurements", 4),
    ("skull2face.model", 5),
    ("skull2face.dataset", 6), ("skull2face.methods", 6), ("skull2face.training", 6), ("skull2face.evaluation", 6),
    ("skull2face.superimposition", 6),
    ("skull2face.report", 7),
    ("skull2face.stages", 8),
    ("skull2face.cli", 9), ("skull2face.__main__", 9),
]
# Layer 6 holds parallel packages that stay apart, but for these uses; in the other layers
# modules of one layer may use one another.
PARALLEL = 6
SIDEWAYS = {("skull2face.training", "skull2face.dataset.reader"), ("skull2face.methods", "skull2face.dataset.reader"),
            ("skull2face.stages.demo", "skull2face.stages"),
            # the dataset's quality gate and weight maps use the face's sub-region boxes and names
            ("skull2face.dataset.quality", "skull2face.evaluation.region"),
            ("skull2face.dataset.weights", "skull2face.evaluation.region"),
            # the skull2face correction's trust is per face region, labelled as the weight maps label it
            ("skull2face.methods.correction", "skull2face.dataset.quality"),
            ("skull2face.methods.correction", "skull2face.dataset.weights")}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(mod: str) -> tuple[int, str]:
    best = max((p for p, _ in LAYERS if mod == p or mod.startswith(p + ".")), key=len)
    return dict(LAYERS)[best], best


def _imports(path: Path) -> list[str]:
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("skull2face"):
                # "from . import names": the imported names may be modules
                subs = [f"{target}.{a.name}" for a in node.names]
                out += [s for s in subs if (SRC.parent / (s.replace(".", "/") + ".py")).exists()
                        or (SRC.parent / s.replace(".", "/")).is_dir()] or [target]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("skull2face")]
    return out


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_down_only(path):
    mod = _module(path)
    mine, my_pkg = _layer(mod)
    for target in _imports(path):
        theirs, their_pkg = _layer(target)
        if their_pkg == my_pkg or any(mod.startswith(a) and target.startswith(b) for a, b in SIDEWAYS):
            continue
        assert theirs < mine or (theirs == mine and mine != PARALLEL), \
            f"{mod} (layer {mine}) imports {target} (layer {theirs})"


def test_model_code_knows_nothing_of_meshes_or_files():
    for path in (SRC / "model").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for word in ("trimesh", "igl", "embreex", "SimpleITK", "open(", "pathlib"):
            assert word not in text, f"{path.name} uses {word}"
        # the depth^k codec is plain arithmetic shared with the dataset and predict (geometry/codec.py)
        allowed = ("skull2face.model", "skull2face.errors", "skull2face.geometry.codec")
        assert all(t.startswith(allowed) for t in _imports(path)), (path.name, _imports(path))


def test_geometry_is_torch_free():
    for path in (SRC / "geometry").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(n == "torch" or n.startswith("torch.") for n in names), path.name


def test_no_module_over_500_lines():
    long = {str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 520}
    assert not long, long


def test_no_global_matplotlib_state_in_library_code():
    for path in MODULES:
        text = path.read_text(encoding="utf-8")
        for bad in ("matplotlib.use(", "import matplotlib.pyplot", "from matplotlib import pyplot"):
            assert bad not in text, f"{path.name}: {bad}"
