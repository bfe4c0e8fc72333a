"""The life of an original transaction at the reference host: ONE table of transitions.

Every approved 0200/0220 starts `approved`. What may happen to it afterwards - a void, a
reversal, refunds linked to it, and the undoing of those - is a cell of TRANSITIONS:

    (state, event) -> (next states allowed, posting)

The ledger looks the cell up before it moves any money; a pair that is not in the table
is refused (`12`, nothing posted). `posting` says what the ledger posts for the original:

    UNDO     the inverse of the original's own entries (a reversal of it)
    NONE     nothing for the original (the money moves in another transaction's entries,
             e.g. the void's, the linked refund's, or was already moved back)

Events:
    void           a void (02 / 22) of it is approved: the void's own entries undo it
    reverse        a 0400/0420 for it (applied once; repeats are answered from the
                   reversals table and never reach this table)
    refund         a linked refund (37 / 90) of part or all of what is left of it
    refund_undone  a linked refund of it was reversed or voided: that part is back
    void_undone    its void was reversed: it is in force again

    complete       a completion of a hold is approved: its own entries move the money
    release        a release of a hold is approved: nothing moves
    complete_undone / release_undone   that completion or release was reversed: the
                   hold is in force again

A pre-authorization starts `held` (nothing posted; its amount is held off the account's
available balance while it is `held`). A void, a linked refund, a completion or a
release is itself an original (approved ...) for its own reversal.
"""

from kapos.errors import KaposError

APPROVED = "approved"
DECLINED = "declined"
VOIDED = "voided"
REVERSED = "reversed"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
VOIDED_REVERSED = "voided_reversed"  # voided, then a reversal came: final
HELD = "held"  # a pre-authorization in force: its amount is held
COMPLETED = "completed"  # its completion took (up to) the held amount: final
RELEASED = "released"  # released without a charge
STATES = (APPROVED, DECLINED, VOIDED, REVERSED, PARTIALLY_REFUNDED, REFUNDED, VOIDED_REVERSED,
          HELD, COMPLETED, RELEASED)

VOID = "void"
REVERSE = "reverse"
REFUND = "refund"
REFUND_UNDONE = "refund_undone"
VOID_UNDONE = "void_undone"
COMPLETE = "complete"
RELEASE = "release"
COMPLETE_UNDONE = "complete_undone"
RELEASE_UNDONE = "release_undone"
EVENTS = (VOID, REVERSE, REFUND, REFUND_UNDONE, VOID_UNDONE, COMPLETE, RELEASE,
          COMPLETE_UNDONE, RELEASE_UNDONE)

UNDO = "undo"
NONE = "none"

TRANSITIONS = {
    (APPROVED, VOID): ((VOIDED,), NONE),
    (APPROVED, REVERSE): ((REVERSED,), UNDO),
    (APPROVED, REFUND): ((PARTIALLY_REFUNDED, REFUNDED), NONE),
    (PARTIALLY_REFUNDED, REFUND): ((PARTIALLY_REFUNDED, REFUNDED), NONE),
    (PARTIALLY_REFUNDED, REFUND_UNDONE): ((APPROVED, PARTIALLY_REFUNDED), NONE),
    (REFUNDED, REFUND_UNDONE): ((APPROVED, PARTIALLY_REFUNDED), NONE),
    (VOIDED, VOID_UNDONE): ((APPROVED,), NONE),
    # its void already gave the money back: the reversal is answered, nothing moves, and
    # the void can no longer be undone (that would charge a reversed transaction)
    (VOIDED, REVERSE): ((VOIDED_REVERSED,), NONE),
    # a declined original moved nothing: a reversal of it is answered, nothing moves
    (DECLINED, REVERSE): ((DECLINED,), NONE),
    # holds: the money moves only in the completion's entries
    (HELD, COMPLETE): ((COMPLETED,), NONE),
    (HELD, RELEASE): ((RELEASED,), NONE),
    (HELD, REVERSE): ((REVERSED,), UNDO),  # a hold posted nothing: undoing it frees it
    (COMPLETED, COMPLETE_UNDONE): ((HELD,), NONE),
    (RELEASED, RELEASE_UNDONE): ((HELD,), NONE),
}

# What the `status` column says (in force or not) for each lifecycle state: a voided or
# refunded original stays "approved" (counted in its batch) - its void or refund is
# counted against it - only a reversal that undid it takes it out.
STATUS = {APPROVED: "approved", VOIDED: "approved", VOIDED_REVERSED: "approved",
          PARTIALLY_REFUNDED: "approved",
          REFUNDED: "approved", REVERSED: "reversed", DECLINED: "declined",
          HELD: "approved", COMPLETED: "approved", RELEASED: "approved"}


class IllegalLifecycle(KaposError):
    """A transition the table does not allow (the ledger answers 12 before this can
    happen; raising it means a bug, and the message's SQL transaction is rolled back)."""


def cell(state, event):
    """(next states, posting) or None when the table refuses the event in this state."""
    return TRANSITIONS.get((state, event))


def allowed(state, event):
    return (state, event) in TRANSITIONS


def next_state(state, event, refunded=0, total=0):
    """The state after `event`; for refunds, `refunded` (after the event) and the
    original's refundable `total` choose between partially and fully refunded."""
    found = cell(state, event)
    if found is None:
        raise IllegalLifecycle("%s cannot happen to a %s transaction" % (event, state))
    states, _ = found
    if len(states) == 1:
        return states[0]
    if refunded <= 0:
        target = APPROVED
    elif refunded >= total:
        target = REFUNDED
    else:
        target = PARTIALLY_REFUNDED
    if target not in states:
        raise IllegalLifecycle("%s of a %s transaction cannot leave it %s" % (event, state, target))
    return target


def status_of(state):
    return STATUS[state]
