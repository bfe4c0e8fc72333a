"""step(): the only way the machine moves."""

from kapos.core import commands as C
from kapos.core import states as S
from kapos.core.context import Context
from kapos.core.handlers import idle_screen
from kapos.core.table import TABLE, cell


class IllegalTransition(Exception):
    """A handler tried to move to a state its table cell does not list (a bug)."""


def start(settings):
    """Initial state, context and commands (show the idle screen)."""
    ctx = Context(settings)
    return S.IDLE, ctx, [idle_screen(ctx)]


def step(state, ctx, event):
    """Feed one event; return (next state, context, commands).

    Events the table ignores or refuses leave the state and the context unchanged."""
    kind = event.table_kind()
    if kind is None or state not in TABLE:
        return state, ctx, []
    handler, targets = cell(state, kind)
    if handler is None:
        return state, ctx, []
    next_state, commands = handler(ctx, event)
    if next_state is None:
        next_state = state
    elif next_state != state and next_state not in targets:
        raise IllegalTransition("%s --%s--> %s not in table" % (state, kind, next_state))
    return next_state, ctx, commands


__all__ = ["start", "step", "IllegalTransition", "C"]
