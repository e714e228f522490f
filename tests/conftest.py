"""pytest configuration: the helpers live in tests/helpers.py.

Property tests run under one hypothesis profile: no deadline and no
"too slow" health check, because the machines (and CI) are shared and their
speed varies; a property test must fail on a counterexample, never on load.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dmabufsim", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("dmabufsim")
