"""Portable card data (L1): magstripe tracks, EMV track 2 equivalent, closed-loop
tokens, Luhn/masking, brands and service codes. No I/O, no clock.

The clear PAN lives only inside `Card`; see `Card.pan_for_host()`.
"""

from kapos.card.pan import (
    luhn_valid,
    luhn_check_digit,
    check_pan,
    mask_pan,
    short_mask,
    bin_of,
)
from kapos.card.brands import brand_of, pan_length_ok, CLOSED_LOOP, UNKNOWN
from kapos.card.service_code import ServiceCode
from kapos.card.model import Card, card_from_track2, token_card, check_expiry
from kapos.card.tracks import (
    parse_swipe,
    parse_track1,
    parse_track2,
    build_track1,
    build_track2,
    track1_lrc,
    track2_lrc,
)
