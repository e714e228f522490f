"""The claim catalog: one scenario per claim of docs/claims.md, each with its expected verdict.

``discover()`` builds the :class:`Catalog` from every module of this
package named ``c*.py``, ``basics_*.py`` or ``modern_*.py`` that declares
``CLAIM`` / ``CLAIMS``; ``check()`` settles it (``dmabufsim check``).
"""

from .catalog import CLAIM_INDEX, Catalog, ClaimScenario, Found, Verdict, discover, same_cycle
from .runner import CheckResult, RowResult, chain_of, check

__all__ = [
    "CLAIM_INDEX", "Catalog", "CheckResult", "ClaimScenario", "Found", "RowResult", "Verdict", "chain_of",
    "check", "discover", "same_cycle",
]
