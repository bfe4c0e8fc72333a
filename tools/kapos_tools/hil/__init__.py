"""Hardware-in-the-loop: the pytest plugin (`plugin`, registered by tests/conftest.py) and
RemoteTarget, which plays scenarios on a terminal through its management channel.
See docs/hil.md."""
