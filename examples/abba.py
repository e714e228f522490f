"""Two threads take two mutexes in opposite orders (the README's example).

A plain test runs them one after the other and passes; the explorer finds
the interleaving that deadlocks, and lockdep reports the inverted order even
in executions that do not deadlock.

    dmabufsim run examples/abba.py:scenario --seed 0
    dmabufsim explore examples/abba.py:scenario
"""

import dmabufsim as ds


def worker(a: ds.Mutex, b: ds.Mutex) -> None:
    with a:  # mutex_lock(a)
        with b:  # mutex_lock(b): the other thread takes them the other way round
            pass


def scenario(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(worker, a, b, name="t1")
    k.spawn(worker, b, a, name="t2")
