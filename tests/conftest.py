"""Root conftest: the HIL plugin adds --board / --target / --manage-token and the
`terminal_target` fixture (docs/hil.md). With no options a run is what it always was, plus
tests/hil playing every scenario in process and through the management channel."""

pytest_plugins = ["kapos_tools.hil.plugin"]
