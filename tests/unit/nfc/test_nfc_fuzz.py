"""Robustness: whatever a card (or a broken bus) sends, the stack -- driver, ISO 14443-3/4,
MIFARE, EMV, TLV -- either returns (a Tap or None) or raises a kapos error, and ends.

Cards here are emulated at frame level, so random answers travel through the emulated
chip (FIFO, RxLastBits, CollReg, timer) and the real driver like real radio frames."""

import random

from hypothesis import HealthCheck, event, given, settings, strategies as st

from kapos.drivers.mfrc522 import Mfrc522, Mfrc522NfcReader
from kapos.errors import KaposError
from kapos.hal import SpiBus, Tap
from kapos.nfc import tlv
from kapos.ports.sim.mfrc522_emu import (
    EmvTestCard, IsoDepCard, MifareClassic1K, Mfrc522Emulator, ScriptedCard, emulated_chip, with_crc)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

UID4 = bytes.fromhex("08a1b2c3")


def polls(chip, n=2, **options):
    reader = Mfrc522NfcReader(chip, field_off_between_polls=False, **options)
    out = []
    for _ in range(n):
        try:
            out.append(reader.poll_once())
        except KaposError as exc:  # anything else fails the test
            out.append(exc)
    for r in out:
        assert r is None or isinstance(r, (Tap, KaposError))
        if isinstance(r, Tap):
            event("Tap (track2=%s, token=%s)" % (r.track2 is not None, r.token is not None))
        else:
            event(type(r).__name__ if r is not None else "None")
    return out


raw_answer = st.one_of(
    st.none(),
    st.binary(min_size=1, max_size=70),
    st.binary(min_size=1, max_size=8).flatmap(lambda b: st.tuples(st.just(b), st.integers(1, len(b) * 8))),
)


@FUZZ
@given(st.data())
def test_random_answers_from_the_first_frame_on(data):
    emu, chip = emulated_chip()
    emu.add_card(ScriptedCard(UID4, lambda frame, nbits: data.draw(raw_answer)))
    polls(chip)


class Mutating:
    """Wraps a well-behaved virtual card and damages some of its answers."""

    def __init__(self, inner, draw):
        self.inner = inner
        self.draw = draw

    def power_on(self, now_us=0.0):
        self.inner.power_on(now_us)

    def power_off(self):
        self.inner.power_off()

    def listening(self, now_us):
        return self.inner.listening(now_us)

    @property
    def _ready_at(self):
        return self.inner._ready_at

    @_ready_at.setter
    def _ready_at(self, value):
        self.inner._ready_at = value

    def mf_auth(self, *args):
        return self.inner.mf_auth(*args)

    def receive(self, data, nbits, encrypted):
        r = self.inner.receive(data, nbits, encrypted)
        op = self.draw(st.integers(0, 15))
        if op <= 10:
            return r
        if op == 5:
            return None  # lost
        d, n, delay = r or (b"\x00", 8, 90.0)
        if op == 6:  # one bit flipped
            i = self.draw(st.integers(0, n - 1))
            d = bytearray(d)
            d[i >> 3] ^= 1 << (i & 7)
            return (bytes(d), n, delay)
        if op == 7:  # cut short
            return (d, self.draw(st.integers(1, n)), delay)
        if op in (8, 9, 10, 11, 12):
            b = self.draw(st.binary(min_size=1, max_size=70))
            return (b, len(b) * 8, delay)
        b = with_crc(self.draw(st.binary(min_size=1, max_size=62)))  # well framed nonsense
        return (b, len(b) * 8, delay)


def echo(apdu):
    return bytes(150) + b"\x90\x00"


CARDS = [
    lambda: EmvTestCard(UID4, fwi=2, record_padding=90),
    lambda: EmvTestCard(bytes.fromhex("04112233445566"), fwi=2, gpo_format=1),
    lambda: IsoDepCard(UID4, echo, fwi=2, fsci=2),
    lambda: MifareClassic1K(bytes.fromhex("04112233"), blocks={4: b"T" * 16}),
    lambda: MifareClassic1K(bytes.fromhex("04112233445566778899")),
]


@FUZZ
@given(st.data(), st.sampled_from(range(len(CARDS))))
def test_damaged_answers_of_real_protocol_cards(data, which):
    emu, chip = emulated_chip()
    emu.add_card(Mutating(CARDS[which](), data.draw))
    polls(chip, 3)


TAGS = st.sampled_from([0x84, 0x4F, 0x50, 0x87, 0x9F38, 0x80, 0x82, 0x94, 0x57, 0x5A, 0x5F20])
TEMPLATES = st.sampled_from([0x6F, 0xA5, 0xBF0C, 0x61, 0x77, 0x70])
LEAF = st.builds(tlv.encode, TAGS, st.binary(max_size=24))
TREE = st.recursive(LEAF, lambda kids: st.builds(lambda t, k: tlv.encode(t, b"".join(k)), TEMPLATES,
                                                   st.lists(kids, max_size=3)), max_leaves=8)
APDU_ANSWER = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda body, sw: body + sw, TREE, st.sampled_from([b"\x90\x00", b"\x6a\x82", b"\x69\x85"])),
)


@FUZZ
@given(st.data())
def test_random_apdu_answers_to_the_emv_read(data):
    emu, chip = emulated_chip()
    emu.add_card(IsoDepCard(UID4, lambda apdu: data.draw(APDU_ANSWER), fwi=2))
    polls(chip)


class RandomIsoDep(IsoDepCard):
    """Valid activation; RATS and every block answered with drawn bytes (CRC'd, never silent)."""

    def __init__(self, draw):
        IsoDepCard.__init__(self, UID4)
        self.draw = draw

    def command(self, frame):
        self.state = "protocol"
        if self.draw(st.booleans()):
            ats = self.draw(st.binary(min_size=1, max_size=20))
        else:  # well formed, random FSCI / FWI / SFGI / historical bytes
            body = bytes((0x70 | self.draw(st.integers(0, 15)), 0, self.draw(st.integers(0, 255)), 0))
            body += self.draw(st.binary(max_size=8))
            ats = bytes((len(body) + 1,)) + body
        return (with_crc(ats), (len(ats) + 2) * 8, 100.0)

    def _block(self, data, nbits):
        b = self.draw(st.one_of(st.binary(min_size=1, max_size=61),
                                st.sampled_from([b"\xa2", b"\xa3", b"\xb2", b"\xf2\x01", b"\xc2", b"\x12", b"\x13"])))
        return (with_crc(b), (len(b) + 2) * 8, 100.0)


@FUZZ
@given(st.data())
def test_random_ats_and_blocks(data):
    emu = Mfrc522Emulator()
    chip = Mfrc522(emu, sleep_us=emu.sleep_us)  # an SFGT of up to 4.9 s passes without polling
    emu.add_card(RandomIsoDep(data.draw))
    polls(chip)


class GlitchBus(SpiBus):
    """The emulator until armed; then MISO carries random bytes (a loose wire)."""

    def __init__(self, emu, seed):
        self.emu = emu
        self.rng = random.Random(seed)
        self.armed = False

    def transfer(self, data):
        out = self.emu.transfer(data)
        if self.armed:
            return bytes(self.rng.getrandbits(8) for _ in out)
        return out


@FUZZ
@given(st.integers(0, 2 ** 32))
def test_random_miso_after_init(seed):
    emu = Mfrc522Emulator()
    bus = GlitchBus(emu, seed)
    chip = Mfrc522(bus)
    emu.add_card(EmvTestCard(UID4, fwi=2))
    bus.armed = True
    polls(chip)
