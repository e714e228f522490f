"""Devices: IOMMU domains, GPU VM page tables, engines that run jobs and do DMA.

Models ``drivers/iommu/``, the DMA API, GPU VMs and ``drivers/gpu/drm/scheduler``.
Imports ``kernel``, ``locking``, ``mm`` and ``dma``.
"""

from .device import DEFAULT_DURATION_NS, OP_COPY, OP_READ, OP_WRITE, Device, Engine, Job
from .gpuvm import GpuPte, GpuVm
from .iommu import IOVA_BASE, DmaMapping, IommuDomain
from .ttm import GTT, BufferObject, DeviceCopyEngine, MemType, OperationCtx, TTMDevice

__all__ = [
    "DEFAULT_DURATION_NS", "IOVA_BASE", "OP_COPY", "OP_READ", "OP_WRITE", "Device", "DmaMapping", "Engine",
    "GpuPte", "GpuVm", "IommuDomain", "Job",
]
# -- the TTM-like memory manager
__all__ += ["GTT", "BufferObject", "DeviceCopyEngine", "MemType", "OperationCtx", "TTMDevice"]
