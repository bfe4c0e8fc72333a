"""The terminal's management token: the simulator page asks for the same secret as the channel."""

from kapos.app.mgmt_auth import load_or_create_token, terminal_token  # noqa: F401
