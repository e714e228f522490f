"""Every room's ``__all__`` names what it imports: ``from dmabufsim.<room> import *`` works."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import dmabufsim

ROOMS = sorted(m.name for m in pkgutil.iter_modules(dmabufsim.__path__) if m.ispkg)


@pytest.mark.parametrize("room", ["dmabufsim", *(f"dmabufsim.{r}" for r in ROOMS)])
def test_every_exported_name_resolves(room: str) -> None:
    module = importlib.import_module(room)
    missing = [name for name in getattr(module, "__all__", ()) if not hasattr(module, name)]
    assert missing == []
