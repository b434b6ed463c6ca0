"""Fixtures of the unit tests."""

from __future__ import annotations

import pulumi
import pytest

from tests.unit.mocks import RecordingMocks


@pytest.fixture
def mocks():
    """Run the test's Pulumi program under RecordingMocks and return the recorder."""
    recorder = RecordingMocks()
    pulumi.runtime.set_mocks(recorder, preview=False)
    yield recorder
    pulumi.runtime.settings.SETTINGS.monitor = None
