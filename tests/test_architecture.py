"""The tree reads as the architecture (docs/architecture.md §10): these tests keep it so.

They read the source with `ast`, so a violation names the file and the import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dialer"

# Who may import whom, by layer. A layer may always import itself and the neutral modules.
NEUTRAL = {"dialer.clock", "dialer.errors", "dialer.config", "dialer.logs"}
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "store": {"domain"},
    "bus": {"domain"},
    "metrics": {"domain"},
    "channels": {"domain"},
    "agents": {"domain", "store"},
    "engine": {"domain", "store", "bus", "channels", "metrics", "agents"},
    "usecases": {"domain", "store", "metrics", "agents", "engine"},
    "api": {"domain", "store", "bus", "channels", "metrics", "agents", "engine", "usecases"},
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def imports(path: Path) -> list[str]:
    """Every module a file imports, top level or inside a function."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "dialer" else None


def test_sql_lives_only_in_the_store() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in modules()
        if "store" not in p.relative_to(PACKAGE).parts
        for name in imports(p)
        if name == "sqlalchemy" or name.startswith("sqlalchemy.")
    ]
    assert offenders == []


def test_few_modules_at_the_top_level() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_layers_import_only_downwards(name: str) -> None:
    allowed = ALLOWED[name] | {name}
    offenders = []
    for path in (PACKAGE / name).rglob("*.py"):
        for module in imports(path):
            if not module.startswith("dialer."):
                continue
            target = layer(module)
            if module in NEUTRAL or target is None:
                continue
            if target not in allowed:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_the_domain_has_no_io() -> None:
    io = {"sqlalchemy", "aiohttp", "redis", "asyncio", "aiosmtplib", "twilio", "os"}
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in (PACKAGE / "domain").rglob("*.py")
        for name in imports(p)
        if name.split(".")[0] in io
    ]
    assert offenders == []


CITED = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")


def cited_docs() -> set[tuple[str, str]]:
    sources = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*")]
    sources += [*(PACKAGE / "web").rglob("*.js"), *(ROOT / "deploy").rglob("*")]
    found: set[tuple[str, str]] = set()
    for path in sources:
        if not path.is_file() or path.suffix not in {".py", ".js", ".yml", ".md", ".service", ""}:
            continue
        for match in CITED.finditer(path.read_text(errors="replace")):
            found.add((str(path.relative_to(ROOT)), match.group(1)))
    return found


def test_every_cited_document_is_in_the_repository() -> None:
    missing = []
    for source, doc in sorted(cited_docs()):
        here = (ROOT / source).parent / doc
        if not (ROOT / doc).is_file() and not here.is_file():
            missing.append(f"{source} cites {doc}")
    assert missing == []


def test_the_citation_scan_sees_citations() -> None:
    assert ("dialer/runtime.py", "docs/architecture.md") in cited_docs()
