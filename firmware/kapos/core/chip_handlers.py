"""The contact-chip handlers (a card in the slot, the kernel's answers), imported by
`table.py` on the first chip event: a terminal without a contact reader (a Pico W) never
loads them. Same contract as handlers.py: `handler(ctx, event) -> (next_state, commands)`."""

from kapos import card as cards
from kapos.core import commands as C
from kapos.core import states as S
from kapos.core.handlers import (CID_TC, REMOVE_CARD, _accept_card, _card_problem, _finish, _read_chip,
                                 _timer, cancel, go_idle, idle_card, idle_screen, refuse, result_done)
from kapos.errors import CardReadError, CardRejected


def card_inserted(ctx, event):
    """CARD: a card went into the slot; the kernel reads it (again, after a failed read)."""
    return _read_chip(ctx, [C.beep("key")])


def idle_inserted(ctx, event):
    ctx.card_inserted = True
    return idle_card(ctx, event)


def idle_removed(ctx, event):
    ctx.card_inserted = False
    if ctx.notice is REMOVE_CARD:
        ctx.notice = None
        return S.IDLE, [idle_screen(ctx)]
    return S.IDLE, []


def _ours(ctx, event):
    return ctx.txn is not None and event.get("ref") == ctx.txn.ref


def chip_choice(ctx, event):
    """The card has several applications (or asks for confirmation): the cardholder picks."""
    if not _ours(ctx, event):
        return None, []
    names = list(event.get("names") or [])[:9]  # keys 1-9
    ctx.txn.choices = names
    ctx.txn.tap_choice = bool(event.get("tap"))  # the card is in the field, not in the slot
    return S.APP_CHOICE, [C.stop_timer("card"), C.beep("key"),
                          C.show("app_choice", type=ctx.txn.type, names=names), _timer(ctx, "input")]


def app_chosen(ctx, event):
    txn = ctx.txn
    index = int(event.get("key")) - 1
    if not 0 <= index < len(getattr(txn, "choices", ())):
        return refuse(ctx, event)
    # a tap's kernel goes on with the pick and its TAP comes to the card state
    return S.CARD if txn.tap_choice else S.CHIP_READ, [C.stop_timer("input"), C.beep("key"),
                         C.Command(C.CHOOSE_APP, ref=txn.ref, index=index),
                         C.show("chip_wait", type=txn.type), _timer(ctx, "card")]


def chip_read(ctx, event):
    """The kernel's Result (or its refusal) for the inserted card."""
    if not _ours(ctx, event):
        return None, []
    txn = ctx.txn
    error = event.get("error")
    if error is None:
        result = event.get("result")
        try:
            card = cards.card_from_track2(result.track2, "tap", ctx.settings.private_bins)
        except (CardReadError, CardRejected) as exc:
            error = exc
    if error is not None:
        if isinstance(error, CardReadError):
            txn.chip_failed = True  # the stripe of this card is accepted now (fallback)
        return _card_problem(ctx, error, event)
    card.set_chip(result.icc_data, result.pan_sequence, result.entry, result.label, result.cvm)
    txn.chip = True
    txn.token_data = None
    txn.chip_complete = bool(getattr(result, "needs_completion", lambda: False)())
    return _accept_card(ctx, event, card)


def chip_timeout(ctx, event):
    if event.get("timer") != "card":
        return None, []
    return go_idle(ctx, notice=("error", "Card read timed out"), result="error")


def chip_removed(ctx, event):
    """The chip card was pulled before the transaction was done with it."""
    ctx.card_inserted = False
    txn = ctx.txn
    if txn is None or not (txn.chip or ctx.settings.has_chip_reader):
        return None, []
    cmds = []
    if txn.sent:  # the host may have approved: reverse it
        cmds.append(C.Command(C.CANCEL_AUTHORIZATION, ref=txn.ref, reason="card removed"))
    state, idle_cmds = go_idle(ctx, notice=("error", "Card removed: cancelled"), result="cancelled")
    return state, cmds + idle_cmds


def card_state_removed(ctx, event):
    """CARD: the slot emptied; a chip read in this state has not started or has failed."""
    ctx.card_inserted = False
    return None, []


def chip_removed_or_ignored(ctx, event):
    """ACCOUNT / PIN / CONFIRM / SEALING: only a card read from the chip ends the sale."""
    if ctx.txn is not None and ctx.txn.chip:
        return chip_removed(ctx, event)
    ctx.card_inserted = False
    return None, []


def chip_done(ctx, event):
    """The card's answer to the issuer's reply: TC approves, AAC declines (and reverses)."""
    if not _ours(ctx, event):
        return None, []
    return _chip_outcome(ctx, event, event.get("cid"), event.get("error"))


def _chip_outcome(ctx, event, cid, error):
    txn = ctx.txn
    reply = txn.reply or {}
    txn.reply = None
    if reply.get("offline"):  # the host was not reached: never approved offline (TC or not)
        return _finish(ctx, event, "error", {"code": None, "text": reply.get("text")})
    if not reply.get("approved"):
        return _finish(ctx, event, "declined", reply)
    if error is None and cid == CID_TC:
        return _finish(ctx, event, "approved", reply)
    # the host approved but the card did not (AAC), or could not say: the approval is reversed
    text = "Declined by the card" if error is None else "Card removed or failed: reversed"
    declined = dict(reply, approved=False, text=text, auth_code=None)
    reverse = C.Command(C.CANCEL_AUTHORIZATION, ref=txn.ref, reason="card declined")
    return _finish(ctx, event, "declined" if error is None else "error", declined, extra=[reverse])


def chip_complete_timeout(ctx, event):
    if event.get("timer") != "card":
        return None, []
    return _chip_outcome(ctx, event, None, CardReadError("the card did not answer"))


def result_removed(ctx, event):
    ctx.card_inserted = False
    if ctx.txn is not None and ctx.txn.chip:
        return result_done(ctx, event)
    return None, []


def app_choice_cancel(ctx, event):
    return cancel(ctx, event)
