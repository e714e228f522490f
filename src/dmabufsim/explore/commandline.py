"""The ``dmabufsim replay`` command line that rebuilds a finding, as printed in reports.

``run``, ``explore`` and ``check`` know the scenario they ran (the
``FILE.py:function``, ``module:function`` or catalog row the user named),
the catalog directories they loaded and the step budget: the command they
print is the one that rebuilds the execution, pasted into a shell as is.

Rules:

* R1: every word is shell-quoted (``shlex.quote``): a scenario path with a
  space or a ``$`` stays one word, and nothing is a redirect (no
  ``<FILE.py:function>`` placeholder when the scenario is known).
* R2: the options that change the execution travel with the token: each
  ``--scenarios DIR`` the search loaded (a row of an extra catalog is
  unknown, or a different design, without it) and ``--max-steps N`` when
  it is not the default (a livelock is reported at that step).
* R3: when the scenario is not known (a report built by the Python API
  without a name), the placeholder ``FILE.py:function`` is printed
  without angle brackets, so pasting it fails with "no such file" rather
  than redirecting the shell's input.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

#: The ``--max-steps`` default of ``run``, ``replay`` and ``explore``.
DEFAULT_MAX_STEPS = 200_000
#: What stands for an unknown scenario (R3).
PLACEHOLDER = "FILE.py:function"


def replay_command(
    token: str,
    scenario: str = "",
    *,
    scenarios_dirs: Sequence[str] = (),
    max_steps: int | None = None,
) -> str:
    """``dmabufsim replay TOKEN SCENARIO [--scenarios DIR]... [--max-steps N]``, shell-quoted (R1-R3)."""
    words = ["dmabufsim", "replay", token, scenario or PLACEHOLDER]
    for d in scenarios_dirs:
        words += ["--scenarios", d]
    if max_steps is not None and max_steps != DEFAULT_MAX_STEPS:
        words += ["--max-steps", str(max_steps)]
    return " ".join(w if w == PLACEHOLDER else shlex.quote(w) for w in words)
