"""Dependencies point down: the kernel room imports nothing above it."""

from __future__ import annotations

import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "dmabufsim"

#: Each room and the rooms it may import from (besides itself).
ALLOWED = {
    "kernel": set(),
    "locking": {"kernel"},
    "mm": {"kernel", "locking"},
    "dma": {"kernel", "locking"},
    "device": {"kernel", "locking", "mm", "dma"},
    "check": {"kernel", "locking", "mm", "device", "dma"},
    # Reference drivers use the public API of every model room (and may consult the checker).
    "drivers": {"kernel", "locking", "dma", "mm", "device", "check"},
    # The explorer works through the runtime only (strategies, tokens, the held-lock stack).
    "explore": {"kernel", "locking"},
    # The catalog and the reports may use every model room; report also reads the catalog.
    "scenarios": {"kernel", "locking", "dma", "mm", "device", "drivers", "check", "explore"},
    "report": {"kernel", "locking", "dma", "mm", "device", "drivers", "check", "explore", "scenarios"},
}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    rooms: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module:
            rooms.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("dmabufsim."):
            rooms.add((node.module or "").split(".")[1])
    return rooms


def test_rooms_import_only_downwards() -> None:
    for room, allowed in ALLOWED.items():
        for path in (SRC / room).rglob("*.py"):
            bad = _imports(path) - allowed - {room}
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)} (room {room} may import {sorted(allowed)})"
