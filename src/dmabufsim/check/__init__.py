"""Checkers: the isolation checker (stray DMA, stale mappings, dirty-while-mapped) and the teardown leak check.

Importing the room installs the checker in every execution (``register_extension``).
"""

from .isolation import IsolationChecker, isolation_checker

__all__ = ["IsolationChecker", "isolation_checker"]
