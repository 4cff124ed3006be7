"""Project-wide pytest set-up: hypothesis profiles. The vlparity plugin itself loads through its pytest11 entry point.

--hypothesis-profile=ci       deterministic and bounded (default)
--hypothesis-profile=nightly  many more examples, random seeds
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("nightly", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
