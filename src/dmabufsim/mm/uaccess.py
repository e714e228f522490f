"""Kernel accesses to user memory: ``copy_from_user`` and friends, which may fault.

Models ``include/linux/uaccess.h`` (``copy_from_user``, ``copy_to_user``,
``get_user``, ``put_user``, ``__copy_from_user_inatomic``,
``pagefault_disable``), ``__might_fault`` of ``mm/memory.c`` and
``fault_in_readable`` / ``fault_in_writeable`` of ``mm/gup.c``. The kernel
touches a user address on behalf of a system call (a pushbuf, a pwrite
source, an ioctl argument); the page may not be there, and then the access
faults like a user access: ``mmap_lock`` for read, ``handle_mm_fault``, and
for a buffer object's mmap the driver's fault handler (``mm/memory.py``, ``vm_ops->fault``).

The model's user memory holds one value per address (``Page.read`` /
``Page.write``); a copy of ``length`` bytes reads or writes the value at
``addr`` and at each following page boundary it spans (one value a page).

Rules:

* R1 (might_fault): every copy that may fault calls ``might_fault``: it may
  sleep (``might_sleep``) and lockdep learns that ``mmap_lock`` may be taken
  for read here (``might_lock_read``), whether or not this access faults --
  so ``copy_from_user`` under a lock that the fault path takes after
  ``mmap_lock`` (a reservation, a driver lock) is reported at once, as the
  kernel's ``might_fault`` does. The inatomic copy (R4) does none of this.
* R2 (faulting): an address with no usable PTE (not present, or a write to a
  read-only PTE) faults through ``MmStruct.do_user_addr_fault`` (``memory``
  R8). With the kernel option ``uaccess_faults`` a present page may also have
  gone since (reclaimed, migrated): each page's access is then a
  schedule-controlled choice "present" / "faulted" (``Kernel.random``), so
  the explorer tries both.
* R3 (errors): an address outside every VMA, or without the permission,
  raises ``EFAULT`` (the copy returns non-zero; the ioctl returns -EFAULT).
* R4 (inatomic): ``copy_from_user_inatomic`` (``__copy_from_user_inatomic``
  inside ``pagefault_disable``) never faults and never sleeps: it returns
  None when a page would need a fault (the caller falls back to a slow path
  without its locks).
* R5 (declared accesses): each page's lookup reads the mm's page tables (a
  scheduling point on the mm), the copy reads or writes the frame.
"""

from __future__ import annotations

from ..kernel.errors import EFAULT
from ..kernel.runtime import current_kernel
from ..locking.annotations import might_lock_read
from .memory import PROT_READ, PROT_WRITE, MmStruct, Pte
from .page import PAGE_SHIFT, PAGE_SIZE

#: The offset bits of an address within its page.
PAGE_MASK_OFF = PAGE_SIZE - 1

#: The kernel option (``Kernel(options={...})``) that lets the explorer fault present pages (R2).
UACCESS_FAULTS = "uaccess_faults"


def might_fault(mm: MmStruct) -> None:
    """``might_fault``: this copy may fault and take ``mm``'s ``mmap_lock`` for read (R1)."""
    k = current_kernel()
    k.might_sleep("might_fault")
    might_lock_read(mm.mmap_lock)


def _pages(addr: int, length: int) -> list[int]:
    if length <= 0:
        return []
    first = addr >> PAGE_SHIFT
    last = (addr + length - 1) >> PAGE_SHIFT
    return [addr if n == first else n << PAGE_SHIFT for n in range(first, last + 1)]


def _user_pte(mm: MmStruct, va: int, write: bool, atomic: bool) -> Pte | None:
    """The PTE to access ``va`` through, faulting it in unless ``atomic`` (R2-R4)."""
    k = mm.k
    k.point("uaccess", mm.oid, False, "write" if write else "read")
    pte = mm.ptes.get(va >> PAGE_SHIFT)
    vma = mm.find_vma(va)
    usable = (pte is not None and vma is not None and bool(vma.prot & (PROT_WRITE if write else PROT_READ))
              and (pte.writable or not write))
    if usable and k.config.options.get(UACCESS_FAULTS) and k.random(2):
        usable = False  # R2: the explorer chose "faulted" (the page went since the PTE was made)
    if usable:
        return pte
    if atomic:
        return None
    return mm.do_user_addr_fault(va, write)


def copy_from_user(mm: MmStruct, addr: int, length: int) -> list[object]:
    """``copy_from_user``: read the user values of ``[addr, addr+length)``, faulting (R1-R3)."""
    might_fault(mm)
    out: list[object] = []
    for va in _pages(addr, length):
        pte = _user_pte(mm, va, False, False)
        assert pte is not None
        out.append(pte.page.read(va & PAGE_MASK_OFF))
    return out


def copy_to_user(mm: MmStruct, addr: int, values: list[object]) -> None:
    """``copy_to_user``: write one value at ``addr`` and at each following page (R1-R3)."""
    might_fault(mm)
    for va, value in zip(_pages(addr, len(values) * PAGE_SIZE - (addr & PAGE_MASK_OFF)), values, strict=False):
        pte = _user_pte(mm, va, True, False)
        assert pte is not None
        pte.page.write(va & PAGE_MASK_OFF, value)


def get_user(mm: MmStruct, addr: int) -> object:
    """``get_user``: one value from user memory (R1-R3)."""
    return copy_from_user(mm, addr, 1)[0]


def put_user(mm: MmStruct, addr: int, value: object) -> None:
    """``put_user``: one value to user memory (R1-R3)."""
    copy_to_user(mm, addr, [value])


def copy_from_user_inatomic(mm: MmStruct, addr: int, length: int) -> list[object] | None:
    """``__copy_from_user_inatomic`` under ``pagefault_disable``: None if a page would fault (R4)."""
    out: list[object] = []
    for va in _pages(addr, length):
        pte = _user_pte(mm, va, False, True)
        if pte is None:
            return None
        out.append(pte.page.read(va & PAGE_MASK_OFF))
    return out


def fault_in_readable(mm: MmStruct, addr: int, length: int) -> int:
    """``fault_in_readable`` (``fault_in_pages_readable``): fault the range in; returns bytes not faulted in."""
    might_fault(mm)
    done = 0
    for va in _pages(addr, length):
        try:
            _user_pte(mm, va, False, False)
        except EFAULT:
            return length - done
        done = min(length, ((va >> PAGE_SHIFT) + 1 << PAGE_SHIFT) - addr)
    return 0
