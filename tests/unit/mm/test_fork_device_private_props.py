"""Property: after fork() of a process whose page lives in VRAM, each process reads what it wrote
last (copy-on-write), whatever the order of CPU reads and writes, GPU reads (which migrate the page
to VRAM again) and evictions; the isolation checker stays quiet and no page is left behind."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from tests.helpers import run
from tests.unit.mm.test_fork_device_private import _gpu_written

_OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["read", "write"]), st.sampled_from(["parent", "child"]), st.integers(0, 9)),
        st.tuples(st.sampled_from(["gpu_read", "evict"]), st.just("parent"), st.just(0)),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS, seed=st.integers(0, 3))
# The child's read migrates the shared VRAM page back to RAM; the parent's GPU maps that RAM page; the
# child's write breaks copy-on-write: the page stays the parent's, so its GPU still reads its own data
# (svm R4: the copy kept the device page's owner; it was once given the faulting child).
@example(ops=[("read", "child", 0), ("gpu_read", "parent", 0), ("write", "child", 0), ("gpu_read", "parent", 0)],
         seed=0)
def test_fork_with_device_pages_is_copy_on_write(ops: list[tuple[str, str, int]], seed: int) -> None:
    got: list[object] = []
    want: list[object] = []
    end: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p, a, svm = _gpu_written()
        c = p.fork("child")
        procs = {"parent": p, "child": c}
        value = {"parent": "gpu", "child": "gpu"}
        for op, who, v in ops:
            if op == "write":
                procs[who].write(a, v)
                value[who] = v
            elif op == "read":
                got.append(procs[who].read(a))
                want.append(value[who])
            elif op == "gpu_read":
                got.append(svm.gpu_read(a))  # the parent's GPU: the parent's data
                want.append(value["parent"])
            elif svm.ranges:
                svm.evict(svm.ranges[0])
        svm.fini()
        c.exit()
        p.exit()
        end["free"] = (svm.pgmap.nr_free, p.mm.alloc.nr_free == p.mm.alloc.nr_pages)

    ex = run(scenario, seed=seed)
    assert ex.findings == []
    assert got == want
    assert end["free"] == (1, True)
