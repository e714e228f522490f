"""C13 (Daniel): amdgpu's 2018 notifier waits for fences but leaves GPU PTEs and IOMMU mappings.

"Leaking the IOMMU mappings otoh means rogue userspace could do a bunch of
stray writes (I don't see anywhere code in amdgpu_mn.c to unmap at least
the gpu side PTEs to make stuff inaccessible) and wreak the core kernel's
book-keeping."

The amdgpu-2018 design (``drivers/userptr_amdgpu2018.py``): the notifier
counts the invalidation, waits for the object's fences and marks its pages
dirty and accessed, but keeps its page references, GPU PTEs and IOMMU
mappings until the next submission that *names* the object. A job that
does not name it but uses its GPU VA (the VM mapping is persistent) is
never re-validated:

* ``fork-rogue``: the process forks and breaks copy-on-write; the rogue
  job writes the old page, now the child's (``dma-foreign-page``), after
  the notifier dirtied the still-mapped pages (``dirty-while-mapped``) and
  returned with the mapping alive (``stale-mapping``, C15). Kernel
  integrity violations, not userspace's own race.
* ``munmap-rogue``: the process unmaps the range; the rogue job writes
  pages the process no longer maps (``user-incoherence``, info: the kernel
  still holds the references), after the same dirtying and stale mapping.
"""

from __future__ import annotations

from .catalog import Verdict
from .userptr_lab import lab

fork_rogue = lab(
    "fork_rogue", __name__, "amdgpu-2018",
    "amdgpu-2018 userptr; fork + copy-on-write break racing a job that uses the GPU VA without naming the object.",
    race="fork", user="rogue",
)
munmap_rogue = lab(
    "munmap_rogue", __name__, "amdgpu-2018",
    "amdgpu-2018 userptr; munmap racing a job that uses the GPU VA without naming the object.",
    race="munmap", user="rogue",
)

_KERNEL = frozenset({"dma-foreign-page", "dirty-while-mapped", "stale-mapping"})

CLAIMS = [
    {"id": "C13", "design": "fork-rogue", "scenario": fork_rogue, "expected": Verdict(kinds=_KERNEL),
     "budget": 100},
    {"id": "C13", "design": "munmap-rogue", "scenario": munmap_rogue,
     "expected": Verdict(kinds=frozenset({"dirty-while-mapped", "stale-mapping", "user-incoherence"})),
     "budget": 100},
]
