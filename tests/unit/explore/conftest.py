"""The explorer's pytest fixture, imported as any project would without the entry point."""

from dmabufsim.explore.pytest_plugin import explore_scenario

__all__ = ["explore_scenario"]
