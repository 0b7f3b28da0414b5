"""The installed shape: one ``maskwatch`` import namespace, layered imports, no import circles.

The package is installed (non-editable, as a wheel would be) into a temporary folder, and every check
runs against that copy, so the test sees exactly what ``pip install .`` ships.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    return target


def _python(installed: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=installed.parent, env=env, capture_output=True, text=True
    )


def test_one_top_level_package_is_installed(installed: Path) -> None:
    tops = sorted(
        p.name for p in installed.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"
    )
    assert tops == ["maskwatch"]
    for sub in ("core", "config", "runtime", "cli", "ingest", "worker", "publisher", "models"):
        assert (installed / "maskwatch" / sub / "__init__.py").is_file(), sub
    assert (installed / "maskwatch" / "models" / "mask_classifier.keras").is_file()


def test_stages_import_by_their_namespace_and_generic_names_do_not(installed: Path) -> None:
    ok = _python(
        installed,
        "import maskwatch.worker, maskwatch.publisher, maskwatch.ingest, maskwatch.models; print('ok')",
    )
    assert ok.returncode == 0, ok.stderr
    for name in ("models", "worker", "publisher", "ingest"):
        r = _python(installed, f"import {name}")
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, name


def test_import_layers_are_kept(installed: Path) -> None:
    # lint-imports puts its working directory on sys.path: run it beside the installed copy.
    r = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=installed,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others(installed: Path) -> None:
    code = (
        "import grimp, json\n"
        "g = grimp.build_graph('maskwatch', cache_dir=None)\n"
        "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))\n"
    )
    r = _python(installed, code)
    assert r.returncode == 0, r.stderr
    import json

    graph = {m: set(deps) for m, deps in json.loads(r.stdout).items()}
    assert len(graph) > 50
    assert _cycles(graph) == []
