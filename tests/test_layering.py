"""Dependencies point inward: adapters → gateway → policies, never back up (ARCHITECTURE §7)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "policies": {"gateway", "adapters", "starlette", "uvicorn", "mcp", "psycopg", "redis",
                 "aiosqlite", "sqlite3", "httpx2", "httpx", "openai"},
    "gateway": {"adapters", "starlette", "uvicorn", "mcp", "psycopg", "psycopg_pool", "redis",
                "aiosqlite", "sqlite3", "httpx2", "httpx", "openai", "agents", "langchain",
                "langgraph", "sentence_transformers", "torch", "limits"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_inner_layers_import_nothing_from_outer_ones(package):
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert offenders == []


def test_core_modules_declare_their_public_surface():
    missing = []
    for package in ("gateway", "policies"):
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            mod = importlib.import_module(info.name)
            if info.ispkg:
                continue
            exported = getattr(mod, "__all__", None)
            if exported is None:
                missing.append(info.name)
                continue
            for name in exported:
                assert hasattr(mod, name), f"{info.name}.__all__ names missing {name}"
    assert missing == []
