"""Shared test configuration: hypothesis profiles and the root/netns gate.

- Hypothesis profiles (python-zstandard's habit): `dev` (default, quick), `ci` (more examples),
  `expensive` (nightly-sized); pick with HYPOTHESIS_PROFILE.
- Tests marked `netns` or `root` need root and network namespaces; they are skipped for a normal user, and
  `.ci/run` fails CI if any of them was skipped under CI=true.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("expensive", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if "netns" in item.keywords or "root" in item.keywords:
            item.add_marker(skip)
