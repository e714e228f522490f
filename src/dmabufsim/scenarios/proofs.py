"""Which clean catalog rows cannot be proved yet, and what was measured (catalog R8).

A clean row is *proved* when its exploration visits every schedule of its
configuration (explorer report R4). Eight distinct clean rows are proved by
their own exploration today: ``B1/ordered-mutexes``, ``B2/trylock-under-spinlock``,
``C5/shrinker-trylock``, ``C6/gfp-noio-unprimed``, ``C6/nowait-notifier``,
``M1/evict-waits-bookkeep``, ``M4/gfp-nowait`` and ``M4/prealloc`` (optimal
DPOR, 4 to 388 Mazurkiewicz traces, nothing dropped).
Also proved: ``C9/torn-down`` (9 traces, ~0.1 s). The others are listed
here with the reason, which ``check --strict`` accepts as the documented
exception and ``docs/catalog.md`` prints under each design.

How it was measured (one process per search, on the project's 2 shared
cores with a load average of about 8, so a quiet machine goes 3-4x
further): optimal DPOR (``--strategy odpor``) with a 45 s wall-time budget,
recording the traces reached and the wakeup sequences dropped (odpor R6: a
dropped sequence means the model reads state no scheduling point declares,
so not even an exhausted search proves anything); then DPOR deepening
(``--strategy dpor``: bounds 0, 1, 2, then unbounded) with a 40 s budget,
recording the executions of each bound -- the growth from one bound to the
next (``+``: the level the budget ended). Both reductions rest on the
declared accesses: making every access declared (and reduction of
unobservable interleavings) is what will let the larger rows be proved.
"""

from __future__ import annotations

#: ``CLAIM/design`` -> why the row is not proved (measured as above).
NOT_PROVED: dict[str, str] = {
    "C1/pipelined": (
        "optimal DPOR, nothing dropped, not exhausted: 5,950 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 448 traces in 10 s (two searches sharing the 2 cores); the smallest "
        "configuration tried (one importer, one read, one move, one page) was not exhausted either: 1,733+ "
        "traces in 10 s (2,169+ in 20 s); shrinking the configuration did not bring it within reach; a likely "
        "contributor: a blocked ww_mutex_lock attempt is still an event of its own (two threads of two "
        "ww_mutex sections each: 40 executions for 6 orders)"
    ),
    "C2/counted-completion": (
        "optimal DPOR, nothing dropped, not exhausted: 16,343 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 704 traces in 10 s (two searches sharing the 2 cores); smaller "
        "configurations were not exhausted either: 2 fast jobs and 1 slow one, 1,486+ traces in 10 s; 1 and 1 "
        "on 8 pages, 2,282+; shrinking the configuration did not bring it within reach; a likely contributor: "
        "a blocked ww_mutex_lock attempt is still an event of its own (two threads of two ww_mutex sections "
        "each: 40 executions for 6 orders)"
    ),
    "C4/lock-wait-refuse-pinned": (
        "optimal DPOR, nothing dropped, not exhausted: 8,519 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 571 traces in 10 s (two searches sharing the 2 cores); no smaller "
        "configuration measured yet; a likely contributor: a blocked ww_mutex_lock attempt is still an event "
        "of its own (two threads of two ww_mutex sections each: 40 executions for 6 orders)"
    ),
    "C7/i915-fork": (
        "optimal DPOR, nothing dropped, not exhausted: 13,039 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 931 traces in 10 s (two searches sharing the 2 cores); no smaller "
        "configuration measured yet; a likely contributor: a blocked ww_mutex_lock attempt is still an event "
        "of its own (two threads of two ww_mutex sections each: 40 executions for 6 orders)"
    ),
    "C7/i915-munmap": (
        "optimal DPOR, nothing dropped, not exhausted: 7,410 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 1,153 traces in 10 s (two searches sharing the 2 cores); no smaller "
        "configuration measured yet; a likely contributor: a blocked ww_mutex_lock attempt is still an event "
        "of its own (two threads of two ww_mutex sections each: 40 executions for 6 orders)"
    ),
    "C7/i915-shrink-exported": (
        "optimal DPOR, nothing dropped, not exhausted: 3,256 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 523 traces in 10 s (two searches sharing the 2 cores); no smaller "
        "configuration measured yet; a likely contributor: a blocked ww_mutex_lock attempt is still an event "
        "of its own (two threads of two ww_mutex sections each: 40 executions for 6 orders)"
    ),
    "C7/i915-shrink-exported-remap": (
        "optimal DPOR, nothing dropped, not exhausted: 1,973 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 706 traces in 10 s (two searches sharing the 2 cores); no smaller "
        "configuration measured yet; a likely contributor: a blocked ww_mutex_lock attempt is still an event "
        "of its own (two threads of two ww_mutex sections each: 40 executions for 6 orders)"
    ),
    "C8/drop-lru-lock": (
        "optimal DPOR, nothing dropped, not exhausted: 696 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 159 traces in 10 s (two searches sharing the 2 cores) (about 60 ms an "
        "execution); no smaller configuration measured yet; a likely contributor: a blocked ww_mutex_lock "
        "attempt is still an event of its own (two threads of two ww_mutex sections each: 40 executions for 6 "
        "orders)"
    ),
    "C10/i915-style": (
        "optimal DPOR, nothing dropped, not exhausted: 5,262 traces in 60 s; with busy spin_lock attempts no "
        "longer events of their own, 1,269 traces in 10 s (two searches sharing the 2 cores); no smaller "
        "configuration measured yet; a likely contributor: a blocked ww_mutex_lock attempt is still an event "
        "of its own (two threads of two ww_mutex sections each: 40 executions for 6 orders)"
    ),
    "C11/helper-fork": (
        "optimal DPOR reached 946 traces in 45 s without exhausting it and dropped 63 wakeup sequence(s) "
        "(odpor R6: accesses the model does not declare yet); DPOR deepening, 40 s: bound 0 5, bound 1 173, "
        "bound 2 455+ executions"
    ),
    "C11/helper-mprotect": (
        "optimal DPOR reached 845 traces in 45 s without exhausting it and dropped 94 wakeup sequence(s) "
        "(odpor R6: accesses the model does not declare yet); DPOR deepening, 40 s: bound 0 5, bound 1 134, "
        "bound 2 506+ executions"
    ),
    "C11/noretry-mprotect": (
        "optimal DPOR reached 721 traces in 45 s without exhausting it and dropped 80 wakeup sequence(s) "
        "(odpor R6: accesses the model does not declare yet); DPOR deepening, 40 s: bound 0 5, bound 1 128, "
        "bound 2 624+ executions"
    ),
    "C12/userspace-race": (
        "optimal DPOR reached 1,921 traces in 45 s without exhausting it and dropped 214 wakeup sequence(s) "
        "(odpor R6: accesses the model does not declare yet); DPOR deepening, 40 s: bound 0 5, bound 1 128, "
        "bound 2 1,663+ executions"
    ),
    "C14/helper": (
        "optimal DPOR reached 1,274 traces in 45 s without exhausting it; DPOR deepening, 40 s: bound 0 5, "
        "bound 1 232, bound 2 2,389+ executions"
    ),
    "C14/i915-2018": (
        "optimal DPOR reached 2,268 traces in 45 s without exhausting it; DPOR deepening, 40 s: bound 0 5, "
        "bound 1 232, bound 2 1,754+ executions"
    ),
    "C14/unsync": (
        "optimal DPOR exhausts it in 438 executions but drops 168 wakeup sequence(s) (odpor R6: an access the "
        "model does not declare yet); DPOR deepening, 40 s: bound 0 6, bound 1 177, bound 2 2,079+ executions"
    ),
    "C15/helper": (
        "optimal DPOR reached 1,207 traces in 45 s without exhausting it and dropped 445 wakeup sequence(s) "
        "(odpor R6: accesses the model does not declare yet); DPOR deepening, 40 s: bound 0 7, bound 1 380, "
        "bound 2 1,031+ executions"
    ),
    "C15/i915-2018": (
        "optimal DPOR reached 392 traces in 45 s without exhausting it and dropped 86 wakeup sequence(s) "
        "(odpor R6: accesses the model does not declare yet); DPOR deepening, 40 s: bound 0 7, bound 1 361, "
        "bound 2 1,119+ executions"
    ),
    "C16/modern-fork-rogue": (
        "optimal DPOR exhausts it in 232 executions but drops 81 wakeup sequence(s) (odpor R6: an access the "
        "model does not declare yet); DPOR deepening, 40 s: bound 0 3, bound 1 90, bound 2 1,311, unbounded "
        "871+ executions"
    ),
    "C16/modern-mprotect": (
        "optimal DPOR reached 1,545 traces in 45 s without exhausting it; DPOR deepening, 40 s: bound 0 5, "
        "bound 1 232, bound 2 1,958+ executions"
    ),
    "C16/modern-munmap-reuse": (
        "optimal DPOR reached 1,369 traces in 45 s without exhausting it; DPOR deepening, 40 s: bound 0 3, "
        "bound 1 108, bound 2 1,809+ executions"
    ),
    "C17/root-only-unsync-munmap": (
        "optimal DPOR exhausts it in 438 executions but drops 168 wakeup sequence(s) (odpor R6: an access the "
        "model does not declare yet); DPOR deepening, 40 s: bound 0 6, bound 1 177, bound 2 2,627, unbounded "
        "130+ executions"
    ),
    "C18/seqcount": (
        "optimal DPOR, nothing dropped, not exhausted: 7,377 traces in 60 s (3,200 in 10 s); with busy "
        "spin_lock attempts no longer events of their own, 1,652 in 10 s (two searches sharing the 2 cores); "
        "the smallest configuration tried (one writer adding one fence, one reader reading once, the waiter) "
        "was not exhausted either: 9,343+ traces in 10 s; without the reader, 30,760+ in 30 s; that fragment has "
        "no lock contention: the waiter's lockless walks (reads of the reservation object and its seqcount) "
        "race with every write of them by the writer (the ww_mutex lock and unlock are writes of the same "
        "object), so shrinking the configuration did not bring it within reach"
    ),
}
