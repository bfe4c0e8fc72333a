"""The transaction state machine (L2): sans-I/O, pure, MicroPython-portable.

    state, ctx, commands = step(state, ctx, event)

Inputs are `events.Event`s, outputs are `commands.Command`s; the transition table in
`table.py` is the single place that says which event moves which state.
"""

from kapos.core.machine import step, start  # noqa: F401
