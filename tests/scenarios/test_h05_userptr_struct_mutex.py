"""H5: i915's userptr notifier re-entering struct_mutex through a revoked GTT mmap (2019)."""

from __future__ import annotations

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h5_rows() -> None:
    rows = rows_of("H5")
    ex = assert_buggy(rows["H5/blocking-lock"], ["deadlock", "recursive-locking"])
    rec = next(f for f in ex.findings if f.kind == "recursive-locking")
    assert rec.details["chain"] == ["struct_mutex", "struct_mutex"]
    assert "release_mmap" in rec.report and "invalidate_range_start" in rec.report
    assert_proved(rows["H5/trylock-recursive"])
