"""Defaults live once: a method, colormap, policy or step-count default is written only in the
function or dataclass that owns it; every other layer passes None through."""

import ast
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT / "inspector").rglob("*.py")),
           *sorted((ROOT / "clients" / "python" / "inspector_client").rglob("*.py"))]
# default value -> the files allowed to hold it as a default
OWNERS = {
    "gradcam": {"inspector/methods/__init__.py"},
    "jet": {"inspector/imaging/overlay.py"},
    "viridis": {"inspector/imaging/features.py"},
    "RdBu_r": {"inspector/imaging/filters.py"},
    "auto": {"inspector/imaging/filters.py"},
    # the plain gradient is the gradient engine's own vocabulary (its protocol and its callers
    # inside methods/ and maximize/); the edges and the facade never name it
    "standard": {"inspector/graph/autodiff/__init__.py", "inspector/model_access.py",
                 "inspector/runtime/access.py", "inspector/methods/run.py", "inspector/methods/gradients.py",
                 "inspector/maximize/loop.py"},
    "channel": {"inspector/imaging/features.py", "inspector/maximize/config.py"},
    256: {"inspector/maximize/config.py"},
    "deletion": {"inspector/methods/metrics.py"},
}
TYPED = {(type(k), k): v for k, v in OWNERS.items()}  # 256 is not 256.0, 1 is not True


def _defaults(tree: ast.AST):
    """(value, line) of every default: parameter defaults, keyword `default=`, `x or <const>`,
    annotated class fields and module/class constants named like defaults."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for d in [*node.args.defaults, *node.args.kw_defaults]:
                if isinstance(d, ast.Constant):
                    yield d.value, d.lineno
        elif isinstance(node, ast.keyword) and node.arg == "default" and isinstance(node.value, ast.Constant):
            yield node.value.value, node.value.lineno
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            last = node.values[-1]
            if isinstance(last, ast.Constant):
                yield last.value, last.lineno
        elif isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant):
            yield node.value.value, node.value.lineno
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple | ast.Constant):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any("DEFAULT" in n for n in names):
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                for v in values:
                    if isinstance(v, ast.Constant):
                        yield v.value, v.lineno


def test_no_default_is_restated_outside_its_owner():
    found = []
    for path in SOURCES:
        if "/v1/" in str(path):
            continue
        rel = path.relative_to(ROOT).as_posix()
        for value, line in _defaults(ast.parse(path.read_text())):
            owners = TYPED.get((type(value), value))
            if owners is not None and rel not in owners:
                found.append(f"{rel}:{line}: default {value!r} (owned by {sorted(owners)})")
    assert not found, "\n".join(found)


def test_the_scan_finds_a_restated_default():
    planted = ast.parse('def f(cmap="jet", steps=256):\n    return method or "gradcam"\n'
                        'p.add_argument("--policy", default="standard")\n')
    assert {v for v, _ in _defaults(planted)} == {"jet", 256, "gradcam", "standard"}


def test_owners_hold_the_defaults_that_unset_values_get(tmp_path):
    """What None means, read from the owners: the values the docs promise."""
    import inspect

    from inspector.graph.autodiff import POLICIES
    from inspector.imaging.features import render_feature_grid
    from inspector.imaging.filters import render_filter_grid
    from inspector.imaging.overlay import render_overlay
    from inspector.maximize import MaximizeConfig
    from inspector.methods import DEFAULT_METHOD, get_method
    from inspector.methods.metrics import DEFAULT_METRICS

    assert get_method(None).name == DEFAULT_METHOD == "gradcam"
    assert inspect.signature(render_overlay).parameters["cmap"].default == "jet"
    assert inspect.signature(render_feature_grid).parameters["cmap"].default == "viridis"
    assert inspect.signature(render_filter_grid).parameters["cmap"].default == "RdBu_r"
    assert MaximizeConfig().steps == 256 and POLICIES[0] == "standard"
    assert DEFAULT_METRICS == ("deletion", "insertion")
    assert np.isfinite(inspect.signature(render_overlay).parameters["alpha"].default)
