"""A register-level MFRC522 emulator with virtual ISO 14443 Type A cards in its field.

The real driver (kapos.drivers.mfrc522) talks to `Mfrc522Emulator` through
`SpiBus.transfer()` (or spidev's `xfer2`) exactly as to the chip, so tests exercise the
driver's bytes on the bus. Written from the NXP MFRC522 datasheet (rev. 3.9), not from
the driver: its register numbers and bit names are its own.

Modelled: SPI address bytes (§8.1.2: read 0x80|reg<<1 with several addresses per
transfer, write reg<<1 followed by data to the same register), the register file with
reset values, the 64-byte FIFO (FlushBuffer, BufferOvfl, Lo/HiAlert), commands Idle, Mem,
Generate RandomID, CalcCRC, Transmit, Receive, Transceive (StartSend, TxLastBits,
RxAlign), MFAuthent and SoftReset, ComIrqReg/DivIrqReg with Set1/Set2, ErrorReg
(CollErr, CRCErr, ProtocolErr, BufferOvfl, injected parity errors), ControlReg RxLastBits,
CollReg (CollPos, CollPosNotValid, ValuesAfterColl), TxModeReg/RxModeReg CRC enables,
Status2Reg MFCrypto1On, TxControlReg (the field: cards lose power and state when it is
off), the timer (TModeReg TAuto/TAutoRestart, TPrescalerReg, TReloadReg, TStartNow/
TStopNow, TimerIRq) and the NRSTPD reset pin.

Time is virtual (`now_us`): a transfer costs `transfer_overhead_us` plus its bits at
`spi_hz` (with `realtime=True`, at least the wall-clock time since the previous
transfer: time an asyncio app spends awaiting -- poll intervals, the field power-up
guard -- passes for the chip and its cards too, as it must when the emulated chip backs
a running terminal); a frame costs its air time at 106 kbit/s (9.44 us a bit, parity included), a
card answers after its frame delay time. With TAuto the timer starts at the end of
transmission and stops when an answer begins, as on the chip, so a Transceive to no
card ends with TimerIRq after as many ComIrqReg polls as real time would allow.

Simplifications (documented, deliberate): Crypto1 is not computed -- after MFAuthent
the emulator passes frames in clear to the authenticated card and marks them
"encrypted"; a card that is not in the same crypto state as the chip sees noise and
drops to IDLE (so forgetting to clear MFCrypto1On breaks the next REQA, as on air).
MIFARE access bits are not evaluated (keys are). Analog settings are stored, not used.

Virtual cards (ISO 14443 personalities) live in kapos.ports.sim.cards, one module each;
their names are re-exported here so older imports keep working.

Statistics (`stats`): transfers, bytes_out/bytes_in (MOSI/MISO bytes; equal on SPI),
irq_polls (ComIrqReg reads), frames (PCD frames on air). `rf_log` keeps the frames:
(time_us, "pcd"|"picc", bytes, nbits).
"""

import os
import time

from kapos.hal import Pin, SpiBus
from kapos.ports.sim.chips import personality
from kapos.ports.sim.rf import FC_MHZ, air_us, bits_of, bytes_of, crc_ok, with_crc

# ---- registers (datasheet table 20) ----
R_COMMAND = 0x01
R_COM_IEN = 0x02
R_DIV_IEN = 0x03
R_COM_IRQ = 0x04
R_DIV_IRQ = 0x05
R_ERROR = 0x06
R_STATUS1 = 0x07
R_STATUS2 = 0x08
R_FIFO_DATA = 0x09
R_FIFO_LEVEL = 0x0A
R_WATER_LEVEL = 0x0B
R_CONTROL = 0x0C
R_BIT_FRAMING = 0x0D
R_COLL = 0x0E
R_MODE = 0x11
R_TX_MODE = 0x12
R_RX_MODE = 0x13
R_TX_CONTROL = 0x14
R_DEMOD = 0x19
R_CRC_RESULT_H = 0x21
R_CRC_RESULT_L = 0x22
R_T_MODE = 0x2A
R_T_PRESCALER = 0x2B
R_T_RELOAD_H = 0x2C
R_T_RELOAD_L = 0x2D
R_T_COUNTER_H = 0x2E
R_T_COUNTER_L = 0x2F
R_VERSION = 0x37

RESET_VALUES = {
    R_COMMAND: 0x20, R_COM_IEN: 0x80, R_COM_IRQ: 0x14, R_STATUS1: 0x21, R_WATER_LEVEL: 0x08,
    R_CONTROL: 0x10, R_COLL: 0xA0, R_MODE: 0x3F, R_TX_CONTROL: 0x80, 0x16: 0x10, 0x17: 0x84,
    0x18: 0x84, R_DEMOD: 0x4D, 0x1C: 0x62, 0x1F: 0xEB, R_CRC_RESULT_H: 0xFF,
    R_CRC_RESULT_L: 0xFF, 0x24: 0x26, 0x26: 0x48, 0x27: 0x88, 0x28: 0x20, 0x29: 0x20,
    0x33: 0x80, 0x36: 0x40,
}
READ_ONLY = (R_ERROR, R_STATUS1, R_CRC_RESULT_H, R_CRC_RESULT_L, R_T_COUNTER_H, R_T_COUNTER_L, R_VERSION)

# ---- commands ----
C_IDLE, C_MEM, C_RANDOM_ID, C_CALC_CRC, C_TRANSMIT = 0x0, 0x1, 0x2, 0x3, 0x4
C_NO_CMD_CHANGE, C_RECEIVE, C_TRANSCEIVE, C_MF_AUTHENT, C_SOFT_RESET = 0x7, 0x8, 0xC, 0xE, 0xF
KNOWN_COMMANDS = (C_IDLE, C_MEM, C_RANDOM_ID, C_CALC_CRC, C_TRANSMIT, C_NO_CMD_CHANGE,
                  C_RECEIVE, C_TRANSCEIVE, C_MF_AUTHENT, C_SOFT_RESET)

# ---- bits ----
TX_IRQ, RX_IRQ, IDLE_IRQ, HI_ALERT_IRQ, LO_ALERT_IRQ, ERR_IRQ, TIMER_IRQ = 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
CRC_IRQ = 0x04
WR_ERR, TEMP_ERR, BUFFER_OVFL, COLL_ERR, CRC_ERR, PARITY_ERR, PROTOCOL_ERR = 0x80, 0x40, 0x10, 0x08, 0x04, 0x02, 0x01
CRYPTO1_ON = 0x08
FIFO_SIZE = 64
RESET_US = 50.0  # a soft reset: PowerDown shows in CommandReg this long
RESET_LOW_MIN_US = 0.1  # datasheet 8.8.2: a shorter NRSTPD low pulse does not reset


class _ResetPin(Pin):
    def __init__(self, emulator):
        self._emu = emulator
        self.level = 1

    def value(self, level=None):
        if level is None:
            return self.level
        level = 1 if level else 0
        if level != self.level:
            self.level = level
            self._emu._reset_pin_changed(level)
        return None


class Mfrc522Emulator(SpiBus):
    """The chip behind a fake SPI bus. `chip`: a personality of kapos.ports.sim.chips
    ("mfrc522-v2", "clone-0x12", "fm17522", ...), or `version`: its VersionReg.
    `reset_pin`: a kapos.hal.Pin to hand to the driver as its NRSTPD line; after it rises
    the chip ignores SPI (reads 0x00) until its oscillator has started.
    `wire`: a kapos.ports.sim.wire.Wire that makes each transfer take real time."""

    def __init__(self, version=None, spi_hz=1000000, transfer_overhead_us=20.0, realtime=False,
                 chip=None, wire=None):
        self.personality = personality(chip, version)
        self.version = self.personality.version
        self.wire = wire
        self._osc_until = 0.0
        self._low_since = None
        self.spi_hz = spi_hz
        self.transfer_overhead_us = transfer_overhead_us
        self.realtime = realtime
        self._wall = time.monotonic()
        self.now_us = 0.0
        self.cards = []
        self.rf_log = []
        self.log_rf = True
        self.reset_pin = _ResetPin(self)
        self.stats = {}
        self.reset_stats()
        self._events = []
        self._seq = 0
        self._remove_after = None
        self._injected_errors = []
        self._mem_buffer = bytearray(25)
        self._field = False
        self._powered = True
        self._power_on()

    # ---- test hooks ----
    def reset_stats(self):
        self.stats = {"transfers": 0, "bytes_out": 0, "bytes_in": 0, "irq_polls": 0, "frames": 0}

    def add_card(self, card, settle=True):
        """Put a card in the field. With `settle` it is ready at once (as if it had been
        held there for a while); else it needs its power_up_us first."""
        self.cards.append(card)
        if self._field:
            card.power_on(self.now_us)
            if settle:
                card._ready_at = self.now_us
        return card

    def remove_card(self, card=None):
        """Take one card (default: all) out of the field."""
        for c in list(self.cards) if card is None else [card]:
            c.power_off()
            self.cards.remove(c)

    def remove_card_after(self, n_frames, card=None):
        """The next `n_frames` PCD frames still reach the card(s); then they leave the field."""
        self._remove_after = (n_frames, card)

    def inject_rx_error(self, error_bits=PARITY_ERR, count=1):
        """The next `count` received frames come with these ErrorReg bits (e.g. PARITY_ERR)."""
        self._injected_errors.extend([error_bits] * count)

    def sleep_us(self, us):
        """Let virtual time pass without bus traffic (for the driver's sleep_us hook)."""
        self._advance(us)

    @property
    def field(self):
        return self._field

    @property
    def command(self):
        return self.regs[R_COMMAND] & 0x0F

    # ---- SPI ----
    def transfer(self, data):
        data = bytes(data)
        n = len(data)
        st = self.stats
        st["transfers"] += 1
        st["bytes_out"] += n
        st["bytes_in"] += n
        cost = self.transfer_overhead_us + n * 8e6 / self.spi_hz
        if self.wire is not None:
            self.wire.spend_us(cost)
        if self.realtime:  # time the host spent elsewhere (awaiting) passes for the chip too
            wall = time.monotonic()
            cost = max(cost, (wall - self._wall) * 1e6)
            self._wall = wall
        self._advance(cost)
        out = bytearray(n)
        if not self._powered or n == 0 or self.now_us < self._osc_until:
            return bytes(out)  # in reset or the oscillator not running: MISO stays low
        if data[0] & 0x01:
            raise ValueError("SPI address byte 0x%02X: bit 0 must be 0 (datasheet 8.1.2.3)" % data[0])
        if data[0] & 0x80:
            for i in range(n - 1):
                if not data[i] & 0x80 or data[i] & 0x01:
                    raise ValueError("read transfer with a bad address byte at %d" % i)
                reg = (data[i] >> 1) & 0x3F
                if reg == R_COM_IRQ:
                    st["irq_polls"] += 1
                out[i + 1] = self._read(reg)
        else:
            reg = (data[0] >> 1) & 0x3F
            for b in data[1:]:
                self._write(reg, b)
        return bytes(out)

    def xfer2(self, values):
        """spidev.SpiDev.xfer2 look-alike."""
        return list(self.transfer(bytes(values)))

    def close(self):
        pass

    # ---- virtual time ----
    def _at(self, t, fn, group="cmd"):
        self._seq += 1
        self._events.append((t, self._seq, fn, group))
        self._events.sort(key=lambda e: (e[0], e[1]))

    def _cancel(self, group):
        self._events = [e for e in self._events if e[3] != group]

    def _advance(self, dt):
        end = self.now_us + dt
        while self._events and self._events[0][0] <= end:
            t, _, fn, _ = self._events.pop(0)
            self.now_us = max(self.now_us, t)
            fn()
        self.now_us = end

    # ---- reset ----
    def _power_on(self):
        self.regs = bytearray(64)
        for reg, value in RESET_VALUES.items():
            self.regs[reg] = value
        self.regs[R_VERSION] = self.version
        self.fifo = bytearray()
        self._events = []
        self._busy = False
        self._timer_running = False
        self._timer_deadline = 0.0
        self._crc_active = False
        self._rx_align = 0
        self._reset_until = self.now_us + RESET_US
        self._set_field(False)

    def _reset_pin_changed(self, level):
        if level == 0:
            self._powered = False  # hard power-down: SPI dead
            self._low_since = self.now_us
            return
        self._powered = True
        if self._low_since is not None and self.now_us - self._low_since < RESET_LOW_MIN_US:
            return  # a glitch, not a reset: the chip carries on as it was
        self._events = []
        self._set_field(False)
        self._power_on()
        self._osc_until = self.now_us + self.personality.oscillator_start_us

    # ---- registers ----
    def _read(self, reg):
        r = self.regs
        if reg == R_FIFO_DATA:
            v = self.fifo[0] if self.fifo else 0
            self.fifo = self.fifo[1:]  # no bytearray.pop/del on MicroPython (tests/micropython)
            self._fifo_changed()
            return v
        if reg == R_FIFO_LEVEL:
            return len(self.fifo)
        if reg == R_COMMAND:
            v = r[R_COMMAND]
            return v | 0x10 if self.now_us < self._reset_until else v
        if reg == R_STATUS1:
            level = len(self.fifo)
            water = r[R_WATER_LEVEL] & 0x3F
            v = 0
            if level <= water:
                v |= 0x01
            if FIFO_SIZE - level <= water:
                v |= 0x02
            if self._timer_running:
                v |= 0x08
            if (r[R_COM_IRQ] & r[R_COM_IEN] & 0x7F) or (r[R_DIV_IRQ] & r[R_DIV_IEN] & 0x14):
                v |= 0x10
            return v | 0x20 | (0x40 if not r[R_ERROR] & CRC_ERR else 0)
        if reg in (R_T_COUNTER_H, R_T_COUNTER_L):
            count = 0
            if self._timer_running:
                count = int((self._timer_deadline - self.now_us) * FC_MHZ / self._timer_div())
            return (count >> 8) & 0xFF if reg == R_T_COUNTER_H else count & 0xFF
        return r[reg]

    def _write(self, reg, v):
        r = self.regs
        if reg == R_COMMAND:
            r[R_COMMAND] = v & 0x30 | (r[R_COMMAND] & 0x0F)
            if v & 0x0F != C_NO_CMD_CHANGE:
                self._start_command(v & 0x0F)
        elif reg == R_COM_IRQ or reg == R_DIV_IRQ:
            if v & 0x80:
                r[reg] |= v & 0x7F
            else:
                r[reg] &= ~v & 0x7F
        elif reg == R_FIFO_DATA:
            if len(self.fifo) >= FIFO_SIZE:
                r[R_ERROR] |= BUFFER_OVFL
            else:
                self.fifo.append(v)
            self._fifo_changed()
            if self._crc_active:
                self._calc_crc()
        elif reg == R_FIFO_LEVEL:
            if v & 0x80:
                self.fifo = bytearray()
                r[R_ERROR] &= ~BUFFER_OVFL & 0xFF
                self._fifo_changed()
        elif reg == R_CONTROL:
            if v & 0x80:
                self._stop_timer()
            if v & 0x40:
                self._start_timer()
        elif reg == R_BIT_FRAMING:
            r[reg] = v
            if v & 0x80 and self.command == C_TRANSCEIVE and not self._busy:
                self._transmit()
        elif reg == R_STATUS2:
            r[reg] = (v & 0xC0) | (r[reg] & 0x07) | (r[reg] & v & CRYPTO1_ON)
        elif reg == R_COLL:
            r[reg] = (v & 0x80) | (r[reg] & 0x7F)
        elif reg == R_TX_CONTROL:
            r[reg] = v
            self._set_field(bool(v & 0x03))
        elif reg not in READ_ONLY:
            r[reg] = v

    def _fifo_changed(self):
        level = len(self.fifo)
        water = self.regs[R_WATER_LEVEL] & 0x3F
        if level <= water:
            self.regs[R_COM_IRQ] |= LO_ALERT_IRQ
        if FIFO_SIZE - level <= water:
            self.regs[R_COM_IRQ] |= HI_ALERT_IRQ

    def _set_field(self, on):
        if on == self._field:
            return
        self._field = on
        for card in self.cards:
            if on:
                card.power_on(self.now_us)
            else:
                card.power_off()

    # ---- commands ----
    def _start_command(self, cmd):
        r = self.regs
        self._cancel("cmd")
        self._busy = False
        self._crc_active = False
        if cmd not in KNOWN_COMMANDS:
            self._finish()
            return
        r[R_COMMAND] = (r[R_COMMAND] & 0xF0) | cmd
        if cmd != C_IDLE:
            r[R_ERROR] &= BUFFER_OVFL | TEMP_ERR
        if cmd == C_MEM:
            if len(self.fifo) >= 25:
                self._mem_buffer = bytearray(self.fifo[:25])
                self.fifo = self.fifo[25:]
            elif not self.fifo:
                self.fifo += self._mem_buffer
            self._finish()
        elif cmd == C_RANDOM_ID:
            self._mem_buffer[:10] = os.urandom(10)
            self._finish()
        elif cmd == C_CALC_CRC:
            self._crc_active = True
            self._crc_data = bytearray()
            self._calc_crc()
        elif cmd == C_TRANSMIT:
            self._transmit()
        elif cmd == C_MF_AUTHENT:
            self._mf_authent()
        elif cmd == C_SOFT_RESET:
            self._power_on()

    def _finish(self):
        """The command ends by itself: back to Idle with IdleIRq."""
        self.regs[R_COMMAND] &= 0xF0
        self.regs[R_COM_IRQ] |= IDLE_IRQ
        self._busy = False

    def _calc_crc(self):
        self._crc_data += self.fifo
        self.fifo = bytearray()
        preset = (0x0000, 0x6363, 0xA671, 0xFFFF)[self.regs[R_MODE] & 0x03]
        crc = preset
        for byte in self._crc_data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        self.regs[R_CRC_RESULT_H] = crc >> 8
        self.regs[R_CRC_RESULT_L] = crc & 0xFF
        self.regs[R_DIV_IRQ] |= CRC_IRQ

    def _error(self, bits):
        self.regs[R_ERROR] |= bits
        self.regs[R_COM_IRQ] |= ERR_IRQ

    # ---- timer ----
    def _timer_div(self):
        prescaler = ((self.regs[R_T_MODE] & 0x0F) << 8) | self.regs[R_T_PRESCALER]
        return 2 * prescaler + (2 if self.regs[R_DEMOD] & 0x10 else 1)

    def _start_timer(self):
        self._cancel("timer")
        reload = (self.regs[R_T_RELOAD_H] << 8) | self.regs[R_T_RELOAD_L]
        self._timer_running = True
        self._timer_deadline = self.now_us + (reload + 1) * self._timer_div() / FC_MHZ
        self._at(self._timer_deadline, self._timer_fired, "timer")

    def _stop_timer(self):
        self._cancel("timer")
        self._timer_running = False

    def _timer_fired(self):
        self.regs[R_COM_IRQ] |= TIMER_IRQ
        self._timer_running = False
        if self.regs[R_T_MODE] & 0x10:  # TAutoRestart
            self._start_timer()

    def _t_auto(self):
        if self.regs[R_T_MODE] & 0x80:
            self._start_timer()

    # ---- radio ----
    def _transmit(self):
        r = self.regs
        data = bytes(self.fifo)
        self.fifo = bytearray()
        self._fifo_changed()
        last = r[R_BIT_FRAMING] & 0x07
        self._rx_align = (r[R_BIT_FRAMING] >> 4) & 0x07
        if r[R_TX_MODE] & 0x80 and data and not last:
            data = with_crc(data)
        nbits = 0
        if data:
            nbits = (len(data) - 1) * 8 + (last or 8)
        self._busy = True
        self._at(self.now_us + air_us(nbits), lambda: self._tx_done(data, nbits))

    def _count_frame(self):
        """A PCD frame goes on air: count it and apply a pending remove_card_after."""
        self.stats["frames"] += 1
        if self._remove_after is not None:
            n, card = self._remove_after
            if n <= 0:
                self._remove_after = None
                self.remove_card(card)
            else:
                self._remove_after = (n - 1, card)

    def _listeners(self):
        return [c for c in self.cards if c.listening(self.now_us)] if self._field else []

    def _tx_done(self, data, nbits):
        r = self.regs
        r[R_COM_IRQ] |= TX_IRQ
        self._t_auto()
        if nbits == 0 or not self._field:
            replies = []
        else:
            self._count_frame()
            if self.log_rf:
                self.rf_log.append((self.now_us, "pcd", data, nbits))
            encrypted = bool(r[R_STATUS2] & CRYPTO1_ON)
            replies = [x for x in (c.receive(data, nbits, encrypted) for c in self._listeners()) if x]
        if self.command == C_TRANSMIT:
            self._finish()
            return
        self._busy = True  # receiving
        if not replies:
            return
        bits, coll = self._superpose([bits_of(d, n) for d, n, _ in replies])
        start = self.now_us + max(delay for _, _, delay in replies)
        self._at(start, self._rx_started)
        self._at(start + air_us(len(bits)), lambda: self._rx_done(bits, coll))

    @staticmethod
    def _superpose(answers):
        """Several cards answering at once: bits where they differ collide (Manchester)."""
        if len(answers) == 1:
            return answers[0], None
        out = []
        coll = None
        for i in range(max(len(a) for a in answers)):
            values = set(a[i] for a in answers if i < len(a))
            if len(values) > 1 and coll is None:
                coll = i
            out.append(1 if 1 in values else 0)
        return out, coll

    def _rx_started(self):
        if self.regs[R_T_MODE] & 0x80:  # TAuto: the timer stops when an answer begins
            self._stop_timer()

    def _rx_done(self, bits, coll):
        r = self.regs
        align = self._rx_align
        errors = self._injected_errors.pop(0) if self._injected_errors else 0
        if coll is not None:
            errors |= COLL_ERR | PARITY_ERR  # a collided bit breaks its byte's parity as well
            pos = align + coll + 1
            r[R_COLL] = (r[R_COLL] & 0x80) | ((pos & 0x1F) if pos <= 32 else 0x20)
            if not r[R_COLL] & 0x80:  # ValuesAfterColl = 0: clear bits from the collision on
                bits = bits[:coll] + [0] * (len(bits) - coll)
        else:
            r[R_COLL] = (r[R_COLL] & 0x80) | 0x20
        data = bytes_of([0] * align + bits)
        if self.log_rf:
            self.rf_log.append((self.now_us, "picc", bytes_of(bits), len(bits)))
        total = align + len(bits)
        if r[R_RX_MODE] & 0x80 and coll is None:
            if total % 8 or not crc_ok(data):
                errors |= CRC_ERR
            else:
                data = data[:-2]
        for b in data:
            if len(self.fifo) >= FIFO_SIZE:
                errors |= BUFFER_OVFL
                break
            self.fifo.append(b)
        self._fifo_changed()
        r[R_CONTROL] = (r[R_CONTROL] & 0xF8) | (total % 8)
        r[R_COM_IRQ] |= RX_IRQ
        if errors:
            self._error(errors)
        self._busy = False
        if self.command == C_RECEIVE:
            self._finish()

    def _mf_authent(self):
        data = bytes(self.fifo)
        self.fifo = bytearray()
        self._fifo_changed()
        if len(data) < 12:
            self._error(PROTOCOL_ERR)
            self._finish()
            return
        self._busy = True
        self._count_frame()
        if self.log_rf:
            self.rf_log.append((self.now_us, "pcd", with_crc(data[:2]), 32))
        encrypted = bool(self.regs[R_STATUS2] & CRYPTO1_ON)
        result = 0
        for card in self._listeners():
            result = max(result, card.mf_auth(data[0], data[1], data[2:8], data[8:12], encrypted))
        t1 = air_us(32)  # auth command + CRC
        t2 = t1 + 90 + air_us(32) + 90 + air_us(64)  # nonce, then reader's answer
        if result == 2:
            self._at(self.now_us + t2 + 90 + air_us(32), self._auth_ok)
        else:
            self._at(self.now_us + (t1 if result == 0 else t2), self._t_auto)

    def _auth_ok(self):
        self.regs[R_STATUS2] |= CRYPTO1_ON
        self._finish()


def emulated_chip(cards=(), version=None, **emulator_options):
    """(emulator, driver): the real kapos.drivers.mfrc522.Mfrc522 on a fresh emulator,
    reset through the emulated NRSTPD pin (the reset waits pass in virtual time), with
    `cards` in the field."""
    from kapos.drivers.mfrc522 import Mfrc522

    emu = Mfrc522Emulator(version=version, **emulator_options)
    chip = Mfrc522(emu, reset=emu.reset_pin, reset_wait=emu.sleep_us)
    for card in cards:
        emu.add_card(card)
    return emu, chip


# The card personalities, re-exported for the tests and benches that import them from here.
from kapos.ports.sim.cards.base import SEL_CODES, TRANSPORT_KEY, VirtualCard  # noqa: E402,F401
from kapos.ports.sim.cards.emv_test import PPSE, SW_OK, VISA_AID, EmvTestCard, tlv, track2_bytes  # noqa: E402,F401
from kapos.ports.sim.cards.isodep import FSD_TABLE, IsoDepCard  # noqa: E402,F401
from kapos.ports.sim.cards.mifare_classic import MifareClassic1K  # noqa: E402,F401
from kapos.ports.sim.cards.scripted import ScriptedCard  # noqa: E402,F401
from kapos.ports.sim.cards.slow_isodep import SlowIsoDepCard  # noqa: E402,F401
from kapos.ports.sim.rf import BIT_US, crc_a  # noqa: E402,F401
