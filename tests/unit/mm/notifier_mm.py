"""The mm the notifier unit tests subscribe to.

The notifier only needs what the hook points of ``notifier_hooks.py`` use
(``k``, ``oid``, ``subscribers``, ``active_ranges``,
``stats_invalidations``: ``notifier_hooks.NotifierMm``) and ``notifier_subscribe``;
the unit tests drive the hooks directly, without a process, so that each test
isolates one rule of the notifier.
"""

from __future__ import annotations

from typing import Any

import dmabufsim as ds


class NotifierTestMm:
    """A bare address space: identity plus the hook points' bookkeeping."""

    def __init__(self) -> None:
        self.k = ds.current_kernel()
        self.oid = self.k.new_oid()
        self.subscribers: list[Any] = []
        self.active_ranges: list[Any] = []
        self.stats_invalidations = 0
        self.dead = False

    def notifier_subscribe(self, sub: Any) -> None:
        self.subscribers.append(sub)


def new_mm() -> Any:
    return NotifierTestMm()
