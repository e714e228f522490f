"""C14 (Daniel): pages are dirtied and released only after every mapping is gone.

"In i915 we guarantee that we call set_page_dirty/mark_page_accessed only
after all the mappings are really gone (both GPU PTEs and sg mapping),
guaranteeing that any stray writes from either the GPU or IOMMU will
result in faults."

The rule is checked on every design by the isolation checker (R4: a page
dirtied, unpinned, released or freed while an IOMMU entry can still reach
it is ``dirty-while-mapped``). Each row unmaps the userptr range (from the
process's main thread) while another thread submits a job naming the
object, whose submission looks the pages up and binds them itself; every
schedule is explored for the clean designs (optimal DPOR, proved):

* ``i915-2018``: cancel_userptr unbinds, then dirties and puts. Clean.
* ``helper``: the shared helper does the same. Clean.
* ``unsync``: no notifier at all; it dirties only at close, after
  unbinding: the *order* is right (clean for C14; C17 flags its coherence).
* ``amdgpu-2018``: the notifier marks the still-mapped pages dirty
  (``dirty-while-mapped``) and the mapping survives (``stale-mapping``).
* ``wait-free-keep-sg``: releases the pages with the sg table alive
  (``dirty-while-mapped``, ``stale-mapping``); munmap then frees them and
  the job, whose submission bound them before the release and still trusts
  that binding, writes a free frame (``dma-freed-page``).
"""

from __future__ import annotations

from typing import Any

from .catalog import Verdict
from .userptr_lab import lab

_DOC = "munmap racing a job naming the object"
#: The smallest configuration that still shows both buggy designs' bugs, so that the
#: clean ones are proved on it: the submission returns once its job is queued (as the
#: CS ioctl does; the teardown waits for it), it looks the pages up and binds them itself
#: (no race-free first job: the schedules where it binds before the munmap are the ones
#: where the notifier meets a bound object with a job in flight), and munmap runs in the
#: process's main thread. Each choice halves the traces or more (a first job's
#: leftovers -- its signalled fence, the engine going back to sleep -- race with
#: everything); none removes a schedule in which a design breaks.
_RACE: dict[str, Any] = {"race": "munmap", "user": "submit", "wait": False, "prebind": False, "inline_race": True}
i915_2018 = lab("i915_2018", __name__, "i915-2018", f"i915-2018 userptr; {_DOC}.", **_RACE)
helper = lab("helper", __name__, "helper", f"The shared helper; {_DOC}.", **_RACE)
unsync = lab("unsync", __name__, "unsync", f"The unsynchronised userptr; {_DOC}.", **_RACE)
amdgpu_2018 = lab("amdgpu_2018", __name__, "amdgpu-2018", f"amdgpu-2018 userptr; {_DOC}.", **_RACE)
wait_free_keep_sg = lab("wait_free_keep_sg", __name__, "wait-free-keep-sg", f"Wait, free, keep sg; {_DOC}.",
                        **_RACE)

_DIRTY = Verdict(kinds=frozenset({"dirty-while-mapped", "stale-mapping"}))

CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule in 166 Mazurkiewicz traces, dropping nothing.
    {"id": "C14", "design": "i915-2018", "scenario": i915_2018, "expected": "clean", "strategy": "odpor",
     "budget": 400},
    # Proved: optimal DPOR exhausts every schedule in 638 Mazurkiewicz traces, dropping nothing.
    {"id": "C14", "design": "helper", "scenario": helper, "expected": "clean", "strategy": "odpor",
     "budget": 1300},
    # Proved: optimal DPOR exhausts every schedule in 38 Mazurkiewicz traces, dropping nothing.
    {"id": "C14", "design": "unsync", "scenario": unsync, "expected": "clean", "strategy": "odpor", "budget": 200},
    {"id": "C14", "design": "amdgpu-2018", "scenario": amdgpu_2018, "expected": _DIRTY, "budget": 100},
    {"id": "C14", "design": "wait-free-keep-sg", "scenario": wait_free_keep_sg,
     "expected": Verdict(kinds=frozenset({"dirty-while-mapped", "stale-mapping", "dma-freed-page"})), "budget": 100},
]
