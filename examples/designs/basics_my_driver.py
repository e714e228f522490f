"""The tutorial's two designs as catalog rows: `dmabufsim check --scenarios examples/designs B90`."""

import importlib.util
import os
import sys

from dmabufsim.scenarios.catalog import Verdict

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "..", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


broken, fixed = _load("my_driver"), _load("my_driver_fixed")

CLAIMS = [
    {"id": "B90", "title": "my driver's shrinker", "who": "me", "design": "blocking-lock",
     "scenario": broken.scenario,
     "expected": Verdict(kinds=frozenset({"circular-locking", "recursive-locking", "deadlock"}),
                         chain=("my_driver.bo_lock", "fs_reclaim")),
     "budget": 300},
    {"id": "B90", "title": "my driver's shrinker", "who": "me", "design": "trylock",
     "scenario": fixed.scenario, "expected": "clean", "budget": 300},
]
