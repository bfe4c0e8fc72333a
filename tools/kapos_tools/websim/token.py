"""The terminal's management token, wherever this version of kapos keeps its module."""

try:
    from kapos.app.mgmt_auth import load_or_create_token, terminal_token  # noqa: F401
except ImportError:  # kapos before the services/ -> app/, io/ move
    from kapos.app.mgmt_auth import load_or_create_token, terminal_token  # noqa: F401
