"""Which clean catalog rows cannot be proved yet, and what was measured (catalog R8).

A clean row is *proved* when its exploration visits every schedule of its
configuration (explorer report R4). Seventeen distinct clean rows are proved
by their own exploration today: ``B1/ordered-mutexes``,
``B2/trylock-under-spinlock``, ``C5/shrinker-trylock`` (696 Mazurkiewicz
traces), ``C6/gfp-noio-unprimed``, ``C6/nowait-notifier``,
``M1/evict-waits-bookkeep``, ``M4/gfp-nowait`` and ``M4/prealloc`` (optimal
DPOR, nothing dropped); ``C4/lock-wait-refuse-pinned`` (972 traces, with one
importer job: the smallest configuration that still shows both of its
siblings' bugs); ``C14/unsync`` (38 traces, now that a join of an exited
thread is a read of its exit, the submission returns once queued like the
other C14 rows) and ``C17/root-only-unsync-munmap`` (21);
``C16/modern-fork-rogue`` (9); ``C11/noretry-mprotect`` and
``C12/userspace-race`` and ``C11/helper-mprotect``, whose submission returns
once the job is queued, as does ``C14/i915-2018`` (166 traces; its
experiment is also ``C10/i915-style``'s, catalog R6); ``C9/torn-down`` (9
traces); ``H13/mmget-when-queueing`` (3,467 traces, once its configuration
was cut to what its sibling's bug needs: one page reclaimed while the
process exits). ``C2/counted-completion`` is proved too (296 traces): one
job per importer on a 6-page machine, the smallest configuration that still
shows first-completion's early return, each reader waiting for its job only
before the next one. The others are listed here with the reason, which ``check
--strict`` accepts as the documented exception and ``docs/catalog.md``
prints under each design.

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

The userptr rows of C11, C12, C14, C15 and C16 were measured again once
every access was declared (nothing is dropped on them any more): optimal
DPOR with a 60 s budget (two searches at a time on the 2 cores, load
average about 5), and, for the growth, the same scenario with one page
instead of two, 30 s. One page runs two to four times as many traces per
second and still exhausts none of them, so the page count alone is not
what keeps them unproved. What weighs more is the submitting thread
waiting for its own job: with the wait, C11/noretry-mprotect reached 31,153 traces in
150 s with one page and did not exhaust; with the submission returning once
the job is queued (the ioctl does not wait; the teardown does) it is
exhausted in 496, and so are C12/userspace-race (496) and
C11/helper-mprotect (1,276); in the userptr bench (``wait=False``)
C14/i915-2018 is exhausted in 1,770. The userptr rows still listed below
were not exhausted without the wait either (C14/helper, C15/*,
C16/modern-mprotect and C16/modern-munmap-reuse: 800 to 2,400 traces in
15 s, two searches at a time; C11/helper-fork: 3,994 in 30 s).

Two more things weighed more than the pages, and taking them away removes
no schedule in which a design breaks. A race-free first job before the race
(the bench's ``prebind``): its leftovers -- a signalled fence in the
reservation object, the engine thread going back to sleep, a bound object
for the notifier to tear down -- race with every step of the race; without
it the racing submission looks the pages up and binds them itself, and the
schedules in which it binds before the race are the ones where the notifier
meets a bound object with a job in flight. And the bench's joins: a join of
a thread that is still running is a Mazurkiewicz trace apart from a join of
one that has exited, for every schedule of the race, so running the racer
in the bench's own thread (``inline_race``) halves the traces. With both
(and ``wait=False``), C14 is proved for every design that should be clean
-- ``C14/helper`` 638 traces, ``C14/i915-2018`` 166, ``C14/unsync`` 38 --
while amdgpu-2018 and "wait, free, keep sg" still break on the same
configuration; so are ``C16/modern-mprotect`` (638) and
``C16/modern-munmap-reuse`` (2,036; ``check`` spends 4.5, 1.3, 2.9 and 11 s
on C14/helper, C14/i915-2018 and these two, one row at a time at a load
average of 6), on which "wait, free, keep sg"
still writes a frame the other process owns and the no-retry driver the page
mprotect made read-only.

*Fresh* figures (after a blocked ``ww_mutex_lock`` / ``dma_resv_lock``
attempt that can only wait stopped being an event of its own, ww_mutex R12,
and a join of an exited thread became a read of its exit): ``dmabufsim
explore ROW --strategy odpor --budget 200000 --time 30``, one search at a
time on the 2 shared cores with a load average of 10 to 17 (other
developers' runs, and this branch's test suite for part of them), so a quiet
machine goes several times further; a second run of 5 s per row dropped no
wakeup sequence and met no redundant execution. No row below was exhausted;
shrinking C2 (one fast job and one slow, 8 pages) did not reach a proof either.

*The C7 round* (C7/i915-fork, C7/i915-munmap, C7/i915-shrink-exported,
C7/i915-shrink-exported-remap, C8/drop-lru-lock): each row's smallest
configuration that still shows its buggy siblings' bugs (the C8 sibling's
``sleep-in-atomic`` and ``deadlock``; the exported rows' siblings'
``dirty-while-mapped``, ``dma-foreign-page`` and ``stale-mapping``; for the
userptr lab rows, the configuration of C14/i915-2018, proved without
kswapd) was measured with ``dmabufsim explore SCENARIO --strategy odpor
--budget 500000 --time T``, two searches at a time on the 2 shared cores
(load average 8 to 16). None was exhausted, so the rows keep their
configuration (a smaller one would check less and prove nothing more);
each entry names the smallest configuration measured, the traces reached
and why the space is large. Every access there is declared (nothing
dropped): the objects the threads share are the kernel's own.
"""

from __future__ import annotations

#: ``CLAIM/design`` -> why the row is not proved (measured as above).
#: H1's fixed designs: what both meet (measured on the row's configuration, the smallest that shows their
#: buggy siblings: job A running, one leftover L1 killed).
_H1_RACES = (
    "The scheduler's state is declared per kernel object (drm_sched S6: an entity's queue and dependency, the "
    "run queue and pending list, each fence), so the submitter's pushes and kill no longer race every step of "
    "the scheduler thread; what remains are real races: the sections of A's fence lock (one spinlock for its "
    "scheduled and finished fences: the submitter's wait for the scheduled one, the thread's signal of it, the "
    "completion interrupt's signal of the finished one, the kill's add_callback on it), the ring's fence lock "
    "(the thread's add_callback, the interrupt), entity_idle (the kill waits for the thread's pop), the "
    "driver mutex of free_job (the thread and the kworker), and L1 popped by the thread before the kill (it then "
    "runs: a second job and interrupt). Growth, work-item's driver: A alone, killed, is exhausted in 4,428 "
    "traces (10 s); A and L1 run without a kill: 7,811+ traces in 30 s; L1 held back by a dependency that "
    "signals after the kill: 5,810+ in 30 s"
)

NOT_PROVED: dict[str, str] = {
    "C1/pipelined": (
        "optimal DPOR, nothing dropped and no undeclared access, not exhausted: 6,391 traces in 120 s (one "
        "search on the 2 shared cores, load average about 14) and 24,191 in 240 s (load average 6 to 9), "
        "growing steadily at the rate the machine allows from the first seconds on; that is in the smallest "
        "configuration that still shows the three siblings' bugs "
        "(two importers reading once each, one move from GTT to VRAM, one page: the second importer's re-map "
        "moves it back, so two pipelined copies and two ghosts). Every move fence is waited for by its ghost "
        "and by the job that depends on it, the copy timeline's fences share one lock, and the teardown "
        "overlaps the copy engine's and the interrupts' last steps; the earlier configuration (three reads "
        "per importer, three moves, two pages) reached 497 traces in 30 s"
    ),
    "C7/i915-fork": (
        "optimal DPOR, nothing dropped, not exhausted: 1,767 traces in 30 s (fresh, see above); before, "
        "13,039 traces in 60 s; smaller configurations (the C7 round, see above) were not exhausted either: "
        "with the submission returning once queued, 1,186 traces in 60 s, and with one page as well, 1,179 "
        "in 60 s and 7,122 in 300 s. The fork races twice (write-protect, then the copy-on-write break) "
        "against the job and kswapd's shrinker, which writes what the notifier writes (the userptr object, "
        "its object lock, the notifier lock, the GPU VM, the IOMMU, the pages)"
    ),
    "C7/i915-munmap": (
        "optimal DPOR, nothing dropped, not exhausted: 2,337 traces in 30 s (fresh, see above); before, 7,410 "
        "traces in 60 s; smaller configurations (the C7 round, see above) were not exhausted either: with the "
        "submission returning once queued (C14/i915-2018's story, proved in 1,761 traces, plus kswapd), 8,354 "
        "traces in 240 s; with one page as well, 10,000 in 165 s and 23,111 in 540 s, growing at a steady "
        "40-60 traces/s (DPOR deepening: bound 1 exhausted, bound 2 not, in 2,040 executions, 45 s). "
        "kswapd's shrinker (trylock, fence walk, unbind, dirty and put) writes what the munmap's notifier "
        "writes -- the userptr object, its object lock, the notifier lock, the GPU VM, the IOMMU, the pages "
        "and the page allocator (free_page against reclaim's nr_free_pages) -- so it multiplies the "
        "schedules of the two-thread race by its own"
    ),
    "C7/i915-shrink-exported": (
        "optimal DPOR, nothing dropped, not exhausted: 837 traces in 30 s (fresh, see above); before, 3,256 "
        "traces in 60 s; the smallest configuration that still shows both buggy siblings' three kinds (one "
        "importer read, one kswapd pass: run_exported(k, reads=1, passes=1); the C7 round, see above) was "
        "not exhausted either: 655 traces in 30 s and 6,874 in 300 s, and without the fence waits in the "
        "importer's and the job's threads 634 in 40 s. Four threads (munmap and reuse, importer, job, kswapd) and the "
        "get-pages worker share one reservation object, one object lock and two IOMMUs"
    ),
    "C7/i915-shrink-exported-remap": (
        "optimal DPOR, nothing dropped, not exhausted: 1,031 traces in 30 s (fresh, see above); before, 1,973 "
        "traces in 60 s; with one importer read and one kswapd pass (the C7 round, see above) it was not "
        "exhausted either: 827 traces in 30 s, and without the fence waits in the importer's and the job's "
        "threads 674 in 40 s: the importer's re-map, the job's lookup, kswapd's shrinker and the get-pages "
        "worker race on one reservation object, one object lock and the pages"
    ),
    "C8/drop-lru-lock": (
        "optimal DPOR, nothing dropped, not exhausted: 390 traces in 30 s (fresh, see above); before, 696 "
        "traces in 60 s; the smallest configuration that still shows lock-under-lru's sleep-in-atomic and "
        "deadlock (one submission per thread, one 1-page buffer each, one page of VRAM: run_c8(k, "
        "lock_under_lru=False, submits=1, bos=1, bo_pages=1); the C7 round, see above) was not exhausted "
        "either: 10,000 traces in 252 s, 11,590 in 540 s (DPOR did not finish even bound 0: 690 executions "
        "in 45 s); the race alone, without the final wait and teardown, 6,934 in 150 s. Besides the "
        "victim's reservation object and the LRU lock, the two submissions share the ww class's stamp, the "
        "CS counter, the GPU VM, the IOMMU and the rings, and each eviction is a pipelined move (ghost "
        "object, copy job, release worker) whose fences interrupt threads signal"
    ),
    "C11/helper-fork": (
        "optimal DPOR reached 2,007 traces in 30 s (fresh, load average 3) without exhausting it; before, "
        "3,994 traces in 30 s. The smallest configuration tried -- one page, the fork and the parent's write "
        "in the main thread (no join of a racer thread), the engine started and asleep before the race, the "
        "submission returning once queued -- is not exhausted either: 43,853 traces in 900 s (load average "
        "about 12), and DPOR deepening finishes bound 2 (4,105 executions) but not bound 3 in 100 s; the "
        "row's own search exhausts every schedule within two preemptions. The fork races twice (write-protect "
        "at fork, then the copy-on-write break), so the notifier runs two invalidations against a submission "
        "that may look the pages up three times; the races that keep adding wakeup sequences are mmap_lock "
        "acquisitions (each lookup's down_read against fork's down_write and the copy-on-write fault's "
        "down_read) and page reference counts (get_page of a lookup against the fork's and the fault's page "
        "steps), each declared as a write of one object although readers of an rwsem, and reference count "
        "changes, commute in the kernel"
    ),
    "C15/helper": (
        "optimal DPOR reached 739 traces in 30 s (fresh, see above) without exhausting it; before, 2,348 "
        "traces in 60 s. The configuration that proves C14 and C16 (no race-free first job, the submission "
        "returning once queued, the fork in the main thread, on which amdgpu-2018 still leaves its mapping) "
        "is not exhausted either: 2,940 traces in 120 s (load average about 15), DPOR deepening finishing "
        "bound 2 (3,772 executions) but not bound 3 in 100 s; with one page instead of two, 5,781 traces in "
        "60 s, not exhausted. The fork races twice (write-protect at fork, then the copy-on-write break), so "
        "the notifier runs two invalidations against a submission that may look the pages up three times; the "
        "races that keep adding wakeup sequences are mmap_lock acquisitions (each lookup's down_read against "
        "fork's down_write and the copy-on-write fault's down_read) and page reference counts (get_page of a "
        "lookup against the fork's and the fault's page steps), each declared as a write of one object "
        "although readers of an rwsem, and reference count changes, commute in the kernel (see "
        "C11/helper-fork, the same race: 43,853 traces in 900 s)"
    ),
    "C15/i915-2018": (
        "optimal DPOR reached 623 traces in 30 s (fresh, see above) without exhausting it; before, 3,236 "
        "traces in 60 s. The configuration that proves C14 and C16 (no race-free first job, the submission "
        "returning once queued, the fork in the main thread) is not exhausted either: 2,689 traces in 120 s "
        "(load average about 15); with one page instead of two (and the first job) 8,186 traces in 30 s. "
        "i915-2018's notifier and the helper's see the same fork race: the fork races twice (write-protect at "
        "fork, then the copy-on-write break), so the notifier runs two invalidations against a submission "
        "that may look the pages up three times; the races that keep adding wakeup sequences are mmap_lock "
        "acquisitions (each lookup's down_read against fork's down_write and the copy-on-write fault's "
        "down_read) and page reference counts (get_page of a lookup against the fork's and the fault's page "
        "steps), each declared as a write of one object although readers of an rwsem, and reference count "
        "changes, commute in the kernel"
    ),
    "C18/seqcount": (
        "optimal DPOR, nothing dropped, not exhausted: 6,063 traces in 60 s (one search on the 2 shared cores, "
        "load average about 10); before, 3,751 in 30 s. The no-retry design's torn list needs far less than the "
        "row has (one writer whose third write section replaces both entries the first two added, one reader "
        "reading once): there the seqcount design is exhausted in 26 traces and no-retry is found at execution "
        "20. What cannot be shrunk away is the waiter (reservation_object_wait_timeout_rcu, the claim's own "
        "function, whose termination the clean row checks): the same small configuration with the waiter "
        "reaches 6,265 traces in 30 s without exhausting them, and the waiter alone against one writer adding "
        "one fence 12,665 in 60 s. Every step of its lockless walk (read_seqcount_begin, the restart, each "
        "entry, read_seqcount_retry) reads the object or its seqcount, which every writer step writes (the "
        "ww_mutex lock and unlock are declared on the object, and so is a reserve that does not reallocate), so "
        "each placement of the writer's eight writes among the waiter's reads is a trace of its own, times the "
        "orders of the waiter's fence wait and the final signal; declaring the ww_mutex as an object of its own "
        "was tried and did not exhaust it either. The row keeps its configuration"
    ),
    "S3/locked-copy": (
        "two concurrent paths of some forty steps each (the GPU fault with its migration, the CPU store waiting "
        "on the migration and faulting the page back): optimal DPOR, nothing dropped, meets more than 3,000 "
        "Mazurkiewicz traces (about 30 s) without exhausting them; the copy-unlocked row finds the bug this one "
        "excludes within 300 executions. A smaller configuration (one page: the GPU's read migrates it while the "
        "CPU writes it) meets more than 14,000 traces in 120 s without exhausting them either. Fresh (fences' "
        "wait sections one step each): 2,842 traces in 60 s (load average about 17), not exhausted. Most races "
        "reversed are the two threads' mmap_lock read acquisitions: down_read and up_read declare writes of "
        "the semaphore (its reader list), so the GPU's hmm_range_fault / migrate_vma section and the CPU's "
        "fault are ordered against each other at every acquisition although readers share it; then the "
        "scenario's join of the CPU thread and the page the migration unmaps"
    ),
    "S5/evict-lru": (
        "the eviction (a migration back to system memory) and the CPU's fault on the same device page are two "
        "concurrent paths of some thirty steps each: optimal DPOR, nothing dropped, meets more than 30,000 "
        "Mazurkiewicz traces (325 s) without exhausting them; eviction alone racing the CPU read: more than "
        "10,000 (66 s). Fresh: 1,452 traces in 60 s (load average about 17), not exhausted; the row has no "
        "buggy sibling and already runs its smallest configuration (one VRAM page, two one-page ranges). As "
        "in S3, most races reversed are the mmap_lock read acquisitions of the GPU's job and the CPU's fault "
        "(declared writes of the semaphore), then the address space's page-table state both walk"
    ),
    "H1/work-item": (
        "optimal DPOR, nothing dropped and no undeclared access, not exhausted: 4,810 traces in 60 s (one search "
        "on the 2 shared cores, load average about 10); before the declarations were split, more than 3,000 "
        "traces in 11 s and still going after 200 s. " + _H1_RACES
    ),
    "H1/work-walk": (
        "optimal DPOR, nothing dropped and no undeclared access, not exhausted: 11,722 traces in 60 s (one "
        "search on the 2 shared cores, load average about 10), with one leftover that depends on the other "
        "driver's fence (before: a second leftover). Besides H1/work-item's races, the dependency's: the "
        "thread's pop may hang its callback on it before the kill removes it, and the kill work's walk re-arms "
        "on it until the other driver signals. " + _H1_RACES
    ),
}
