"""One writer and two readers of one variable: four Mazurkiewicz traces.

Each reader reads before or after the write; optimal DPOR runs one
execution per trace, and ``--race-stats`` shows which races made it run
the other three: the store racing with each load, reversed.

    dmabufsim explore examples/writer_readers.py:scenario --strategy odpor --race-stats
"""

import dmabufsim as ds

#: The shared variable's object id (any id no model object of the scenario uses).
X = 1 << 30


def scenario(k: ds.Kernel) -> None:
    def writer() -> None:
        k.point("store", X, True, "x")  # a write of x: a scheduling point that declares it

    def reader() -> None:
        k.point("load", X, False, "x")  # a read of x

    k.spawn(writer, name="writer")
    k.spawn(reader, name="reader1")
    k.spawn(reader, name="reader2")
