"""The error tree of dmabufsim.

Models the kernel's errno returns as exceptions, plus the library's own
errors::

    DmabufsimError                      root of everything the library raises
    ├── KernelError(OSError)            an errno a modelled kernel function returns
    │   ├── EDEADLK                     ww_mutex: this context must back off
    │   ├── EALREADY                    ww_mutex: already held by this context
    │   ├── EINTR                       interrupted (mutex_lock_interruptible)
    │   ├── ERESTARTSYS                 interrupted wait (wait_event_interruptible)
    │   ├── ETIME                       timer expired
    │   ├── ENOMEM                      allocation failed
    │   ├── EFAULT                      bad user address / fault
    │   ├── EAGAIN                      try again (non-blockable notifier)
    │   ├── EBUSY                       resource busy
    │   ├── ENOENT                      no such entry (add_callback on a signalled fence)
    │   ├── EINVAL                      invalid argument
    │   └── EPERM                       not permitted (privileged-only path)
    ├── UsageError(TypeError)           scenario code misused the model's Python API
    │   └── NotRunningError             a model object created with no running Kernel
    ├── ReplayError(ValueError)         a malformed or foreign replay token
    └── SimulatorError(RuntimeError)    an internal error of the simulator itself

    ThreadKilled(BaseException)         injected into a kthread to end it; derives
                                        from BaseException so ``except Exception`` in
                                        scenario code cannot swallow it (trio's Cancelled)

A *kernel bug* modelled by a scenario (sleeping in atomic context, a DMA to a
freed page, ...) is never an exception: it is a :class:`~dmabufsim.Finding`.
"""

from __future__ import annotations

import errno as _errno


class DmabufsimError(Exception):
    """Root of every exception dmabufsim raises on purpose."""


class KernelError(DmabufsimError, OSError):
    """An errno returned by a modelled kernel function.

    Subclasses carry the errno of the same name; ``str()`` shows it the way
    the kernel would log it (``-EDEADLK``).
    """

    errno_value: int = 0

    def __init__(self, message: str = "") -> None:
        name = type(self).__name__
        super().__init__(self.errno_value, message or f"-{name}")
        self.message = message or f"-{name}"

    def __str__(self) -> str:
        return self.message

    @property
    def negative(self) -> int:
        """The value a C caller would see: ``-errno``."""
        return -self.errno_value




class EDEADLK(KernelError):
    """Resource deadlock would occur: the ww acquire context must back off."""

    errno_value = _errno.EDEADLK


class EALREADY(KernelError):
    """The ww_mutex is already held by this acquire context."""

    errno_value = _errno.EALREADY


class EINTR(KernelError):
    """Interrupted by a signal (``mutex_lock_interruptible``)."""

    errno_value = _errno.EINTR


class ERESTARTSYS(KernelError):
    """Interrupted wait; the syscall would be restarted (``wait_event_interruptible``)."""

    errno_value = 512  # kernel-internal, not in userspace errno.h


class ETIME(KernelError):
    """Timer expired."""

    errno_value = _errno.ETIME


class ENOMEM(KernelError):
    """Out of memory."""

    errno_value = _errno.ENOMEM


class EFAULT(KernelError):
    """Bad address."""

    errno_value = _errno.EFAULT


class EAGAIN(KernelError):
    """Try again (a non-blockable notifier that would have to sleep)."""

    errno_value = _errno.EAGAIN


class EBUSY(KernelError):
    """Device or resource busy."""

    errno_value = _errno.EBUSY


class ENOENT(KernelError):
    """No such entry (``dma_fence_add_callback`` on a signalled fence)."""

    errno_value = _errno.ENOENT


class EINVAL(KernelError):
    """Invalid argument."""

    errno_value = _errno.EINVAL


class EPERM(KernelError):
    """Operation not permitted (a privileged-only path without the capability)."""

    errno_value = _errno.EPERM


class UsageError(DmabufsimError, TypeError):
    """Scenario code used the model's Python API wrongly (not a modelled kernel bug)."""


class NotRunningError(UsageError):
    """A model object needs a running :class:`Kernel` and none is running."""


class ReplayError(DmabufsimError, ValueError):
    """A replay token is malformed or was made by another token version."""


class SimulatorError(DmabufsimError, RuntimeError):
    """An internal error of the simulator: a bug in dmabufsim itself."""


class ThreadKilled(BaseException):
    """Injected into a simulated thread to end it (execution teardown).

    Derives from BaseException so that ``except Exception`` in scenario code
    cannot swallow it.
    """


ERRNO_CLASSES: dict[str, type[KernelError]] = {
    cls.__name__: cls
    for cls in (EDEADLK, EALREADY, EINTR, ERESTARTSYS, ETIME, ENOMEM, EFAULT, EAGAIN, EBUSY, ENOENT, EINVAL, EPERM)
}
