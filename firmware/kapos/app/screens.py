"""Screens: the core says which screen and with what data; this module says what it
reads. A Screen is plain text (title, body lines, footer) so that it can be drawn on any
display, compared in scenario tests and read out by the management channel."""

from kapos.app.money import format_amount
from kapos.core import txn_types as T
from kapos.hal.output import Screen  # the Display interface's value type (L1)

WIDTH_CHARS = 21  # 128 px with a 6 px font


SHORTENED = ".."  # marks where a word too long for a line lost its middle (latin-1 font: no ellipsis)


def shorten(word, width=WIDTH_CHARS):
    """A word longer than a line keeps its head and its tail (a KSN's counter, a file name)."""
    if len(word) <= width:
        return word
    keep = width - len(SHORTENED)
    return word[:keep - keep // 2] + SHORTENED + word[len(word) - keep // 2:]


def wrap(text, width=WIDTH_CHARS):
    """Lines of at most `width` characters, broken at spaces only; a longer word is shortened."""
    lines, line = [], ""
    for word in text.split():
        word = shorten(word, width)
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def two_columns(left, right, width=WIDTH_CHARS):
    gap = max(1, width - len(left) - len(right))
    return left + " " * gap + right


class ScreenRenderer:
    """Turns (screen id, data) from the core into a Screen."""

    def __init__(self, settings):
        self.settings = settings

    def money(self, minor):
        return format_amount(minor, self.settings.exponent, self.settings.currency)

    def render(self, screen_id, data):
        method = getattr(self, "screen_" + screen_id, None)
        if method is None:
            return Screen(screen_id.upper(), [])
        return method(data)

    def _title(self, txn_type, amount=None):
        label = T.label(txn_type).upper()
        if amount:
            return two_columns(label, format_amount(amount, self.settings.exponent))
        return label

    def screen_idle(self, data):
        notice = data.get("notice")
        if notice:
            kind, message = notice
            title = {"declined": "DECLINED", "error": "ERROR", "alarm": "ALARM"}.get(kind, "NOTICE")
            return Screen(title, wrap(message)[:4], "Press a key", kind=kind if kind != "info" else "info")
        menu = data.get("menu") or []
        lines = []
        for i in range(0, len(menu), 2):
            pair = menu[i:i + 2]
            cells = ["%s %s" % item for item in pair]
            lines.append(two_columns(cells[0], cells[1]) if len(cells) == 2 else cells[0])
        return Screen(self.settings.merchant_name[:WIDTH_CHARS], lines, "Choose a transaction")

    def screen_amount(self, data):
        error = data.get("error")
        footer = "Max %s" % format_amount(data["limit"], self.settings.exponent) if data.get("limit") else ""
        if error:
            reason, value = error
            footer = {
                "no_amount": "Enter an amount",
                "over_transaction_limit": "Over limit %s" % format_amount(value, self.settings.exponent),
                "over_daily_limit": "Daily left %s" % format_amount(value, self.settings.exponent),
                "over_hold": "Hold is %s" % format_amount(value, self.settings.exponent),
            }.get(reason, reason)
        return Screen(T.label(data["type"]).upper(), ["Amount:", self.money(data["amount"]).rjust(WIDTH_CHARS)],
                      footer, kind="error" if error else "normal")

    def screen_target(self, data):
        footer = "Too short" if data.get("error") else "ENTER to continue"
        return Screen(self._title(T.TRANSFER, data.get("amount")), ["To account:", data["account"] or "_"],
                      footer, kind="error" if data.get("error") else "normal")

    def screen_void_confirm(self, data):
        record = data["record"]
        return Screen("VOID LAST SALE", [self.money(record.get("total") or record["amount"]),
                                         record.get("card") or "",
                                         "Auth %s" % (record.get("auth_code") or "-")],
                      "ENTER=void CANCEL=no")

    def screen_original_confirm(self, data):
        """A completion (its final amount) or a release of the last open hold."""
        record = data["record"]
        lines = ["Hold %s" % self.money(record.get("total") or record["amount"]),
                 record.get("card") or "", "Auth %s" % (record.get("auth_code") or "-")]
        if T.row(data["type"])["amount"]:
            lines[0:0] = ["Final %s" % self.money(data["amount"])]
        return Screen(T.label(data["type"]).upper(), lines[:4],
                      "ENTER=%s CANCEL=no" % T.label(data["type"]).lower())

    def screen_card(self, data):
        title = self._title(data["type"], data.get("amount"))
        # a board with a chip reader asks for the chip first; after a chip failure, the stripe
        again = "Swipe card" if data.get("fallback") else \
            "Insert, swipe or tap" if data.get("chip") else "Swipe or tap again"
        if data.get("error"):  # a malformed read: the same transaction waits for another try
            return Screen(title, wrap(data["error"])[:2] + [again], "CANCEL to stop", kind="error")
        return Screen(title, ["Insert, swipe or tap card" if data.get("chip") else "Swipe or tap card"],
                      "CANCEL to stop")

    def screen_chip_wait(self, data):
        return Screen(T.label(data["type"]).upper(), ["Reading chip...", "Do not remove card"], "")

    def screen_app_choice(self, data):
        """The card's applications (label / preferred name), one key each."""
        lines = ["%d %s" % (i + 1, name) for i, name in enumerate(data.get("names") or [])]
        return Screen("CHOOSE APPLICATION", lines[:4], "Key 1-%d" % len(lines[:4]))

    def screen_account(self, data):
        # a chip card names the application the kernel used (50 / 9F12), else the brand
        name = data.get("label") or str(data.get("brand", "")).upper()
        return Screen("%s %s" % (name, data.get("card", ""))[:WIDTH_CHARS],
                      ["1 Debit", "2 Credit"], "Choose account")

    def screen_pin(self, data):
        lines = []
        if data.get("total"):
            lines.append(two_columns("Total", self.money(data["total"])))
        if data.get("fee"):
            lines.append(two_columns("incl. fee", format_amount(data["fee"], self.settings.exponent)))
        lines.append("PIN: " + "*" * data["entered"])
        footer = "PIN too short" if data.get("error") else "ENTER when done"
        return Screen(T.label(data["type"]).upper(), lines, footer, kind="error" if data.get("error") else "normal")

    def screen_merchant_pin(self, data):
        error = data.get("error")
        footer = {"too_short": "PIN too short",
                  "wrong": "Wrong PIN, %d left" % data.get("tries_left", 0)}.get(error, "ENTER when done")
        return Screen(T.label(data["type"]).upper(), ["Merchant PIN:", "*" * data["entered"]], footer,
                      kind="error" if error else "normal")

    def screen_confirm(self, data):
        lines = [two_columns("Amount", format_amount(data["amount"], self.settings.exponent))]
        if data.get("fee"):
            lines.append(two_columns("Fee", format_amount(data["fee"], self.settings.exponent)))
        lines.append(two_columns("Total", self.money(data["total"])))
        return Screen(T.label(data["type"]).upper(), lines, "ENTER=OK CANCEL=no")

    def screen_processing(self, data):
        return Screen(T.label(data["type"]).upper(), ["Processing...", "Please wait"], "")

    def screen_result(self, data):
        record = data["record"]
        outcome = record["outcome"]
        title = {"approved": "APPROVED", "declined": "DECLINED"}.get(outcome, "ERROR")
        lines = []
        if record.get("total"):
            lines.append(self.money(record["total"]))
        if outcome == "approved":
            if record.get("auth_code"):
                lines.append("Auth %s" % record["auth_code"])
            if record.get("balance") is not None:
                lines.append("Balance %s" % format_amount(record["balance"], self.settings.exponent))
        else:
            lines += wrap(record.get("text") or "")[:2]
        warning = data.get("warning")
        if warning:  # wrapped under the result, never cut: the reason is what helps
            lines = lines[:1] + wrap(warning)
            footer = "Press a key"
        else:
            footer = "Sign the receipt" if record.get("signature") else "Press a key"
        if data.get("remove"):  # a chip card still in the slot
            footer = "Remove card"
        return Screen(title, lines, footer, kind=outcome if outcome != "cancelled" else "info")

    # ------------------------------------------------------------ technician

    def screen_tech_pin(self, data):
        return Screen("TECHNICIAN", ["Technician PIN:", "*" * data["entered"]], "ENTER when done")

    def screen_tech_menu(self, data):
        items = data["items"]
        lines = []
        for i in range(0, len(items), 2):
            cells = ["%s %s" % item for item in items[i:i + 2]]
            lines.append(two_columns(cells[0], cells[1]) if len(cells) == 2 else cells[0])
        return Screen("TECH MENU %d/%d" % (data["page"], data["pages"]), lines, "MENU=more CANCEL=exit")

    def screen_tech_wait(self, data):
        return Screen(data["label"].upper(), ["Running...", "Please wait"], "")

    def screen_tech_info(self, data):
        lines = data["lines"]
        first = data.get("first", 0)
        shown = [line[:WIDTH_CHARS] for line in lines[first:first + 3]]
        more = first + 3 < len(lines)
        return Screen(data["title"][:WIDTH_CHARS], shown, "ENTER=more" if more else "ENTER=back",
                      kind="info")

    def screen_key_test(self, data):
        key = data.get("key")
        lines = ["Press any key", "Key: %s" % key if key else "Key: -", "Count: %d" % data["count"]]
        return Screen("KEYPAD TEST", lines, "CANCEL twice=exit")

    def screen_card_test(self, data):
        lines = []
        for text in data["lines"]:
            lines += wrap(text)
        return Screen("CARD READ TEST", lines[:3], "CANCEL=exit")

    def screen_test_pattern(self, data):
        return Screen("DISPLAY TEST", ["ABCDEFGHIJKLMNOPQRSTU", "0123456789 *#<>+-=/%", "#" * WIDTH_CHARS],
                      "Any key: back", kind="pattern")

    def screen_locked(self, data):
        return Screen("TERMINAL LOCKED", wrap("Tamper: %s" % data.get("reason", ""))[:2] + ["Keys erased"],
                      "Re-key to unlock", kind="error")

