"""Reference driver models written only against the public model API.

The designs of the seed thread (amdgpu-2018 and i915-2018 userptr, the
root-only unsynchronised userptr, reservation locks in notifiers and
shrinkers) and the modern ones (the shared userptr helper), each a class
whose docstring names the kernel code it follows. Imports ``kernel``,
``locking``, ``dma``, ``mm``, ``device`` and ``check`` only.
"""
