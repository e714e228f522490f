"""Pipelined vs non-pipelined eviction (claim C1): engine utilisation, CPU blocked, simulator throughput.

Workload: an amdgpu-like exporter with ``VRAM_PAGES`` pages of VRAM and
``2 * VRAM_PAGES`` pages of buffers (VRAM oversubscribed 2x), shared as
dma-bufs with a second device (a dynamic importer). Two command-submission
threads on the exporter write buffers in VRAM-only submissions (so they
evict each other's buffers), keeping up to ``DEPTH`` jobs in flight each;
one thread on the importer reads the shared buffers (each map moves the
buffer to GTT). The same workload runs with TTM's pipelined moves (ttm R4)
and with CPU-waited moves (ttm R5).

Reported per mode, over *virtual* time: each engine's utilisation (busy
time / elapsed), the time the CPU threads spent blocked in the memory
manager, and -- the only wall-clock number -- simulator throughput in jobs
per second of real time, as a ratio against the pipelined run measured in
the same process. The pipelined mode must show the higher utilisation.

Run: ``.venv/bin/python bench/run.py pipelining``.
"""

from __future__ import annotations

import time
from typing import Any

import dmabufsim as ds
import dmabufsim.check  # (the isolation checker runs, as in every scenario)
from dmabufsim.device.ttm import MemType
from dmabufsim.drivers.amdgpu_exporter import AmdgpuExporter
from dmabufsim.drivers.dma_buf_importers import DynamicImporter

VRAM_PAGES = 8
BO_PAGES = 2
CS_THREADS = 2
#: Private buffers per CS thread: together twice the VRAM (oversubscribed 2x).
PRIVATE_BOS = VRAM_PAGES // BO_PAGES
#: Shared buffers (frames the exporter writes in GTT and the importer reads).
SHARED_BOS = 2
CS_JOBS = 160  #: per CS thread
SHARE_EVERY = 4  #: a CS thread writes a shared frame every SHARE_EVERY jobs
IMPORTER_JOBS = 80
DEPTH = 3  #: jobs a submitting thread keeps in flight
JOB_NS = 50_000
#: CPU time a thread spends building each submission (command stream, relocations):
#: submission is CPU-heavy, so every CPU stall is a stall of the ring it feeds.
CPU_NS = 45_000
COPY_NS_PER_PAGE = 2_000
SEED = 1


def _throttle(inflight: list[ds.DmaFence], f: ds.DmaFence | None) -> None:
    if f is not None:
        inflight.append(f)
    if len(inflight) >= DEPTH:
        inflight.pop(0).wait()


def _cs(drv: AmdgpuExporter, private: list[Any], shared: list[Any], tid: int) -> None:
    k = ds.current_kernel()
    inflight: list[ds.DmaFence] = []
    for i in range(CS_JOBS):
        k.nsleep(CPU_NS)  # building the command stream: CPU work, in virtual time
        bo = private[i % len(private)]
        _throttle(inflight, drv.submit([(bo, True)], placement=(MemType.VRAM,), duration_ns=JOB_NS,
                                       value=f"t{tid}.{i}", engine=f"gfx{tid}"))
        if i % SHARE_EVERY == SHARE_EVERY - 1:
            frame = shared[(i // SHARE_EVERY + tid) % len(shared)]
            _throttle(inflight, drv.submit([(frame, True)], placement=(MemType.TT,), duration_ns=JOB_NS // 5,
                                           value=f"frame{tid}.{i}", engine=f"gfx{tid}"))
    for f in inflight:
        f.wait()


def _importer(imp: DynamicImporter, atts: list[Any]) -> None:
    k = ds.current_kernel()
    inflight: list[ds.DmaFence] = []
    for i in range(IMPORTER_JOBS):
        k.nsleep(CPU_NS)
        _throttle(inflight, imp.access(atts[i % len(atts)], write=False, duration_ns=JOB_NS))
    for f in inflight:
        f.wait()


def workload(k: ds.Kernel, pipelined: bool, out: dict[str, Any]) -> None:
    drv = AmdgpuExporter("amdgpu", vram_pages=VRAM_PAGES, pipelined=pipelined, copy_ns_per_page=COPY_NS_PER_PAGE)
    private = [[drv.create_bo(BO_PAGES, name=f"t{t}.bo{i}", placement=(MemType.TT,), value=0)
                for i in range(PRIVATE_BOS)] for t in range(CS_THREADS)]
    shared = [drv.create_bo(BO_PAGES, name=f"frame{i}", placement=(MemType.TT,), value=0)
              for i in range(SHARED_BOS)]
    bufs = [drv.export(bo) for bo in shared]
    imp = DynamicImporter("gpu2")
    atts = [imp.attach(b) for b in bufs]
    for t in range(CS_THREADS):
        drv.dev.engine(f"gfx{t}")  # one ring per CS thread, started before the threads race for it
    threads = [k.spawn(_cs, drv, private[t], shared, t, name=f"cs{t}") for t in range(CS_THREADS)]
    threads.append(k.spawn(_importer, imp, atts, name="importer"))
    for t in threads:
        k.join(t)
    elapsed = k.now
    for att in atts:
        imp.release(att)
    drv.wait_idle()
    for buf in bufs:
        buf.put()
    for bo in shared + [bo for p in private for bo in p]:
        drv.destroy(bo)
    drv.wait_idle()
    busy = {f"gfx{t}": 0 for t in range(CS_THREADS)}
    for t in range(CS_THREADS):
        busy[f"gfx{t}"] = drv.gfx_busy_by_engine.get(f"gfx{t}", 0)
    busy["copy"] = drv.copy.busy_ns
    busy["gpu2"] = imp.busy_ns
    out.update(
        elapsed=elapsed,
        busy=busy,
        blocked=drv.ttm.stats.cpu_blocked_ns,
        moves=drv.ttm.stats.moves,
        evictions=drv.ttm.stats.evictions,
        jobs=drv.nr_cs + imp.nr_jobs + drv.copy.nr_copies,
    )


def measure(pipelined: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        workload(k, pipelined, out)

    t0 = time.perf_counter()
    ex = ds.Kernel(seed=SEED).run(scenario)
    wall = time.perf_counter() - t0
    if ex.errors or ex.outcome != "completed":
        raise SystemExit(f"workload (pipelined={pipelined}) did not run clean: {ex.outcome} {ex.kinds}")
    t = out["elapsed"]
    out["util"] = {e: b / t for e, b in out["busy"].items()}
    out["mean_util"] = sum(out["util"].values()) / len(out["util"])
    out["wall"] = wall
    out["jobs_per_s"] = out["jobs"] / wall
    out["steps"] = ex.steps
    return out


def main() -> None:
    pipe = measure(True)
    cpu = measure(False)
    print(f"workload: {CS_THREADS} CS threads x {CS_JOBS} jobs on private VRAM-only buffers "
          f"({CS_THREADS * PRIVATE_BOS * BO_PAGES} pages over {VRAM_PAGES} VRAM pages: 2x oversubscribed), "
          f"frames shared with an importer device ({IMPORTER_JOBS} reads); {CPU_NS // 1000} us CPU per submission")
    engines = list(pipe["util"])
    head = (f"{'mode':<14}{'virt ms':>9}" + "".join(f"{e:>7}" for e in engines) + f"{'mean':>7}"
            f"{'CPU blocked ms':>16}{'moves':>7}{'evict':>7}{'jobs':>6}{'jobs/s real':>13}{'vs pipelined':>14}")
    print(head)
    print("-" * len(head))
    for name, r in (("pipelined", pipe), ("non-pipelined", cpu)):
        u = r["util"]
        print(f"{name:<14}{r['elapsed'] / 1e6:>9.2f}" + "".join(f"{u[e]:>7.0%}" for e in engines)
              + f"{r['mean_util']:>7.0%}{r['blocked'] / 1e6:>16.2f}{r['moves']:>7}{r['evictions']:>7}{r['jobs']:>6}"
              f"{r['jobs_per_s']:>13.0f}{r['jobs_per_s'] / pipe['jobs_per_s']:>13.2f}x")
    ratio = pipe["mean_util"] / cpu["mean_util"]
    print(f"mean engine utilisation, pipelined / non-pipelined: {ratio:.2f}x; "
          f"virtual time to finish, non-pipelined / pipelined: {cpu['elapsed'] / pipe['elapsed']:.2f}x")
    if pipe["mean_util"] <= cpu["mean_util"]:
        raise SystemExit("pipelined eviction did not keep the engines busier than CPU-waited eviction")


if __name__ == "__main__":
    main()
