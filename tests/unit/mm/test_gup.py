"""get_user_pages and madvise: what the model does not implement says so."""

from __future__ import annotations

import pytest

import dmabufsim as ds
from dmabufsim.mm.gup import FOLL, get_user_pages_fast
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE


def test_what_the_model_does_not_implement_says_so() -> None:
    """FOLL_FORCE and advice other than MADV_DONTNEED are valid in the kernel: a model
    limit raises NotImplementedError, never an errno the kernel would not return."""
    seen: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE)
        with pytest.raises(NotImplementedError, match="FOLL_FORCE"):
            get_user_pages_fast(proc.mm, addr, 1, FOLL.FORCE)
        with pytest.raises(NotImplementedError, match="MADV_DONTNEED"):
            proc.madvise(addr, PAGE_SIZE, 8)  # MADV_FREE
        seen.append("ok")
        proc.exit()

    assert ds.Kernel(strategy=ds.FirstStrategy()).run(scenario).findings == []
    assert seen == ["ok"]
