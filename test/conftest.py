"""Shared test setup: every op test runs on every device that opens on this machine."""

import pytest

from minigrad.device import Device


def available_devices() -> list[str]:
    return [name for name in Device.known if Device.unavailable_reason(name) is None]


DEVICES = available_devices()


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
