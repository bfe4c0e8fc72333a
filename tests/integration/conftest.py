import pytest

from terminalrig import Running


@pytest.fixture
def running():
    return Running
