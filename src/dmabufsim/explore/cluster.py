"""The parallel engine: an exploration's jobs as tasks on a Dask cluster.

``--jobs N`` is a Dask ``LocalCluster`` of ``N`` single-threaded worker
processes on this machine; ``--cluster tcp://HOST:8786`` (or the
``DMABUFSIM_CLUSTER`` variable) is a running Dask scheduler anywhere (SSH,
Slurm via dask-jobqueue, Kubernetes: ``docs/cluster.md``). What a job does
and how the jobs' results merge are ``parallel.py``'s rules; this module
only runs them.

Rules:

* C1 (shares, not workers): an exploration is split into ``shares`` jobs
  (parallel R1) -- ``--jobs N`` makes ``N``, a cluster as many as it has
  workers, a resumed checkpoint as many as it was made with -- and each job
  is one Dask task. The result depends on the shares only, never on the
  number of workers nor on which one was faster, so a checkpoint resumes on
  a cluster of any size.
* C2 (a task is a pure function of its inputs): a task gets its job's plan,
  the run and strategy states it continues from, and returns its run and
  its strategies' states. A worker that dies (SIGKILL, OOM) loses only its
  running task, which the scheduler reruns on another worker from the same
  inputs: the result is the undisturbed one.
* C3 (rounds): a round of parallel R6 is a new task continuing from the
  states the previous one returned, with more of the last phase's budget.
* C4 (Ctrl-C, SIGTERM): the client, interrupted, sets a Dask ``Event`` that
  every task polls (at most every :data:`POLL_EVERY` seconds) before an
  execution, then keeps collecting for :data:`INTERRUPT_GRACE` seconds and
  reports ``interrupted`` with what came back. Workers of a local cluster
  ignore SIGINT (a terminal sends it to the whole process group): the
  interruption never lands inside a kthread.
* C5 (orphans): a local cluster's workers die with the process that started
  them: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` where Linux has it, and
  everywhere a check of the parent's pid before each execution (parallel
  R7). A remote cluster's workers are not ours: their tasks end through the
  scheduler when the client goes away.
* C6 (scenarios travel): a scenario importable by name (a catalog row, a
  function of an installed module) travels as its name; one from a file
  (``FILE.py:function``) travels as the file's source, which the worker
  loads under the same module name (:class:`ShippedScenario`); anything
  else (a lambda, a closure) must pickle, or the run is refused with one
  line (``UsageError``, exit 2).
* C7 (progress): each task sends its counts every :data:`PROGRESS_EVERY`
  seconds as a Dask worker event; the client shows the sum, the tasks
  queued and running, and prints the dashboard link when it has one.
* C8 (dynamic splitting): a depth-first search (``--strategy dfs``) is not
  split into shares but into pieces that hand work back (``split.py``
  D1-D6): each slice of a piece is one task, and the pieces it returns are
  submitted at once, so every worker has work while any piece has some.
  Its checkpoint is one file, written by the client: the slices that came
  back and the open pieces (their stacks and allotments); it resumes on a
  cluster of any size.
* C9 (optimal DPOR, dynamically): ``--strategy odpor`` is not split at its
  first choice (odpor R7) but into the pieces of one search (``osplit.py``
  O1-O5): each round's slices are tasks, all submitted at once; the client
  takes a round only when every slice came back (O2: a round is taken
  whole, in the pieces' order, so the result never depends on the workers),
  delivers the wakeup sequences they returned (O3) and submits the next
  round. A worker killed mid-slice loses that task only, which reruns from
  the same piece (C2: ``run_opiece`` leaves its piece as it was). Its
  checkpoint is one file, written by the client after a round (at most
  every :data:`SPLIT_CHECKPOINT_EVERY` seconds) and at the end: the
  coordinator's state between two rounds (the slices taken, the open
  pieces, the sequences sent); a round interrupted before all its slices
  came back is not taken, and reruns whole on resume, on a cluster of any
  size. The budget is the whole run's (a resumed run adds what a larger
  ``--budget`` gives).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.machinery
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

from ..kernel.errors import SimulatorError, UsageError
from ..kernel.identity import ScenarioId, remember, scenario_id
from . import parallel
from .base import ExploreStrategy
from .job import JobOptions, _Run, _share, job_checkpoint, load_checkpoint, plan, run_job
from .options import ExploreOptions
from .osplit import OPiece, OSegment, Rounds, run_opiece
from .parallel import deal, die_with_parent, job_plan, merge, orphaned
from .split import Piece, Segment, deal_pool, merge_segments, run_piece, successors

__all__ = ["ENV_CLUSTER", "Engine", "ShippedScenario", "connect", "run_osplit", "run_parallel", "run_split", "ship"]

#: The environment variable naming a running cluster (as ``--cluster`` does).
ENV_CLUSTER = "DMABUFSIM_CLUSTER"
#: Seconds the client keeps collecting results after a Ctrl-C (C4).
INTERRUPT_GRACE = 5.0
#: Seconds between two progress events of a task (C7).
PROGRESS_EVERY = 0.25
#: Seconds between two polls of the stop event by a task (C4).
POLL_EVERY = 0.25

#: How long the client tries to reach a running scheduler (Dask's duration text).
CONNECT_TIMEOUT = "10s"
#: Seconds the client sleeps between two looks at its tasks.
WAIT_STEP = 0.05

#: The pid of the process that started this worker's local cluster (C5); 0 on a remote worker.
_PARENT = [0]


def _import_distributed() -> ModuleType:
    try:
        import distributed
    except ImportError:
        raise UsageError("--jobs and --cluster need Dask distributed: pip install 'dmabufsim[cluster]'") from None
    return distributed


def _guard_setup(parent: int, pdeathsig: int) -> None:
    """In a local cluster's worker as it joins (also one the nanny restarted): ignore SIGINT, die with
    the client (C4, C5)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _PARENT[0] = parent
    parallel.PR_SET_PDEATHSIG = pdeathsig  # the client's value (a test turns it off)
    die_with_parent(parent)


def _guard(parent: int, pdeathsig: int) -> Any:
    """The Dask worker plugin running :func:`_guard_setup` (made here: importing Dask costs as much as
    starting the CLI, so nothing imports it before a cluster is wanted)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class Guard(WorkerPlugin):
        name = "dmabufsim-guard"

        def setup(self, worker: Any) -> None:
            from dmabufsim.explore.cluster import _guard_setup  # by name: this class travels by value

            _guard_setup(parent, pdeathsig)

    return Guard()


@dataclass
class Engine:
    """A connection to a Dask cluster: the client, its size, and whether we started it."""

    client: Any
    local: bool
    address: str

    @property
    def workers(self) -> int:
        """Workers the scheduler knows now."""
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    @property
    def dashboard(self) -> str:
        """The Dask dashboard's address ("" when a local cluster has none: bokeh is not installed)."""
        import importlib.util

        if self.local and importlib.util.find_spec("bokeh") is None:  # a local dashboard needs it here
            return ""
        return str(self.client.dashboard_link or "")


#: The signals a local cluster's start defers (C4).
_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a local cluster starts (a half-started one cannot be closed).

    Python runs signal handlers in the main thread whichever thread the
    signal reached, so a mask would not do: the handlers are replaced by one
    that notes the signal, and the noted signal is handed to the handler it
    was meant for once the cluster is up (C4).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: Any) -> None:
        noted.append(signum)

    old = {s: signal.signal(s, note) for s in _DEFERRED}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if noted:
            h = old[signal.Signals(noted[0])]
            if callable(h):
                h(noted[0], None)
            elif h == signal.SIG_DFL and noted[0] == signal.SIGINT:
                raise KeyboardInterrupt


_LOCAL: dict[int, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def _close_local() -> None:
    for cluster, client in _LOCAL.values():
        with contextlib.suppress(Exception):
            client.close(timeout=2)
            cluster.close(timeout=2)
    _LOCAL.clear()


def connect(jobs: int, address: str | None = None) -> Engine:
    """A running cluster at ``address`` (or ``$DMABUFSIM_CLUSTER``), else a LocalCluster of ``jobs`` workers.

    A local cluster is started once per process and size and kept until the
    process exits (tests and the catalog reuse it).
    """
    distributed = _import_distributed()
    address = address or os.environ.get(ENV_CLUSTER) or None
    if address:
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        return Engine(client, False, address)
    with _LOCK:
        got = _LOCAL.get(jobs)
        if got is not None and got[1].status == "running":
            return Engine(got[1], True, str(got[0].scheduler_address))
        logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines are not the user's business
        with _deferred_signals():  # C4: a Ctrl-C during the start lands once the cluster can be closed
            cluster = distributed.LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster, set_as_default=False)
            client.wait_for_workers(jobs)  # C1: every worker takes a job from the start
            if not _LOCAL:
                atexit.register(_close_local)
            _LOCAL[jobs] = (cluster, client)
            client.register_plugin(_guard(os.getpid(), parallel.PR_SET_PDEATHSIG), name="dmabufsim-guard")
        return Engine(client, True, str(cluster.scheduler_address))


class ShippedScenario:
    """A scenario from a file, travelling as the file's source (C6).

    Called on a worker, it loads the source once under the module name the
    client used (so the scenario's identity and tokens are the same) and
    calls the function.
    """

    def __init__(self, fn: Callable[..., Any], module: str, path: str, source: str) -> None:
        self.module = module
        self.path = path
        self.source = source
        self.name = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = module
        self._fn: Callable[..., Any] | None = fn

    def __getstate__(self) -> dict[str, Any]:
        return {"module": self.module, "path": self.path, "source": self.source, "name": self.name,
                "__qualname__": self.__qualname__, "__module__": self.__module__}

    def __setstate__(self, st: dict[str, Any]) -> None:
        self.__dict__.update(st)
        self._fn = None

    def function(self) -> Callable[..., Any]:
        """The scenario function, loading the shipped source into its module the first time."""
        if self._fn is None:
            mod = sys.modules.get(self.module)
            if mod is None or getattr(mod, "__file__", None) != self.path:
                mod = ModuleType(self.module)
                mod.__file__ = self.path
                sys.modules[self.module] = mod
                exec(compile(self.source, self.path, "exec"), mod.__dict__)  # the user's scenario file
            self._fn = getattr(mod, self.name)
        return self._fn

    def __call__(self, k: Any) -> Any:
        return self.function()(k)


def _importable(mod: ModuleType) -> bool:
    """C6: can a worker import ``mod`` by its name from the same ``sys.path`` (not: it was loaded by path)?"""
    name = mod.__name__
    head, _, last = name.rpartition(".")
    where: Any = sys.path
    if head:
        parent = sys.modules.get(head)
        where = getattr(parent, "__path__", None)
        if where is None:
            return False
    try:
        spec = importlib.machinery.PathFinder.find_spec(last, where)
    except (ImportError, ValueError):
        return False
    return spec is not None and os.path.realpath(spec.origin or "") == os.path.realpath(getattr(mod, "__file__", ""))


def ship(scenario: Callable[..., Any]) -> Callable[..., Any]:
    """How ``scenario`` travels to the workers (C6); one UsageError line when it cannot."""
    mod = sys.modules.get(getattr(scenario, "__module__", "") or "")
    path = getattr(mod, "__file__", None) if mod is not None else None
    top_level = getattr(scenario, "__qualname__", "") == getattr(scenario, "__name__", None)
    # __main__ travels by value (cloudpickle); a module loaded from a file by path, as its source
    if mod is not None and path and top_level and mod.__name__ != "__main__" and not _importable(mod):
        try:
            with open(path, encoding="utf-8") as fh:
                source = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot ship scenario {scenario.__name__}: cannot read {path}: {exc.strerror}") from None
        return ShippedScenario(scenario, mod.__name__, path, source)
    try:
        from distributed.protocol.pickle import dumps

        dumps(scenario)  # type: ignore[no-untyped-call]
    except Exception as exc:  # noqa: BLE001 - whatever pickling raises, the scenario cannot travel
        name = getattr(scenario, "__qualname__", repr(scenario))
        raise UsageError(f"scenario {name} cannot travel to the workers ({type(exc).__name__}: {exc}); "
                         "define it at the top level of a file or an importable module") from None
    return scenario


@dataclass
class _Task:
    """What one job's task needs (C2): all of it pickles."""

    scenario: Callable[..., Any]
    strategy: str | None
    job: int
    jobs: int
    pkw: dict[str, Any]
    options: JobOptions
    extra: int = 0
    state: _Run | None = None
    strategies: list[dict[str, Any]] | None = None
    resume: bool = False
    stop: str = ""
    topic: str = ""
    deadline_in: float | None = None
    sid: ScenarioId | None = None


def stop_poller(stop_name: str) -> Callable[[], bool]:
    """``should_stop`` of a task: the orphan check (C5) each execution, the stop event every POLL_EVERY s."""
    from distributed import Event

    ev = Event(stop_name)  # type: ignore[no-untyped-call]
    last = [0.0, False]

    def should_stop() -> bool:
        parent = _PARENT[0]
        if parent and orphaned(parent):
            os._exit(1)  # parallel R7: nobody will read our result
        now = time.monotonic()
        if now - float(last[0]) >= POLL_EVERY:
            last[0] = now
            try:
                last[1] = bool(ev.is_set())  # type: ignore[no-untyped-call]
            except Exception:  # noqa: BLE001 - the scheduler is gone: so is the client
                last[1] = True
        return bool(last[1])

    return should_stop


def _run_task(t: _Task) -> tuple[_Run, list[dict[str, Any]]]:
    """One job (C2): runs on a worker; returns the run and the strategies' states."""
    from distributed import get_worker

    scenario = t.scenario.function() if isinstance(t.scenario, ShippedScenario) else t.scenario
    if t.sid is not None:  # the client's identity: the same tokens in every process (C6)
        remember(scenario, t.sid)
    phases = job_plan(t.strategy, t.job, t.jobs, **t.pkw)
    if t.extra:
        strat, share = phases[-1]
        phases[-1] = (strat, share + t.extra)
    o = t.options
    state = t.state
    if t.strategies is not None:
        for (s, _), st in zip(phases, t.strategies, strict=True):
            s.restore(st)
    elif t.resume and o.checkpoint and os.path.exists(o.checkpoint):
        state = load_checkpoint(o.checkpoint, phases, o.identity or {})
    deadline = None if t.deadline_in is None else time.monotonic() + t.deadline_in
    worker = get_worker()
    last = [0.0]

    def progress(n: int, found: int, elapsed: float, name: str) -> None:
        if elapsed - last[0] >= PROGRESS_EVERY:
            last[0] = elapsed
            worker.log_event(t.topic, (t.job, n, found, name))

    run = run_job(scenario, phases, o, state=state, deadline=deadline, progress=progress,
                  should_stop=stop_poller(t.stop))
    worker.log_event(t.topic, (t.job, run.executions, len(run.findings), "done"))
    return run, [s.state() for s, _ in phases]


@dataclass
class _Live:
    """What the client knows of the running tasks (C7), filled by the progress events."""

    counts: dict[int, tuple[int, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, ev: Any) -> None:
        msg = ev[1] if isinstance(ev, tuple) and len(ev) == 2 else ev
        job, n, found, _ = msg
        with self.lock:
            self.counts[int(job)] = (int(n), int(found))

    def running(self, jobs: Any) -> list[int]:
        """The jobs among ``jobs`` that have reported: running (the others are queued)."""
        with self.lock:
            return [j for j in jobs if j in self.counts]

    def total(self) -> tuple[int, int]:
        with self.lock:
            vals = list(self.counts.values())
        return sum(v[0] for v in vals), max((v[1] for v in vals), default=0)


class _Session(NamedTuple):
    """One run's handles on the cluster (C4, C7): its engine and client, the id naming its tasks
    and events on a shared scheduler (never the model), its stop event, its progress listener,
    and the kernel options its tasks run with (those ``explore()`` would use in this process)."""

    eng: Engine
    client: Any
    uid: str
    stop: Any
    live: _Live
    opts: dict[str, Any]

    def job_options(self, options: ExploreOptions) -> JobOptions:
        """What every piece of a split search runs with (C8, C9): the run's options, these kernel options."""
        return JobOptions(stop_on_first=options.stop_on_first, expected=tuple(options.expected),
                          kernel_options=self.opts, coverage=options.coverage, lockdep_graph=options.lockdep_graph)

    def close(self, pending: list[Any]) -> None:
        """End the run on the cluster: cancel the tasks still ``pending``, stop listening to its progress
        topic, and close the client unless it belongs to a local cluster kept for this process (C4)."""
        client = self.client
        if pending:
            with contextlib.suppress(Exception):
                client.cancel(pending)
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(_names(self.uid)[1])
        if not self.eng.local:
            with contextlib.suppress(Exception):
                client.close()


def _names(uid: str) -> tuple[str, str]:
    """The stop event's and the progress topic's names of the run ``uid``."""
    return f"dmabufsim-stop-{uid}", f"dmabufsim-progress-{uid}"


def _open_session(options: ExploreOptions, engine: Engine | None) -> _Session | None:
    """Connect (or use ``engine``), print the dashboard, make the run's stop event and progress
    listener; None when interrupted while the cluster started (C4)."""
    distributed = _import_distributed()
    try:
        eng = engine if engine is not None else connect(options.jobs, options.cluster)
    except KeyboardInterrupt:
        return None
    client = eng.client
    if eng.dashboard and options.progress is not None:
        print(f"dmabufsim: Dask dashboard {eng.dashboard}", file=sys.stderr)
    uid = uuid.uuid4().hex[:12]
    stop_name, topic = _names(uid)
    stop = distributed.Event(stop_name, client=client)
    live = _Live()
    client.subscribe_topic(topic, live.event)
    opts = dict(options.kernel_options or {})
    if not options.reduction:
        opts["reduction"] = False
    if options.max_steps is not None:
        opts["max_steps"] = options.max_steps
    return _Session(eng, client, uid, stop, live, opts)


def run_parallel(
    scenario: Callable[..., Any],
    strategy: str | None,
    options: ExploreOptions,
    *,
    shares: int,
    identity: dict[str, Any] | None = None,
    deadline: float | None = None,
    engine: Engine | None = None,
) -> tuple[_Run, list[tuple[ExploreStrategy, int]]]:
    """Run the ``shares`` jobs of an exploration on the cluster and merge them (C1-C4; parallel R1-R6)."""
    _import_distributed()  # the cluster extra, or one UsageError line, before anything is shipped
    travelling = ship(scenario)
    sid = scenario_id(scenario)
    pkw: dict[str, Any] = {"budget": options.budget, "seed": options.seed, "depth": options.depth,
           "preemption_bound": options.preemption_bound}
    base = plan(strategy, **pkw)
    last = len(base) - 1
    dealt_again = base[last][0].systematic  # parallel R6: a randomised phase's split is exact already
    given = {j: _share(base[last][1], j, shares) for j in range(shares)}
    session = _open_session(options, engine)
    if session is None:  # C4: interrupted while the cluster started: nothing ran
        return _Run(reason="interrupted"), base
    _eng, client, uid, stop, live, opts = session
    stop_name, topic = _names(uid)

    def task(j: int, extra: int = 0, prev: tuple[_Run, list[dict[str, Any]]] | None = None) -> _Task:
        ck = job_checkpoint(options.checkpoint, j, shares) if options.checkpoint else None
        jo = JobOptions(
            job=j, jobs=shares, stop_on_first=options.stop_on_first, expected=tuple(options.expected),
            kernel_options=opts, coverage=options.coverage, lockdep_graph=options.lockdep_graph, checkpoint=ck,
            identity=identity or {},
        )
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return _Task(travelling, strategy, j, shares, pkw, jo, extra=extra,
                     state=prev[0] if prev else None, strategies=prev[1] if prev else None,
                     resume=options.resume and prev is None, stop=stop_name, topic=topic, deadline_in=left,
                     sid=sid)

    rounds = dict.fromkeys(range(shares), 0)

    def submit(j: int, t: _Task) -> Any:
        rounds[j] += 1
        return client.submit(_run_task, t, key=f"dmabufsim-{uid}-job{j}-round{rounds[j]}", pure=False)

    futures: dict[int, Any] = {}
    results: dict[int, tuple[_Run, list[dict[str, Any]]]] = {}
    errors: list[tuple[int, str]] = []
    interrupted = False
    until: float | None = None
    start = time.monotonic()
    try:
        try:
            for j in range(shares):
                futures[j] = submit(j, task(j))
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            until = time.monotonic() + INTERRUPT_GRACE
        while True:  # a Ctrl-C anywhere in the collecting loop (C4) stops the tasks, then collects on
            try:
                while futures:
                    if until is not None and time.monotonic() >= until:
                        break
                    if not any(f.done() for f in futures.values()):
                        time.sleep(WAIT_STEP)
                    for j, fut in sorted(futures.items()):
                        if not fut.done():
                            continue
                        del futures[j]
                        try:
                            results[j] = fut.result()
                        except Exception as exc:  # noqa: BLE001 - a task's crash is reported, never a finding
                            errors.append((j, str(exc) if isinstance(exc, SimulatorError)
                                           else f"{type(exc).__name__}: {exc}"))
                    if options.progress is not None:
                        n, found = live.total()
                        running = len(live.running(futures))
                        what = f"{strategy or 'portfolio'} ({running} running, {len(futures) - running} queued)"
                        options.progress(n, found, time.monotonic() - start, what)
                if interrupted or errors or futures or not dealt_again or len(results) < shares:
                    break
                extra = deal({j: r[0] for j, r in results.items()}, given, base[last][1], last,
                             options.stop_on_first)
                if not extra:
                    break
                for j, n in sorted(extra.items()):  # parallel R6 (C3): another round from where the job stopped
                    given[j] += n
                    futures[j] = submit(j, task(j, given[j] - _share(base[last][1], j, shares), results.pop(j)))
            except KeyboardInterrupt:
                if interrupted:
                    break  # a second signal: no more waiting
                interrupted = True
                stop.set()
                until = time.monotonic() + INTERRUPT_GRACE
    finally:
        session.close(list(futures.values()))
    if errors:  # an internal error (kernel R6) or a crash of a task: never a finding of the scenario
        raise SimulatorError("; ".join(dict.fromkeys(m for _, m in sorted(errors))))
    merged = merge([results[j][0] for j in sorted(results)])
    if interrupted or len(results) < shares:
        merged.reason = "interrupted"
    return merged, base


def checkpoint_shares(path: str) -> int | None:
    """How many jobs the checkpoint ``path`` was made with (C1): None when there is none."""
    folder, base = os.path.split(os.path.abspath(path))
    made: set[int] = set()
    if os.path.exists(path):
        made.add(1)
    prefix = base + ".job"
    for name in os.listdir(folder or "."):
        if name.startswith(prefix) and "-of-" in name and not name.endswith(".tmp"):
            n = name.rsplit("-of-", 1)[1]
            if n.isdigit():
                made.add(int(n))
    if len(made) > 1:
        raise UsageError(f"checkpoint {path} has files of runs with {' and '.join(map(str, sorted(made)))} jobs; "
                         "remove the ones of the run you do not resume")
    return made.pop() if made else None


def new_stop(eng: Engine) -> tuple[str, Any]:
    """A fresh stop event on ``eng``'s scheduler (C4): its name (for the tasks) and the event."""
    distributed = _import_distributed()
    name = f"dmabufsim-stop-{uuid.uuid4().hex[:12]}"  # unique on a shared scheduler (never the model)
    return name, distributed.Event(name, client=eng.client)


def collect(eng: Engine, futures: dict[int, Any], stop: Any, done: Callable[[Any], None]) -> bool:
    """Hand each task's result to ``done`` as it comes (in no particular order); True when interrupted (C4).

    A Ctrl-C sets ``stop`` and collects on for :data:`INTERRUPT_GRACE`
    seconds (a second one stops waiting); the tasks left are cancelled. A
    task that raised re-raises here.
    """
    pending = dict(futures)
    interrupted = False
    until: float | None = None
    try:
        while pending:
            try:
                if until is not None and time.monotonic() >= until:
                    break
                if not any(f.done() for f in pending.values()):
                    time.sleep(WAIT_STEP)
                    continue
                for i, fut in sorted(pending.items()):
                    if fut.done():
                        del pending[i]
                        if interrupted and fut.status != "finished":
                            continue  # R4: an item that did not come back whole stays unsettled
                        done(fut.result())
            except KeyboardInterrupt:
                if interrupted:
                    break
                interrupted = True
                stop.set()
                until = time.monotonic() + INTERRUPT_GRACE
    finally:
        if pending:
            with contextlib.suppress(Exception):  # best effort: the tasks stop on the event anyway
                eng.client.cancel(list(pending.values()))
    return interrupted


#: Seconds between two checkpoints of a split search (C8).
SPLIT_CHECKPOINT_EVERY = 2.0


@dataclass
class _PieceTask:
    """What one slice of a piece needs (C2, C8): all of it pickles."""

    scenario: Callable[..., Any]
    piece: Piece
    number: int
    options: JobOptions
    stop: str
    topic: str
    deadline_in: float | None
    sid: ScenarioId | None


def _run_piece_task(t: _PieceTask) -> Segment:
    """One slice of a piece (C8), on a worker."""
    from distributed import get_worker

    scenario = t.scenario.function() if isinstance(t.scenario, ShippedScenario) else t.scenario
    if t.sid is not None:
        remember(scenario, t.sid)
    deadline = None if t.deadline_in is None else time.monotonic() + t.deadline_in
    worker = get_worker()
    last = [0.0]

    def progress(n: int, found: int, elapsed: float, name: str) -> None:
        if elapsed - last[0] >= PROGRESS_EVERY:
            last[0] = elapsed
            worker.log_event(t.topic, (t.number, n, found, name))

    seg = run_piece(scenario, t.piece, t.options, deadline=deadline, progress=progress,
                    should_stop=stop_poller(t.stop))
    worker.log_event(t.topic, (t.number, seg.run.executions, len(seg.run.findings), "done"))
    return seg


#: A split search's checkpoint format (C8).
SPLIT_CHECKPOINT = "dmabufsim-split-1"


def _save_split(path: str, identity: dict[str, Any], segments: list[Segment], pieces: list[Piece],
                pool: int) -> None:
    import pickle

    data = {"version": SPLIT_CHECKPOINT, "identity": identity, "segments": segments, "pieces": pieces,
            "pool": pool}
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(data, fh)
    os.replace(tmp, path)


def load_split(path: str, identity: dict[str, Any]) -> tuple[list[Segment], list[Piece], int]:
    import pickle

    from .job import _refusal

    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # the user's own checkpoint file
    except Exception as exc:  # noqa: BLE001 - unpickling damaged bytes can raise almost anything
        raise UsageError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}); "
                         "start a new checkpoint") from None
    why = _refusal(path, data.get("identity") or {}, identity)
    if why is not None:
        raise UsageError(why)
    return list(data["segments"]), list(data["pieces"]), int(data["pool"])


def run_split(
    scenario: Callable[..., Any],
    options: ExploreOptions,
    *,
    identity: dict[str, Any] | None = None,
    deadline: float | None = None,
    engine: Engine | None = None,
) -> tuple[_Run, list[tuple[ExploreStrategy, int]]]:
    """A depth-first search split dynamically among the cluster's workers (C8; ``split.py`` D1-D6)."""
    _import_distributed()  # the cluster extra, or one UsageError line, before anything is shipped
    travelling = ship(scenario)
    sid = scenario_id(scenario)
    base = plan("dfs", options.budget, preemption_bound=options.preemption_bound)
    name = base[0][0].describe()
    session = _open_session(options, engine)
    if session is None:  # C4: interrupted while the cluster started: nothing ran
        return _Run(reason="interrupted"), base
    _eng, client, uid, stop, live, _opts = session
    stop_name, topic = _names(uid)
    jo = session.job_options(options)
    segments: list[Segment] = []
    waiting: list[Piece] = []
    pool = 0
    todo: list[Piece]
    if options.resume and options.checkpoint:
        segments, todo, pool = load_split(options.checkpoint, identity or {})
        # the budget is the whole run's: what the checkpointed run neither spent nor handed out is added
        spent = sum(s.run.executions for s in segments) + sum(p.allot for p in todo) + pool
        pool += max(0, options.budget - spent)
        waiting = [p for p in todo if p.allot <= 0]
        todo = [p for p in todo if p.allot > 0]
        if not todo and waiting and pool > 0:
            dealt = deal_pool(pool, waiting)  # split D4
            pool = 0
            todo = [p for p in dealt if p.allot > 0]
            waiting = [p for p in dealt if p.allot <= 0]
    else:
        todo = [Piece(base[0][0], options.budget)]  # type: ignore[arg-type]  # plan("dfs") is a DFS
    numbers = iter(range(1 << 62))
    futures: dict[int, tuple[Any, Piece]] = {}
    halted = ""
    stop_at: tuple[int, ...] | None = min((s.stopped_at for s in segments if s.stopped_at is not None),
                                          default=None)
    interrupted = False
    until: float | None = None
    start = time.monotonic()
    saved = start

    def submit(p: Piece) -> None:
        n = next(numbers)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        t = _PieceTask(travelling, p, n, jo, stop_name, topic, left, sid)
        futures[n] = (client.submit(_run_piece_task, t, key=f"dmabufsim-{uid}-piece{n}", pure=False), p)

    def open_pieces() -> list[Piece]:
        return [p for _, p in sorted(futures.values(), key=lambda fp: fp[1].start)] + todo + waiting

    try:
        while True:
            try:
                for p in todo:
                    submit(p)
                todo = []
                while futures:
                    if until is not None and time.monotonic() >= until:
                        break
                    if not any(f.done() for f, _ in futures.values()):
                        time.sleep(WAIT_STEP)
                    for n in sorted(futures):
                        fut = futures[n][0]
                        if not fut.done():
                            continue
                        del futures[n]
                        try:
                            seg: Segment = fut.result()
                        except Exception as exc:  # noqa: BLE001 - a task's crash is reported, never a finding
                            raise SimulatorError(str(exc) if isinstance(exc, SimulatorError)
                                                 else f"{type(exc).__name__}: {exc}") from None
                        segments.append(seg)
                        if seg.stopped_at is not None and (stop_at is None or seg.stopped_at < stop_at):
                            stop_at = seg.stopped_at
                        r = seg.run.reason
                        if r in ("interrupted", "time budget", "nondeterministic scenario"):
                            halted = halted or r
                        if halted:
                            waiting += seg.after  # resumable from a checkpoint
                            continue
                        pool += seg.leftover
                        for p in successors(seg, stop_at):
                            submit(p)
                        waiting += [p for p in seg.after if p.allot <= 0]
                    if options.progress is not None:
                        n_ex, found = live.total()
                        running = len(live.running(futures))
                        what = f"dfs ({running} running, {len(futures) - running} queued)"
                        options.progress(n_ex, found, time.monotonic() - start, what)
                    if options.checkpoint and time.monotonic() - saved >= SPLIT_CHECKPOINT_EVERY:
                        saved = time.monotonic()
                        _save_split(options.checkpoint, identity or {}, segments, open_pieces(), pool)
                if interrupted or halted or futures or stop_at is not None or pool <= 0 or not waiting:
                    break
                dealt = deal_pool(pool, waiting)  # D4: another round for the pieces out of allotment
                pool = 0
                todo = [p for p in dealt if p.allot > 0]
                waiting = [p for p in dealt if p.allot <= 0]
            except KeyboardInterrupt:
                if interrupted:
                    break
                interrupted = True
                stop.set()
                until = time.monotonic() + INTERRUPT_GRACE
    finally:
        session.close([f for f, _ in futures.values()])
    lost = [p for _, p in futures.values()]  # interrupted before they came back: they run again on resume
    opened = lost + todo + waiting
    exhausted = not opened and not halted and not interrupted
    reason = "interrupted" if interrupted else halted or ("space exhausted" if exhausted else "execution budget")
    if options.checkpoint:
        _save_split(options.checkpoint, identity or {}, segments, opened, pool)
    merged = merge_segments(segments, name, options.preemption_bound, exhausted, reason,
                            elapsed=time.monotonic() - start)
    return merged, base


#: An optimal DPOR search's checkpoint format (C9).
OSPLIT_CHECKPOINT = "dmabufsim-osplit-1"


@dataclass
class _OPieceTask:
    """What one slice of a piece of an optimal DPOR search needs (C2, C9): all of it pickles."""

    scenario: Callable[..., Any]
    piece: OPiece
    limit: int
    options: JobOptions
    stop: str
    topic: str
    deadline_in: float | None
    sid: ScenarioId | None


def _run_opiece_task(t: _OPieceTask) -> OSegment:
    """One slice of a piece of an optimal DPOR search (C9, ``osplit`` O2), on a worker: a pure function
    of its inputs (``run_opiece`` leaves the piece as it was), so a task rerun elsewhere returns the same."""
    from distributed import get_worker

    scenario = t.scenario.function() if isinstance(t.scenario, ShippedScenario) else t.scenario
    if t.sid is not None:
        remember(scenario, t.sid)
    deadline = None if t.deadline_in is None else time.monotonic() + t.deadline_in
    worker = get_worker()
    last = [0.0]
    number = t.piece.number

    def progress(n: int, found: int, elapsed: float, name: str) -> None:
        if elapsed - last[0] >= PROGRESS_EVERY:
            last[0] = elapsed
            worker.log_event(t.topic, (number, n, found, name))

    seg = run_opiece(scenario, t.piece, t.limit, t.options, deadline=deadline, progress=progress,
                     should_stop=stop_poller(t.stop))
    worker.log_event(t.topic, (number, seg.run.executions, len(seg.run.findings), "done"))
    return seg


def checkpoint_kind(path: str) -> str | None:
    """Which split search made the checkpoint ``path``: ``dfs`` (C8), ``odpor`` (C9), or None (a checkpoint
    of one process or of fixed jobs, or none)."""
    import pickle

    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # the user's own checkpoint file
    except Exception:  # noqa: BLE001 - not readable as one: the other checkpoint paths say why
        return None
    if not isinstance(data, dict):
        return None
    return {SPLIT_CHECKPOINT: "dfs", OSPLIT_CHECKPOINT: "odpor"}.get(data.get("version", ""))


def _save_osplit(path: str, identity: dict[str, Any], rounds: Rounds) -> None:
    import pickle

    data = {"version": OSPLIT_CHECKPOINT, "identity": identity, "rounds": rounds}
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(data, fh)
    os.replace(tmp, path)


def load_osplit(path: str, identity: dict[str, Any]) -> Rounds:
    """The coordinator's state an optimal DPOR search on a cluster checkpointed (C9)."""
    import pickle

    from .job import _refusal

    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # the user's own checkpoint file
    except Exception as exc:  # noqa: BLE001 - unpickling damaged bytes can raise almost anything
        raise UsageError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}); "
                         "start a new checkpoint") from None
    why = _refusal(path, data.get("identity") or {}, identity)
    if why is not None:
        raise UsageError(why)
    rounds = data["rounds"]
    if not isinstance(rounds, Rounds):
        raise UsageError(f"checkpoint {path} is not an optimal DPOR search's; start a new checkpoint")
    return rounds


def _keeper(got: dict[int, OSegment]) -> Callable[[OSegment], None]:
    """``collect``'s callback keeping a round's segments by their pieces' numbers (C9)."""

    def keep(seg: OSegment) -> None:
        got[seg.number] = seg

    return keep


def run_osplit(
    scenario: Callable[..., Any],
    options: ExploreOptions,
    *,
    identity: dict[str, Any] | None = None,
    deadline: float | None = None,
    engine: Engine | None = None,
) -> tuple[_Run, list[tuple[ExploreStrategy, int]]]:
    """An optimal DPOR search split dynamically among the cluster's workers (C9; ``osplit.py`` O1-O5)."""
    _import_distributed()  # the cluster extra, or one UsageError line, before anything is shipped
    travelling = ship(scenario)
    sid = scenario_id(scenario)
    base = plan("odpor", options.budget)
    session = _open_session(options, engine)
    if session is None:  # C4: interrupted while the cluster started: nothing ran
        return _Run(reason="interrupted"), base
    eng, client, uid, stop, _live, _opts = session
    stop_name, topic = _names(uid)
    jo = session.job_options(options)
    if options.resume and options.checkpoint:
        rounds = load_osplit(options.checkpoint, identity or {})
        # the budget is the whole run's; a halt (Ctrl-C, time budget) ends with the run it halted
        rounds.left = options.budget - sum(s.run.executions for s in rounds.segments)
        rounds.halted = ""
    else:
        rounds = Rounds.start(options.budget)
    interrupted = False
    start = time.monotonic()
    saved = start
    try:
        while not rounds.done and not interrupted:
            batch = rounds.batch()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            futures = {}
            for i, (p, n) in enumerate(batch):
                t = _OPieceTask(travelling, p, n, jo, stop_name, topic, left, sid)
                futures[i] = client.submit(_run_opiece_task, t, pure=False,
                                           key=f"dmabufsim-{uid}-round{rounds.rounds}-piece{p.number}")
            got: dict[int, OSegment] = {}
            try:
                interrupted = collect(eng, futures, stop, _keeper(got))
            except SimulatorError:
                raise
            except Exception as exc:  # noqa: BLE001 - a task's crash is reported, never a finding
                raise SimulatorError(f"{type(exc).__name__}: {exc}") from None
            if len(got) < len(batch):
                break  # O2: a round is taken whole or not at all; the checkpoint resumes it from its start
            rounds.take(batch, [got[p.number] for p, _ in batch])
            if options.progress is not None:
                n_ex = sum(s.run.executions for s in rounds.segments)
                found = max((len(s.run.findings) for s in rounds.segments), default=0)
                options.progress(n_ex, found, time.monotonic() - start,
                                 f"odpor (round {rounds.rounds}, {len(rounds.pieces)} open pieces)")
            if options.checkpoint and time.monotonic() - saved >= SPLIT_CHECKPOINT_EVERY:
                saved = time.monotonic()
                _save_osplit(options.checkpoint, identity or {}, rounds)
    finally:
        session.close([])
    if options.checkpoint:
        _save_osplit(options.checkpoint, identity or {}, rounds)
    merged, _traces = rounds.merge(elapsed=time.monotonic() - start)
    if interrupted and merged.reason != "first finding":
        merged.reason = "interrupted"
    return merged, base
