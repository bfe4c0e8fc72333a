"""The core tests' fixture; their helpers live in coredriver.py."""

import pytest

from coredriver import Driver


@pytest.fixture
def driver():
    return Driver()
