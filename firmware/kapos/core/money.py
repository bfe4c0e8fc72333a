"""Fees and limits: integer minor units only, no floats anywhere."""


def fee_for(settings, account, amount):
    """Fixed part plus a rate in basis points, rounded half up."""
    table = settings.fees.get(account)
    if table is None:
        table = settings.fees.get("debit", {})
    fixed = int(table.get("fixed", 0))
    rate_bp = int(table.get("rate_bp", 0))
    return fixed + (amount * rate_bp + 5000) // 10000


def over_limit(settings, txn_type, amount, spent_today, counts_daily):
    """Return None if allowed, else (reason, limit) for the screen."""
    limit = settings.limit_for(txn_type)
    if limit and amount > limit:
        return ("over_transaction_limit", limit)
    if counts_daily > 0 and settings.daily and spent_today + amount > settings.daily:
        return ("over_daily_limit", max(0, settings.daily - spent_today))
    return None
