"""State names of the transaction machine."""

IDLE = "IDLE"  # transaction menu (may show a notice: last result or an error)
MERCHANT_PIN = "MERCHANT_PIN"  # refund / void: the merchant PIN first (digits never shown)
AMOUNT = "AMOUNT"  # entering the amount in minor units
TARGET = "TARGET"  # transfer: entering the destination account number
VOID_CONFIRM = "VOID_CONFIRM"  # void: confirm the last sale
CARD = "CARD"  # waiting for a swipe or tap (or an inserted chip card)
CHIP_READ = "CHIP_READ"  # the EMV kernel reads the inserted card (off the loop)
APP_CHOICE = "APP_CHOICE"  # the cardholder picks one of the card's applications
ACCOUNT = "ACCOUNT"  # choose debit / credit
PIN = "PIN"  # PIN entry (digits never leave the PIN buffer but sealed)
SEALING = "SEALING"  # PIN block being built by the key service
CONFIRM = "CONFIRM"  # no PIN needed: confirm the total
AUTHORIZING = "AUTHORIZING"  # waiting for the host
CHIP_COMPLETE = "CHIP_COMPLETE"  # the host's answer (ARPC) goes to the card: second GENERATE AC
RESULT = "RESULT"  # approved / declined / error shown, receipt printing

# Technician functions (behind the technician PIN).
TECH_PIN = "TECH_PIN"  # entering the technician PIN
TECH_MENU = "TECH_MENU"  # choosing a function
TECH_WAIT = "TECH_WAIT"  # a function runs in the runtime (self-test, echo, print...)
TECH_INFO = "TECH_INFO"  # showing a function's result
KEY_TEST = "KEY_TEST"  # every key echoed; CANCEL twice leaves
CARD_TEST = "CARD_TEST"  # swipes and taps decoded and shown masked

LOCKED = "LOCKED"  # tamper: keys erased, nothing works until the terminal is re-keyed

ALL = (IDLE, MERCHANT_PIN, AMOUNT, TARGET, VOID_CONFIRM, CARD, CHIP_READ, APP_CHOICE, ACCOUNT, PIN,
       SEALING, CONFIRM, AUTHORIZING, CHIP_COMPLETE, RESULT, TECH_PIN, TECH_MENU, TECH_WAIT, TECH_INFO, KEY_TEST, CARD_TEST, LOCKED)
