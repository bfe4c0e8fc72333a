"""Transition handlers: `handler(ctx, event) -> (next_state, commands)`.

Which handler runs for which (state, event) is decided in `table.py` only. A handler
validates before it changes anything, so a refused event leaves ctx untouched.
"""

from kapos import card as cards
from kapos.compat import wipe
from kapos.core import commands as C
from kapos.core import monitor
from kapos.core import states as S
from kapos.core import txn_types as T
from kapos.core.context import Transaction
from kapos.core.money import fee_for, over_limit
from kapos.errors import CardReadError, CardRejected

ALL_TIMERS = "*"


def _timer(ctx, name):
    return C.start_timer(name, ctx.settings.timeouts[name])


def _wipe_pin(txn):
    if txn is not None and txn.pin is not None:
        wipe(txn.pin)
        txn.pin = None
        txn.pin_len = 0


def idle_screen(ctx):
    menu = [(key, T.label(t)) for key, t in T.menu()]
    return C.show("idle", menu=menu, notice=ctx.notice)


def _wipe_merchant_pin(txn):
    if txn is not None and txn.merchant_pin is not None:
        wipe(txn.merchant_pin)
        txn.merchant_pin = None
        txn.merchant_pin_len = 0


def go_idle(ctx, notice=None, result=None):
    """Back to the menu, dropping the transaction (and any PIN digits)."""
    txn = ctx.txn
    _wipe_pin(txn)
    _wipe_merchant_pin(txn)
    if txn is not None and txn.card is not None:
        txn.card.wipe()
    ctx.txn = None
    ctx.notice = notice
    if notice is None and ctx.card_inserted and txn is not None and txn.chip:
        ctx.notice = REMOVE_CARD
    if result is not None:
        ctx.last_result = result
        key = "errors" if result == "error" else result
        if key in ctx.counters:
            ctx.counters[key] += 1
    cmds = [C.stop_timer(ALL_TIMERS), idle_screen(ctx)]
    if txn is not None and ctx.settings.has_chip_reader:  # a kernel waiting for a pick gives up
        cmds.insert(0, C.Command(C.END_CHIP, ref=txn.ref))
    if ctx.notice is not None and ctx.notice is not REMOVE_CARD:
        cmds.append(_timer(ctx, "notice"))
    return S.IDLE, cmds


REMOVE_CARD = ("info", "Remove card")  # shown on the idle screen until the chip card is out


def refuse(ctx, event):
    """The event is not allowed here: beep, change nothing."""
    return None, [C.beep("error")]


# ---------------------------------------------------------------- idle

def idle_select(ctx, event):
    txn_type = T.from_menu_key(event.get("key"))
    if txn_type is None:
        return refuse(ctx, event)
    row = T.row(txn_type)
    if row["original"] == "last" and _last_original(ctx, txn_type) is None:
        if txn_type == T.VOID:
            ctx.notice = ("info", "Nothing to void")
        else:  # a completion or release: no hold of this terminal is open
            ctx.notice = ("info", "No open %s" % T.label(row["original_types"][0]).lower())
        return S.IDLE, [idle_screen(ctx), _timer(ctx, "notice")]
    if row["merchant"] and ctx.settings.merchant_pin_check is None:
        ctx.notice = ("error", "%s needs a merchant PIN: set security.merchant_pin_hash" % T.label(txn_type))
        return S.IDLE, [C.beep("error"), idle_screen(ctx), _timer(ctx, "notice")]
    ctx.txn = Transaction(txn_type, ctx.next_ref)
    ctx.next_ref += 1
    ctx.notice = None
    cmds = [C.stop_timer("notice"), C.beep("key")]
    if row["merchant"]:
        ctx.txn.merchant_pin = bytearray(MERCHANT_PIN_MAX)
        ctx.txn.merchant_pin_len = 0
        return S.MERCHANT_PIN, cmds + [_merchant_pin_screen(ctx), _timer(ctx, "input")]
    return _start_flow(ctx, cmds)


def _start_flow(ctx, cmds):
    """The first step of the chosen transaction (after the merchant PIN when it needs one)."""
    txn_type = ctx.txn.type
    row = T.row(txn_type)
    if txn_type == T.VOID:
        ctx.txn.original = ctx.last_sale
        ctx.txn.amount = ctx.last_sale["amount"]
        ctx.txn.fee = ctx.last_sale.get("fee") or 0  # shown: a void gives back the fee too
        cmds += [C.show("void_confirm", record=ctx.last_sale), _timer(ctx, "input")]
        return S.VOID_CONFIRM, cmds
    if row["original"] == "last":  # a completion or release names the last open hold
        ctx.txn.original = _last_original(ctx, txn_type)
    if row["amount"]:
        cmds += [_amount_screen(ctx), _timer(ctx, "input")]
        return S.AMOUNT, cmds
    if not row["card"]:
        return _original_confirm(ctx, cmds)
    return _enter_card(ctx, cmds)


def _last_original(ctx, txn_type):
    """The record a type that names an original acts on: the last approved sale for a
    void, the last open one of its row's `original_types` (a hold) otherwise."""
    if txn_type == T.VOID:
        return ctx.last_sale
    for kind in T.row(txn_type)["original_types"]:
        if ctx.last_open.get(kind) is not None:
            return ctx.last_open[kind]
    return None


def _original_confirm(ctx, cmds):
    """A completion or release: confirm the original it closes (no card: the host knows it)."""
    txn = ctx.txn
    return S.VOID_CONFIRM, cmds + [C.stop_timer("input"),
                                   C.show("original_confirm", type=txn.type, amount=txn.amount,
                                          record=txn.original), _timer(ctx, "input")]


def idle_dismiss(ctx, event):
    ctx.notice = None
    return S.IDLE, [C.stop_timer("notice"), idle_screen(ctx)]


def idle_notice_timeout(ctx, event):
    if event.get("timer") != "notice":
        return S.IDLE, []
    ctx.notice = None
    return S.IDLE, [idle_screen(ctx)]


def idle_card(ctx, event):
    ctx.notice = ("info", "Choose a transaction first")
    return S.IDLE, [C.beep("error"), idle_screen(ctx), _timer(ctx, "notice")]


def late_print_failure(ctx, event):
    ctx.notice = ("error", "Receipt not printed: %s" % event.get("reason", "printer error"))
    return S.IDLE, [idle_screen(ctx), _timer(ctx, "notice")]


# ---------------------------------------------------------------- merchant PIN

MERCHANT_PIN_MIN = 4
MERCHANT_PIN_MAX = 8
MERCHANT_PIN_TRIES = 3


def _merchant_pin_screen(ctx, error=None):
    txn = ctx.txn
    # Only the count of digits leaves the buffer (shown as '*').
    return C.show("merchant_pin", type=txn.type, entered=txn.merchant_pin_len, error=error,
                  tries_left=MERCHANT_PIN_TRIES - txn.merchant_pin_tries)


def merchant_pin_digit(ctx, event):
    txn = ctx.txn
    if txn.merchant_pin_len >= len(txn.merchant_pin):
        return refuse(ctx, event)
    txn.merchant_pin[txn.merchant_pin_len] = ord(event.get("key"))
    txn.merchant_pin_len += 1
    return S.MERCHANT_PIN, [C.beep("key"), _merchant_pin_screen(ctx), _timer(ctx, "input")]


def merchant_pin_clear(ctx, event):
    txn = ctx.txn
    wipe(txn.merchant_pin)
    txn.merchant_pin_len = 0
    return S.MERCHANT_PIN, [C.beep("key"), _merchant_pin_screen(ctx), _timer(ctx, "input")]


def merchant_pin_enter(ctx, event):
    txn = ctx.txn
    if txn.merchant_pin_len < MERCHANT_PIN_MIN:
        return S.MERCHANT_PIN, [C.beep("error"), _merchant_pin_screen(ctx, error="too_short")]
    try:
        ok = ctx.settings.merchant_pin_check.verify(txn.merchant_pin, txn.merchant_pin_len)
    except Exception:  # a broken verifier refuses; its message is not shown (it could hold anything)
        ok = None
    finally:
        wipe(txn.merchant_pin)
        txn.merchant_pin_len = 0
    if ok is None:
        return go_idle(ctx, notice=("error", "Merchant PIN check failed"), result="error")
    if ok:
        txn.merchant_pin = None
        txn.merchant_pin_tries = 0
        return _start_flow(ctx, [C.beep("ok"), C.stop_timer("input")])
    txn.merchant_pin_tries += 1
    ctx.counters["merchant_pin_failures"] += 1
    alarm = monitor.observe(ctx, "merchant_pin", event.time)
    if txn.merchant_pin_tries >= MERCHANT_PIN_TRIES:
        state, cmds = go_idle(ctx, notice=("error", "Wrong merchant PIN %d times: %s cancelled"
                                           % (MERCHANT_PIN_TRIES, T.label(txn.type))), result="cancelled")
        return state, _with_alarm(ctx, cmds, alarm)
    cmds = [C.beep("error"), _merchant_pin_screen(ctx, error="wrong"), _timer(ctx, "input")]
    return S.MERCHANT_PIN, cmds + alarm


# ---------------------------------------------------------------- amount

def _amount_screen(ctx, error=None):
    txn = ctx.txn
    s = ctx.settings
    return C.show("amount", type=txn.type, amount=txn.amount, limit=s.limit_for(txn.type),
                  error=error)


def amount_digit(ctx, event):
    txn = ctx.txn
    key = event.get("key")
    if len(txn.digits) >= ctx.settings.max_amount_digits:
        return refuse(ctx, event)
    if txn.digits == "" and key == "0":
        return S.AMOUNT, [_timer(ctx, "input")]  # leading zero: nothing to add
    txn.digits += key
    txn.amount = int(txn.digits)
    return S.AMOUNT, [C.beep("key"), _amount_screen(ctx), _timer(ctx, "input")]


def amount_clear(ctx, event):
    txn = ctx.txn
    if not txn.digits:
        return refuse(ctx, event)
    txn.digits = txn.digits[:-1]
    txn.amount = int(txn.digits) if txn.digits else 0
    return S.AMOUNT, [C.beep("key"), _amount_screen(ctx), _timer(ctx, "input")]


def amount_enter(ctx, event):
    txn = ctx.txn
    if txn.amount <= 0:
        return S.AMOUNT, [C.beep("error"), _amount_screen(ctx, error=("no_amount", 0))]
    row = T.row(txn.type)
    problem = over_limit(ctx.settings, txn.type, txn.amount,
                         ctx.spent_today(event.date), row["daily"])
    if problem is not None:
        return S.AMOUNT, [C.beep("error"), _amount_screen(ctx, error=problem)]
    if row["target"]:
        return S.TARGET, [C.beep("key"), _target_screen(ctx), _timer(ctx, "input")]
    if not row["card"]:
        if txn.original is not None and txn.amount > txn.original["amount"]:
            return S.AMOUNT, [C.beep("error"),
                              _amount_screen(ctx, error=("over_hold", txn.original["amount"]))]
        return _original_confirm(ctx, [C.beep("key")])
    return _enter_card(ctx, [C.beep("key")])


# ---------------------------------------------------------------- transfer target

def _target_screen(ctx, error=None):
    return C.show("target", account=ctx.txn.target, amount=ctx.txn.amount, error=error)


def target_digit(ctx, event):
    txn = ctx.txn
    if len(txn.target) >= 19:
        return refuse(ctx, event)
    txn.target += event.get("key")
    return S.TARGET, [C.beep("key"), _target_screen(ctx), _timer(ctx, "input")]


def target_clear(ctx, event):
    txn = ctx.txn
    if not txn.target:
        return refuse(ctx, event)
    txn.target = txn.target[:-1]
    return S.TARGET, [C.beep("key"), _target_screen(ctx), _timer(ctx, "input")]


def target_enter(ctx, event):
    if len(ctx.txn.target) < 4:
        return S.TARGET, [C.beep("error"), _target_screen(ctx, error="too_short")]
    return _enter_card(ctx, [C.beep("key")])


# ---------------------------------------------------------------- card

def _card_screen(ctx, error=None):
    txn = ctx.txn
    data = {"type": txn.type, "amount": txn.amount, "chip": ctx.settings.has_chip_reader,
            "ref": txn.ref}  # a tap's kernel names the sale it asks a choice for
    if error is not None:
        data["error"] = error
    if txn.chip_failed:
        data["fallback"] = True  # the chip failed: the stripe of the same card is taken
    return C.show("card", **data)


def _enter_card(ctx, cmds):
    if ctx.card_inserted and ctx.settings.has_chip_reader:  # inserted before the sale: read it now
        return _read_chip(ctx, cmds + [C.stop_timer("input")])
    cmds = cmds + [C.stop_timer("input"), _card_screen(ctx), _timer(ctx, "card")]
    return S.CARD, cmds


def card_swiped(ctx, event):
    try:
        card = card_from_swipe(ctx, event)
    except (CardReadError, CardRejected) as exc:
        return _card_problem(ctx, exc, event)
    txn = ctx.txn
    chip_card = card.service_code is not None and card.service_code.chip_present
    if chip_card and ctx.settings.has_chip_reader:
        if not txn.chip_failed:  # insert first: the stripe of a chip card is not read
            card.wipe()
            return S.CARD, [C.beep("error"), _card_screen(ctx, error="Chip card: insert card"),
                            _timer(ctx, "card")]
        card.set_chip(None, None, FALLBACK, None, None)  # field 22: 80x, fallback to the stripe
    return _accept_card(ctx, event, card)


def card_from_swipe(ctx, event):
    return cards.parse_swipe(event.get("raw", ""), ctx.settings.private_bins)


def card_from_tap(ctx, event):
    """An EMV tap carries a track 2 equivalent; a closed-loop token only its UID."""
    tap = event.get("tap")
    if tap is None:
        raise CardReadError("no card data")
    if getattr(tap, "error", None) is not None:  # the kernel's CardReadError / CardRejected
        raise tap.error
    emv = getattr(tap, "emv", None)
    if emv is not None:  # the EMV kernel ran: the card carries field 55 for the host
        card = cards.card_from_track2(emv.track2, "tap", ctx.settings.private_bins)
        card.set_chip(emv.icc_data, emv.pan_sequence, emv.entry, emv.label, emv.cvm)
        return card
    if tap.track2:
        return cards.card_from_track2(tap.track2, "tap", ctx.settings.private_bins)
    return cards.token_card(tap.uid)


def card_tapped(ctx, event):
    tap = event.get("tap")
    try:
        card = card_from_tap(ctx, event)
    except (CardReadError, CardRejected) as exc:
        return _card_problem(ctx, exc, event)
    ctx.txn.token_data = tap.token
    return _accept_card(ctx, event, card)


def _card_problem(ctx, exc, event):
    ctx.counters["read_errors"] += 1
    if isinstance(exc, CardRejected):
        return go_idle(ctx, notice=("declined", str(exc)), result="declined")
    txn = ctx.txn
    txn.read_failures += 1
    if txn.read_failures < ctx.settings.card_read_tries:  # a bad swipe: the cardholder tries again
        alarm = monitor.observe(ctx, "read_error", event.time)
        return S.CARD, alarm + [C.beep("error"), _card_screen(ctx, error="Card read error: %s" % exc),
                                _timer(ctx, "card")]
    state, cmds = go_idle(ctx, notice=("error", "Card read error: %s" % exc), result="error")
    return state, _with_alarm(ctx, cmds, monitor.observe(ctx, "read_error", event.time))


def _with_alarm(ctx, cmds, alarm):
    """An alarm replaces the notice on the idle screen that `cmds` shows."""
    if not alarm:
        return cmds
    return [c for c in cmds if c.kind != C.SHOW] + alarm + [idle_screen(ctx)]


def _accept_card(ctx, event, card):
    txn = ctx.txn
    s = ctx.settings
    if card.source != "token" and card.is_expired(event.date[2:6]):
        card.wipe()
        return go_idle(ctx, notice=("declined", "Card expired"), result="declined")
    if card.brand == cards.UNKNOWN and not s.accept_unknown_brands:
        card.wipe()
        return go_idle(ctx, notice=("declined", "Card not accepted"), result="declined")
    if not card.allows(txn.type):
        card.wipe()
        return go_idle(ctx, notice=("declined", "Card not valid for %s" % T.label(txn.type)),
                       result="declined")
    txn.card = card
    cmds = [C.stop_timer("card"), C.beep("ok")]
    if card.source == "token":
        txn.account = "prepaid"
        return _after_account(ctx, cmds)
    cmds += [C.show("account", card=card.short_masked(), brand=card.brand, label=card.app_label),
             _timer(ctx, "input")]
    return S.ACCOUNT, cmds


# ---------------------------------------------------------------- account

ACCOUNT_KEYS = {"1": "debit", "2": "credit"}


def account_digit(ctx, event):
    account = ACCOUNT_KEYS.get(event.get("key"))
    if account is None:
        return refuse(ctx, event)
    ctx.txn.account = account
    return _after_account(ctx, [C.beep("key"), C.stop_timer("input")])


def _needs_pin(ctx):
    txn = ctx.txn
    row = T.row(txn.type)
    policy = row["pin"]
    if policy == "always":  # a token's own balance is shown without one (row token_pin)
        return row["token_pin"] or txn.card.source != "token"
    if policy == "never":
        return False
    if txn.card.cvm == "online_pin":  # the EMV kernel's CVM (above the CVM limit)
        return True
    return txn.account == "debit" or txn.card.pin_required(ctx.settings.has_pin_pad)


def _after_account(ctx, cmds):
    txn = ctx.txn
    if T.row(txn.type)["fee"]:
        txn.fee = fee_for(ctx.settings, txn.account, txn.amount)
    if _needs_pin(ctx):
        txn.pin = bytearray(ctx.settings.pin_max)
        txn.pin_len = 0
        return S.PIN, cmds + [_pin_screen(ctx), _timer(ctx, "pin")]
    return S.CONFIRM, cmds + [_confirm_screen(ctx), _timer(ctx, "input")]


# ---------------------------------------------------------------- PIN

def _pin_screen(ctx, error=None):
    txn = ctx.txn
    # Only the count of digits leaves the PIN buffer.
    return C.show("pin", type=txn.type, amount=txn.amount, fee=txn.fee, total=txn.total(),
                  entered=txn.pin_len, error=error)


def pin_digit(ctx, event):
    txn = ctx.txn
    if txn.pin_len >= len(txn.pin):
        return refuse(ctx, event)
    txn.pin[txn.pin_len] = ord(event.get("key"))
    txn.pin_len += 1
    return S.PIN, [C.beep("key"), _pin_screen(ctx), _timer(ctx, "pin")]


def pin_clear(ctx, event):
    txn = ctx.txn
    wipe(txn.pin)
    txn.pin_len = 0
    return S.PIN, [C.beep("key"), _pin_screen(ctx), _timer(ctx, "pin")]


def pin_enter(ctx, event):
    txn = ctx.txn
    if txn.pin_len < ctx.settings.pin_min:
        return S.PIN, [C.beep("error"), _pin_screen(ctx, error="too_short")]
    buffer, length = txn.pin, txn.pin_len
    txn.pin = None  # the executor of SEAL_PIN wipes the buffer
    txn.pin_len = 0
    return S.SEALING, [C.stop_timer("pin"),
                       C.Command(C.SEAL_PIN, pin=buffer, length=length, card=txn.card, ref=txn.ref),
                       C.show("processing", type=txn.type)]


def pin_cancel(ctx, event):
    ctx.counters["pin_cancels"] += 1
    state, cmds = cancel(ctx, event)
    return state, _with_alarm(ctx, cmds, monitor.observe(ctx, "pin_cancel", event.time))


def pin_sealed(ctx, event):
    ctx.txn.pin_block = event.get("block")
    ctx.txn.ksn = event.get("ksn")
    return _authorize(ctx, event)


def pin_failed(ctx, event):
    return go_idle(ctx, notice=("error", "PIN error: %s" % event.get("reason", "")), result="error")


# ---------------------------------------------------------------- confirm / void

def _confirm_screen(ctx):
    txn = ctx.txn
    return C.show("confirm", type=txn.type, amount=txn.amount, fee=txn.fee, total=txn.total())


def confirm_enter(ctx, event):
    return _authorize(ctx, event, [C.stop_timer("input")])


# ---------------------------------------------------------------- authorization

def authorization_request(ctx, event):
    """What the authorizer receives. The Card object is the only holder of the clear PAN."""
    txn = ctx.txn
    s = ctx.settings
    return {
        "ref": txn.ref, "type": txn.type, "amount": txn.amount, "fee": txn.fee,
        "currency_code": s.currency_code, "account": txn.account, "card": txn.card,
        "pin_block": txn.pin_block, "ksn": txn.ksn, "target": txn.target or None,
        "original": txn.original, "token_data": txn.token_data,
        "time": event.time, "date": event.date,
        "terminal_id": s.terminal_id, "merchant_id": s.merchant_id,
    }


def _authorize(ctx, event, cmds=None):
    request = authorization_request(ctx, event)
    ctx.txn.sent = True
    return S.AUTHORIZING, (cmds or []) + [
        C.Command(C.AUTHORIZE, request=request),
        C.show("processing", type=ctx.txn.type),
        _timer(ctx, "host"),
    ]


def _record(ctx, event, outcome, reply):
    """The masked record of a finished transaction: what receipts, screens and the
    journal get. No PAN, track, PIN block or key here."""
    txn = ctx.txn
    s = ctx.settings
    card = txn.card
    original = txn.original
    record = {
        "ref": txn.ref, "type": txn.type, "outcome": outcome,
        "amount": txn.amount, "fee": txn.fee, "total": txn.total(),
        "currency": s.currency, "account": txn.account,
        "card": card.masked() if card is not None else (original or {}).get("card"),
        "brand": card.brand if card is not None else (original or {}).get("brand"),
        "entry": _entry_of(card),
        "application": card.app_label if card is not None else None,
        "target": ("*" * max(0, len(txn.target) - 4) + txn.target[-4:]) if txn.target else None,
        "code": reply.get("code"), "text": reply.get("text", ""),
        "auth_code": reply.get("auth_code"), "rrn": reply.get("rrn"), "stan": reply.get("stan"),
        "balance": reply.get("balance"),
        # only when the host says it checked the PIN: a 55 decline had a PIN block too
        "pin_verified": txn.pin_block is not None and bool(reply.get("pin_verified")),
        "signature": outcome == "approved" and txn.account == "credit" and txn.pin_block is None,
        "original_ref": original["ref"] if original else None,
        "time": event.time, "date": event.date,
        "terminal_id": s.terminal_id, "merchant_id": s.merchant_id,
        "merchant_name": s.merchant_name,
    }
    return record


def _entry_of(card):
    if card is None:
        return None
    if card.chip_entry in ("chip", FALLBACK):
        return card.chip_entry
    return card.source


def _finish(ctx, event, outcome, reply, extra=None):
    txn = ctx.txn
    record = _record(ctx, event, outcome, reply)
    if outcome == "approved":
        direction = T.row(txn.type)["daily"]
        if direction:
            amount = txn.original["amount"] if txn.type == T.VOID else txn.amount
            ctx.add_daily(event.date, direction * amount)
        if txn.type == T.SALE:
            ctx.last_sale = record
        elif txn.type == T.VOID:
            ctx.last_sale = None
        if T.row(txn.type)["posting"] == "hold":
            ctx.last_open[txn.type] = record
        elif txn.original is not None and txn.type != T.VOID:  # it closed that hold
            for kind, open_record in list(ctx.last_open.items()):
                if open_record is txn.original:
                    del ctx.last_open[kind]
    if ctx.settings.daily and T.row(txn.type)["daily"] > 0:
        record["daily_left"] = max(0, ctx.settings.daily - ctx.spent_today(event.date))
    if txn.card is not None:
        txn.card.wipe()
        txn.card = None
    txn.pin_block = None
    ctx.last_record = record
    ctx.last_result = outcome
    key = "errors" if outcome == "error" else outcome
    ctx.counters[key] += 1
    cmds = [C.stop_timer("host")] + (extra or [])
    cmds.append(C.Command(C.RECORD, record=record))
    if outcome in ("approved", "declined"):
        cmds.append(C.Command(C.PRINT, record=record))
    cmds += [C.show("result", record=record, remove=txn.chip and ctx.card_inserted),
             C.beep("ok" if outcome == "approved" else "error"),
             _timer(ctx, "notice")]
    if outcome == "approved" and T.row(txn.type)["daily"] > 0:
        alarm = monitor.observe(ctx, "rapid_txn", event.time)
        if alarm:  # the result stays on screen; the alarm shows when it returns to idle
            cmds += alarm
    return S.RESULT, cmds


def host_reply(ctx, event):
    if event.get("ref") != ctx.txn.ref:
        return S.AUTHORIZING, []  # a reply to something else: not ours
    reply = event.get("reply") or {}
    outcome = "approved" if reply.get("approved") else "declined"
    txn = ctx.txn
    if txn.chip_complete and ctx.card_inserted:  # the card checks the issuer's answer first
        txn.reply = reply
        return S.CHIP_COMPLETE, [C.stop_timer("host"),
                                 C.Command(C.COMPLETE_CHIP, ref=txn.ref, code=reply.get("code") or "",
                                           icc=reply.get("icc")),
                                 C.show("chip_wait", type=txn.type), _timer(ctx, "card")]
    return _finish(ctx, event, outcome, reply)


def host_error(ctx, event):
    if event.get("ref") != ctx.txn.ref:
        return S.AUTHORIZING, []
    reply = {"code": None, "text": event.get("reason") or "Host unavailable"}
    return _unable_to_go_online(ctx, event, reply)


def host_timeout(ctx, event):
    if event.get("timer") != "host":
        return S.AUTHORIZING, []
    reply = {"code": None, "text": "No reply from host"}
    cancel_cmd = C.Command(C.CANCEL_AUTHORIZATION, ref=ctx.txn.ref, reason="timeout")
    return _unable_to_go_online(ctx, event, reply, extra=[cancel_cmd])


def _unable_to_go_online(ctx, event, reply, extra=None):
    """No issuer answer. An inserted card waiting for one gets its second GENERATE AC with
    8A = "Z3" (unable to go online, EMV Book 4) and no 91: kapos asks for an AAC (online
    only, floor limit 0), and the sale ends in error whatever the card answers."""
    txn = ctx.txn
    if txn.chip_complete and ctx.card_inserted:
        txn.reply = dict(reply, approved=False, offline=True)
        return S.CHIP_COMPLETE, [C.stop_timer("host")] + (extra or []) + [
            C.Command(C.COMPLETE_CHIP, ref=txn.ref, code="Z3", icc=None),
            C.show("chip_wait", type=txn.type), _timer(ctx, "card")]
    return _finish(ctx, event, "error", reply, extra=extra)


# ---------------------------------------------------------------- result

def result_done(ctx, event):
    txn = ctx.txn
    ctx.txn = None
    if ctx.notice is None or ctx.notice[0] != "alarm":
        ctx.notice = None
        if txn is not None and txn.chip and ctx.card_inserted:
            ctx.notice = REMOVE_CARD
    return S.IDLE, [C.stop_timer(ALL_TIMERS), idle_screen(ctx)]


def result_timeout(ctx, event):
    if event.get("timer") != "notice":
        return S.RESULT, []
    return result_done(ctx, event)


def result_print_failed(ctx, event):
    record = ctx.last_record
    return S.RESULT, [C.show("result", record=record,
                             warning="Receipt not printed: %s" % event.get("reason", "printer error"))]


# ---------------------------------------------------------------- any state

def cancel(ctx, event):
    return go_idle(ctx, notice=("info", "Cancelled"), result="cancelled")


def timeout_of(timer):
    """Handler for a timeout in an input state: only the state's own timer counts
    (a stale timeout of another timer is ignored)."""
    label = {"card": "No card presented", "pin": "PIN entry timed out"}.get(timer, "Timed out")

    def on_timeout(ctx, event):
        if event.get("timer") != timer:
            return None, []
        return go_idle(ctx, notice=("info", label), result="cancelled")

    return on_timeout


def hardware_error(ctx, event):
    """A driver failed. Report it and go back to the menu; an authorization in flight is
    cancelled so the host side can reverse it."""
    message = "%s error: %s" % (event.get("device", "device"), event.get("reason", ""))
    return go_idle(ctx, notice=("error", message), result="error" if ctx.txn else None)


def hardware_error_authorizing(ctx, event):
    cancel_cmd = C.Command(C.CANCEL_AUTHORIZATION, ref=ctx.txn.ref, reason="hardware error")
    state, cmds = hardware_error(ctx, event)
    return state, [cancel_cmd] + cmds


# ---------------------------------------------------------------- tamper

def tamper(ctx, event):
    """Tamper: cancel what is in flight, erase the keys, alert, lock."""
    cmds = []
    if ctx.txn is not None and ctx.txn.sent:
        cmds.append(C.Command(C.CANCEL_AUTHORIZATION, ref=ctx.txn.ref, reason="tamper"))
    state, idle_cmds = go_idle(ctx)
    ctx.notice = None
    ctx.alarms += 1
    ctx.locked_reason = event.get("source", "tamper")
    # The alert comes first: its 0620 is MACed with the last key before the erase.
    return S.LOCKED, cmds + [C.stop_timer(ALL_TIMERS),
                             C.Command(C.ALERT, rule="tamper", detail=ctx.locked_reason, time=event.time),
                             C.Command(C.ZEROIZE),
                             C.beep("alarm"), C.show("locked", reason=ctx.locked_reason)]


def unlock(ctx, event):
    ctx.locked_reason = None
    ctx.notice = ("info", "Keys loaded: terminal unlocked")
    return S.IDLE, [idle_screen(ctx), _timer(ctx, "notice")]


# ---------------------------------------------------------------- contact chip

FALLBACK = "fallback"  # Card.chip_entry of a chip card swiped after its chip failed


def slot_changed(ctx, event):
    """Any state: note whether a card sits in the slot (nothing else changes)."""
    ctx.card_inserted = event.kind == "insert"
    return None, []


def _read_chip(ctx, cmds):
    txn = ctx.txn
    ctx.card_inserted = True
    return S.CHIP_READ, cmds + [C.stop_timer("card"),
                                C.Command(C.READ_CHIP, ref=txn.ref, type=txn.type, amount=txn.amount),
                                C.show("chip_wait", type=txn.type), _timer(ctx, "card")]


CID_TC = 0x40
