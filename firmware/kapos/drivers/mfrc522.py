"""NXP MFRC522 contactless reader IC (ISO 14443 Type A, 13.56 MHz) over an injected SPI bus.

Why our own driver: the PyPI `mfrc522` package (and its forks) hard-wires pins, imports
RPi.GPIO and spidev at import time (so it fails off a Pi), blocks without timeouts, cuts
FIFO reads at 16 bytes and has no ISO-DEP (ISO 14443-4) -- so it cannot read an EMV card.

This module is portable (MicroPython subset, no OS knowledge): `Mfrc522(spi, reset=None)`
takes any `kapos.hal.SpiBus` (spidev on Linux, machine.SPI on a microcontroller, the
emulator in kapos.ports.sim.mfrc522_emu in tests) and an optional reset `Pin`.

- SPI framing, datasheet §8.1.2: address byte read = 0x80 | (reg << 1), write = reg << 1;
  several registers are read in one transfer (address bytes then 0x00).
- Every command runs under the chip timer (TModeReg TAuto, TPrescalerReg, TReloadReg set
  from the timeout); the ComIrqReg polling loop is bounded by a count derived from that
  timeout, so a dead chip or bus ends in HardwareError, never a hang.
- Frames up to the full 64-byte FIFO both ways; CRC_A in software (kapos.nfc.crc) or by
  the coprocessor (calc_crc); collisions reported with their bit position (CollReg).
- It is a `kapos.nfc.frontend.Frontend`: kapos.nfc (ISO 14443-3/4, MIFARE, EMV) runs on it.

Errors: chip absent / wrong VersionReg / no interrupt -> HardwareError; garbled answer
(CRC, parity, collision, FIFO overflow) -> CardReadError; no answer -> None (a timeout is
a normal outcome). A card that leaves the field mid-exchange gives CardReadError from
kapos.nfc.isodep; the driver stays usable (every command starts from Idle + FIFO flush).
"""

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio  # type: ignore

from kapos.compat import const, sleep_us as _wall_sleep_us
from kapos.errors import CardReadError, CardRejected, HardwareError, LocalProtocolError, RemoteProtocolError
from kapos.hal import NfcReader, Tap
from kapos.nfc import crc, iso14443a
from kapos.nfc.frontend import Frontend
from kapos.nfc.mifare_classic import KEY_A, TRANSPORT_KEY
from kapos.emv.tap import TrackReader
from kapos.nfc.reader import TOKEN_BLOCK, read_target, run_emv

# ---- registers (datasheet §9) ----
COMMAND_REG = const(0x01)
COM_IRQ_REG = const(0x04)
DIV_IRQ_REG = const(0x05)
ERROR_REG = const(0x06)
STATUS2_REG = const(0x08)
FIFO_DATA_REG = const(0x09)
FIFO_LEVEL_REG = const(0x0A)
CONTROL_REG = const(0x0C)
BIT_FRAMING_REG = const(0x0D)
COLL_REG = const(0x0E)
MODE_REG = const(0x11)
TX_CONTROL_REG = const(0x14)
TX_ASK_REG = const(0x15)
CRC_RESULT_REG_H = const(0x21)
CRC_RESULT_REG_L = const(0x22)
RF_CFG_REG = const(0x26)
T_MODE_REG = const(0x2A)
T_PRESCALER_REG = const(0x2B)
T_RELOAD_REG_H = const(0x2C)
T_RELOAD_REG_L = const(0x2D)
VERSION_REG = const(0x37)

# ---- commands (CommandReg bits 3-0) ----
CMD_IDLE = const(0x00)
CMD_CALC_CRC = const(0x03)
CMD_TRANSCEIVE = const(0x0C)
CMD_MF_AUTHENT = const(0x0E)
CMD_SOFT_RESET = const(0x0F)
POWER_DOWN = const(0x10)

# ---- ComIrqReg / DivIrqReg bits ----
IRQ_RX = const(0x20)
IRQ_IDLE = const(0x10)
IRQ_TIMER = const(0x01)
IRQ_CRC = const(0x04)

# ---- ErrorReg bits ----
ERR_WR = const(0x80)
ERR_TEMP = const(0x40)
ERR_BUFFER_OVFL = const(0x10)
ERR_COLL = const(0x08)
ERR_CRC = const(0x04)
ERR_PARITY = const(0x02)
ERR_PROTOCOL = const(0x01)

MF_CRYPTO1_ON = const(0x08)  # Status2Reg
COLL_POS_NOT_VALID = const(0x20)  # CollReg
START_SEND = const(0x80)  # BitFramingReg
FLUSH_BUFFER = const(0x80)  # FIFOLevelReg
T_START_NOW = const(0x40)  # ControlReg
T_AUTO = const(0x80)  # TModeReg

# VersionReg values seen on real boards. NXP documents 0x91 and 0x92; the rest are
# compatibles (Fudan FM17522 family) and unbranded clones, which work for ISO 14443 A.
VERSIONS = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0", 0x90: "MFRC522 v0.0", 0x88: "FM17522 (clone)",
            0x89: "FM17522E (clone)", 0xB2: "FM17522 v1 (clone)", 0x12: "unbranded MFRC522 clone"}
GENUINE = (0x91, 0x92)

FIFO_SIZE = const(64)
FC_KHZ = const(13560)  # timer input clock: cycles per ms
POLLS_PER_MS = const(250)  # ComIrqReg reads allowed per ms of timer (one read takes > 4 us)
MIN_POLLS = const(64)
RESET_POLLS = const(1000)
RESET_LOW_US = const(10)  # NRSTPD low time (datasheet 8.8.2: > 100 ns; generous for slow GPIO)
OSCILLATOR_START_US = const(50000)  # after NRSTPD rises: crystal start-up, SPI is dead meanwhile
FIELD_GUARD_US = const(5000)  # ISO 14443-3: wait 5 ms after field on before REQA

_READ = const(0x80)


def _rd(reg):
    return _READ | (reg << 1)


class Mfrc522(Frontend):
    """The chip. Ready (reset, checked, configured, antenna on) once constructed.

    spi: kapos.hal.SpiBus; reset: optional kapos.hal.Pin wired to NRSTPD; rx_gain: 0-7
    for RFCfgReg RxGain (18-48 dB), None keeps the chip default (33 dB); sleep_us: an
    optional function for delays, else the chip timer is used; reset_wait: the function
    that waits out the hard reset (the chip timer is not running then), default a real
    sleep (an emulator passes its own virtual clock). `warning` names a clone chip."""

    def __init__(self, spi, reset=None, rx_gain=None, sleep_us=None, reset_wait=None):
        self.spi = spi
        self.reset_pin = reset
        self.rx_gain = rx_gain
        self._sleep_us = sleep_us
        self._reset_wait = reset_wait or sleep_us or _wall_sleep_us
        self.warning = None
        self._reg = bytearray(2)
        self._fifo_w = bytearray(FIFO_SIZE + 1)
        self._fifo_w[0] = FIFO_DATA_REG << 1
        self._fifo_r = bytearray(FIFO_SIZE + 1)
        for i in range(FIFO_SIZE + 1):
            self._fifo_r[i] = _rd(FIFO_DATA_REG)
        self._fifo_w_mv = memoryview(self._fifo_w)
        self._fifo_r_mv = memoryview(self._fifo_r)
        self._status_cmd = bytes((_rd(ERROR_REG), _rd(FIFO_LEVEL_REG), _rd(CONTROL_REG), 0))
        self._auth_cmd = bytes((_rd(ERROR_REG), _rd(STATUS2_REG), 0))
        self._crc_cmd = bytes((_rd(CRC_RESULT_REG_L), _rd(CRC_RESULT_REG_H), 0))
        self._timer = None
        self._field = False
        self.version = None
        self.chip = None
        self.init()

    # ---- registers ----
    def _xfer(self, buf):
        r = self.spi.transfer(buf)
        if len(r) != len(buf):
            raise HardwareError("SPI transfer returned %d bytes for %d" % (len(r), len(buf)))
        return r

    def read_register(self, reg):
        b = self._reg
        b[0] = _rd(reg)
        b[1] = 0
        return self._xfer(b)[1]

    def write_register(self, reg, value):
        b = self._reg
        b[0] = reg << 1
        b[1] = value & 0xFF
        self._xfer(b)

    # ---- life cycle ----
    def init(self):
        """(Hard reset,) soft reset, VersionReg check, configuration, antenna on."""
        if self.reset_pin is not None:
            # Datasheet 8.8.2: a low pulse resets; after the rising edge the oscillator
            # starts, and SPI is not served until it runs.
            self.reset_pin.value(0)
            self._reset_wait(RESET_LOW_US)
            self.reset_pin.value(1)
            self._reset_wait(OSCILLATOR_START_US)
        self.soft_reset()
        version = self.read_register(VERSION_REG)
        if version not in VERSIONS:
            if version == 0x00 or version == 0xFF:
                why = "no chip answers: check wiring, CS and power"
            else:
                why = "unknown chip (known: %s)" % ", ".join("0x%02X" % v for v in sorted(VERSIONS))
            raise HardwareError("MFRC522 not found (VersionReg 0x%02X: %s)" % (version, why))
        self.version = version
        self.chip = VERSIONS[version]
        if version not in GENUINE:
            self.warning = "%s (VersionReg 0x%02X), not an NXP MFRC522: used as compatible" % (self.chip, version)
        self.write_register(TX_ASK_REG, 0x40)  # 100 % ASK modulation (Type A)
        self.write_register(MODE_REG, 0x3D)  # CRC preset 0x6363 (CRC_A), TxWaitRF
        self.write_register(COLL_REG, 0x00)  # ValuesAfterColl = 0
        if self.rx_gain is not None:
            # RxGain is bits 6-4; bit 7 and bits 3-0 are reserved: keep what the chip has
            v = self.read_register(RF_CFG_REG)
            self.write_register(RF_CFG_REG, (v & 0x8F) | ((self.rx_gain & 7) << 4))
        self.antenna_on()

    def soft_reset(self):
        self.write_register(COMMAND_REG, CMD_SOFT_RESET)
        for _ in range(RESET_POLLS):  # oscillator restart: PowerDown bit clears
            if not self.read_register(COMMAND_REG) & POWER_DOWN:
                break
        self._timer = None
        self._field = False

    def selftest(self):
        v = self.read_register(VERSION_REG)
        if v == self.version:
            return True, "%s (VersionReg 0x%02X)%s" % (self.chip, v, "" if v in GENUINE else ", compatible")
        return False, "VersionReg reads 0x%02X, expected 0x%02X" % (v, self.version or 0)

    @property
    def antenna(self):
        return self._field

    def antenna_on(self, wait=True):
        """Switch the 13.56 MHz field on; with `wait`, give cards the 5 ms power-up guard."""
        if not self._field:
            v = self.read_register(TX_CONTROL_REG)
            self.write_register(TX_CONTROL_REG, v | 0x03)
            self._field = True
            if wait:
                self.delay_us(FIELD_GUARD_US)

    def antenna_off(self):
        """Field off: every card in it loses power (and forgets HALT)."""
        v = self.read_register(TX_CONTROL_REG)
        self.write_register(TX_CONTROL_REG, v & 0xFC)
        self._field = False

    def close(self):
        try:
            self.antenna_off()
        except Exception:  # closing must not mask the real error
            pass

    # ---- timer and command execution ----
    def _set_timer(self, timeout_ms):
        """TAuto timer of `timeout_ms` (from end of transmission); returns the poll bound."""
        cycles = int(timeout_ms * FC_KHZ) + 1
        prescaler = 0
        if cycles > 65536:
            prescaler = (cycles - 65536 + 131071) // 131072
            if prescaler > 0xFFF:
                prescaler = 0xFFF
        div = 2 * prescaler + 1
        reload = (cycles + div - 1) // div - 1
        if reload > 0xFFFF:
            reload = 0xFFFF
        key = (prescaler << 16) | reload
        if key != self._timer:
            w = self.write_register
            w(T_MODE_REG, T_AUTO | (prescaler >> 8))
            w(T_PRESCALER_REG, prescaler & 0xFF)
            w(T_RELOAD_REG_H, reload >> 8)
            w(T_RELOAD_REG_L, reload & 0xFF)
            self._timer = key
        # The timer runs at most one tick (< 1 ms) longer than asked.
        return MIN_POLLS + int((timeout_ms + 1) * POLLS_PER_MS)

    def _wait(self, reg, mask, limit):
        for _ in range(limit):
            irq = self.read_register(reg)
            if irq & mask:
                return irq
        self.write_register(COMMAND_REG, CMD_IDLE)
        raise HardwareError("MFRC522 gave no interrupt in %d polls (chip or SPI fault)" % limit)

    def _command(self, cmd, data, timeout_ms, framing, wait_irq):
        """Run a FIFO command under the timer. Returns the ComIrqReg value, None on timeout."""
        n = len(data)
        if n > FIFO_SIZE:
            raise LocalProtocolError("frame of %d bytes exceeds the 64-byte FIFO" % n)
        limit = self._set_timer(timeout_ms)
        w = self.write_register
        w(COMMAND_REG, CMD_IDLE)
        w(COM_IRQ_REG, 0x7F)  # clear all interrupt bits
        w(FIFO_LEVEL_REG, FLUSH_BUFFER)
        if n:
            self._fifo_w[1:n + 1] = data
            self._xfer(self._fifo_w_mv[:n + 1])
        w(BIT_FRAMING_REG, framing)
        w(COMMAND_REG, cmd)
        if cmd == CMD_TRANSCEIVE:
            w(BIT_FRAMING_REG, START_SEND | framing)
        irq = self._wait(COM_IRQ_REG, wait_irq | IRQ_TIMER, limit)
        if irq & wait_irq:
            return irq
        return None

    def _read_fifo(self, n):
        if n == 0:
            return b""
        if n > FIFO_SIZE:
            raise HardwareError("FIFOLevelReg reads %d, over 64 (chip or SPI fault)" % n)
        buf = self._fifo_r
        buf[n] = 0
        try:
            r = self._xfer(self._fifo_r_mv[:n + 1])
        finally:
            buf[n] = _rd(FIFO_DATA_REG)
        return bytes(r[1:])

    def _receive(self, allow_collision):
        """After RxIRq: (data, rx_last_bits, error bits)."""
        s = self._xfer(self._status_cmd)
        error = s[1]
        if error & ERR_TEMP:
            raise HardwareError("MFRC522 overheated: antenna drivers switched off")
        if error & ERR_WR:
            raise HardwareError("MFRC522 reported a FIFO write error")
        if error & ERR_BUFFER_OVFL:
            raise CardReadError("answer longer than the 64-byte FIFO")
        if error & ERR_COLL:
            # collided bits also break parity: during anticollision that is expected
            if not allow_collision:
                raise CardReadError("collision: more than one card answered")
            error &= ~ERR_PARITY
        if error & (ERR_PARITY | ERR_PROTOCOL | ERR_CRC):
            raise CardReadError("transmission error (ErrorReg 0x%02X)" % error)
        return self._read_fifo(s[2] & 0x7F), s[3] & 0x07, error

    # ---- Frontend ----
    def transceive(self, data, timeout_ms, tx_crc=True, rx_crc=True):
        if tx_crc:
            data = crc.append_crc_a(data)
        if self._command(CMD_TRANSCEIVE, data, timeout_ms, 0, IRQ_RX | IRQ_IDLE) is None:
            return None
        rx, last_bits, _ = self._receive(False)
        if rx_crc:
            if last_bits or len(rx) < 3 or not crc.check_crc_a(rx):
                raise CardReadError("CRC_A error in the answer")
            return rx[:-2]
        return rx

    def transceive_bits(self, data, tx_last_bits, rx_align, timeout_ms):
        framing = ((rx_align & 7) << 4) | (tx_last_bits & 7)
        if self._command(CMD_TRANSCEIVE, data, timeout_ms, framing, IRQ_RX | IRQ_IDLE) is None:
            return None
        rx, last_bits, error = self._receive(True)
        coll = 0
        if error & ERR_COLL:
            c = self.read_register(COLL_REG)
            if c & COLL_POS_NOT_VALID:
                raise CardReadError("collision at an unknown bit position")
            coll = (c & 0x1F) or 32
        return rx, last_bits, coll

    def mf_authenticate(self, key_type, block, key, uid4, timeout_ms=5):
        if len(key) != 6 or len(uid4) != 4:
            raise LocalProtocolError("MFAuthent needs a 6-byte key and 4 UID bytes")
        data = bytes((key_type, block)) + bytes(key) + bytes(uid4)
        if self._command(CMD_MF_AUTHENT, data, timeout_ms, 0, IRQ_IDLE) is None:
            return False
        s = self._xfer(self._auth_cmd)
        if s[1] & ERR_PROTOCOL:
            raise LocalProtocolError("MFAuthent refused the FIFO content")
        return not s[1] & 0x1F and bool(s[2] & MF_CRYPTO1_ON)

    def mf_stop_crypto(self):
        self.write_register(STATUS2_REG, 0x00)  # clears MFCrypto1On

    def calc_crc(self, data):
        """CRC_A by the chip's coprocessor (2 bytes, LSB first), e.g. to check crc.py."""
        n = len(data)
        if n > FIFO_SIZE:
            raise LocalProtocolError("CRC input exceeds the 64-byte FIFO")
        w = self.write_register
        w(COMMAND_REG, CMD_IDLE)
        w(DIV_IRQ_REG, IRQ_CRC)  # Set2 = 0: clear CRCIRq
        w(FIFO_LEVEL_REG, FLUSH_BUFFER)
        if n:
            self._fifo_w[1:n + 1] = data
            self._xfer(self._fifo_w_mv[:n + 1])
        w(COMMAND_REG, CMD_CALC_CRC)
        self._wait(DIV_IRQ_REG, IRQ_CRC, MIN_POLLS + n)
        w(COMMAND_REG, CMD_IDLE)
        r = self._xfer(self._crc_cmd)
        return bytes((r[1], r[2]))

    def delay_us(self, us):
        if self._sleep_us is not None:
            self._sleep_us(us)
            return
        limit = self._set_timer(us / 1000.0)
        self.write_register(COM_IRQ_REG, IRQ_TIMER)  # clear TimerIRq
        self.write_register(CONTROL_REG, T_START_NOW)
        self._wait(COM_IRQ_REG, IRQ_TIMER, limit)


class Mfrc522NfcReader(NfcReader):
    """A `kapos.hal.NfcReader` polling an Mfrc522.

    poll_once() -> Tap or None: activates one card; ISO-DEP cards are read as EMV (track 2
    equivalent), MIFARE Classic cards give the token block (key A `key`, block
    `token_block`), others the UID only. A card that stays in the field is reported once:
    a tap ends when a poll finds no card. While a tap lasts polls use WUPA, which also
    wakes the halted card, so this holds with the field on or off between polls and for
    cards with a random UID. Read failures raise (CardReadError, RemoteProtocolError: the
    app asks for another tap); the card then counts as reported.

    read_tap() polls every `poll_interval` seconds, with the field off in between when
    `field_off_between_polls` (saves power; the 5 ms power-up guard is awaited)."""

    def __init__(self, chip, poll_interval=0.15, key=TRANSPORT_KEY, key_type=KEY_A,
                 token_block=TOKEN_BLOCK, read_emv=True, field_off_between_polls=True):
        self.chip = chip
        self.poll_interval = poll_interval
        self.key = key
        self.key_type = key_type
        self.token_block = token_block
        self.read_emv = read_emv
        self.field_off_between_polls = field_off_between_polls
        # set_emv_session(): the EMV kernel for ISO-DEP cards; None: the card number only
        self.emv_session = None
        self.track_reader = TrackReader()
        self.dropped = 0  # reads the session dropped (a tap whose sale ended during the choice)
        self._card_present = False
        self.polls = 0

    def poll_once(self):
        chip = self.chip
        chip.antenna_on()
        self.polls += 1
        try:
            # While a tap lasts, WUPA also wakes the card we halted: we see when it leaves.
            target = iso14443a.activate(chip, wake=self._card_present)
        except (CardReadError, RemoteProtocolError):
            if self._card_present:  # still the same unreadable tap
                return None
            self._card_present = True
            raise
        if target is None:
            self._card_present = False
            return None
        if self._card_present:  # the same tap: quiet it down
            iso14443a.halt(chip)
            return None
        self._card_present = True
        session = self.emv_session or self.track_reader
        if target.iso_dep and self.read_emv and getattr(session, "reads_only", False):
            return Tap(target.uid, track2=run_emv(chip, target, session))  # errors raise
        if target.iso_dep and self.read_emv:
            try:
                result = run_emv(chip, target, session)
            except (CardReadError, CardRejected) as exc:  # the card's answer: the core says so
                return Tap(target.uid, error=exc)
            if result is False:  # the session dropped it (its sale ended meanwhile): no tap
                self.dropped += 1
                return None
            if result is None:  # ISO-DEP but no payment application: the UID alone
                return Tap(target.uid)
            return Tap(target.uid, track2=result.track2, emv=result)
        _, token = read_target(chip, target, self.key, self.key_type, self.token_block)
        return Tap(target.uid, token=token)

    def set_emv_session(self, session):
        self.emv_session = session

    def card_left(self):
        """The card is known to be gone (a simulated hand): the next card found is a new tap."""
        self._card_present = False

    def poll_with_field(self, sleep):
        """One blocking poll cycle for a worker thread: field on (`sleep(seconds)` for the
        power-up guard), poll_once(), field off if so configured."""
        if not self.chip.antenna:
            self.chip.antenna_on(wait=False)
            sleep(FIELD_GUARD_US / 1000000)
        try:
            return self.poll_once()
        finally:
            if self.field_off_between_polls:
                self.chip.antenna_off()

    async def read_tap(self):
        while True:
            if not self.chip.antenna:
                self.chip.antenna_on(wait=False)
                await asyncio.sleep(FIELD_GUARD_US / 1000000)
            try:
                tap = self.poll_once()
            finally:
                if self.field_off_between_polls:
                    self.chip.antenna_off()
            if tap is not None:
                return tap
            await asyncio.sleep(self.poll_interval)

    def selftest(self):
        return self.chip.selftest()

    def close(self):
        self.chip.close()
