"""Logical keys. A board file maps its physical keypad onto these names."""

ENTER = "ENTER"
CLEAR = "CLEAR"  # correction: remove the last digit (PIN: clear all)
CANCEL = "CANCEL"
MENU = "MENU"

DIGITS = "0123456789"
FUNCTION_KEYS = (ENTER, CLEAR, CANCEL, MENU)
ALL = tuple(DIGITS) + FUNCTION_KEYS


def is_key(name):
    return name in ALL
