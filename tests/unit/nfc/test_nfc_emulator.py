"""The MFRC522 emulator itself, at register level (datasheet behaviour the driver does not
exercise on its own): commands, interrupt Set bits, FIFO flags, timer, SPI framing."""

import pytest

from kapos.ports.sim.mfrc522_emu import Mfrc522Emulator, VirtualCard, with_crc


def rd(emu, *regs):
    out = emu.transfer(bytes([0x80 | r << 1 for r in regs] + [0]))
    return list(out[1:])


def wr(emu, reg, *values):
    emu.transfer(bytes([reg << 1, *values]))


def polls_until(emu, irq_mask, limit=10000):
    """ComIrqReg polls until one of `irq_mask` is set; fails (never spins) after `limit`."""
    for polls in range(limit):
        if rd(emu, 0x04)[0] & irq_mask:
            return polls
    raise AssertionError("ComIrqReg & 0x%02X not set after %d polls" % (irq_mask, limit))


def test_reset_values_and_multi_register_read():
    emu = Mfrc522Emulator(version=0x91)
    emu.sleep_us(100)
    assert rd(emu, 0x37, 0x01, 0x14, 0x11, 0x0E) == [0x91, 0x20, 0x80, 0x3F, 0xA0]


def test_write_is_address_then_data_to_the_same_register():
    emu = Mfrc522Emulator()
    wr(emu, 0x09, 1, 2, 3)  # three bytes into the FIFO
    assert rd(emu, 0x0A) == [3]
    assert rd(emu, 0x09, 0x09, 0x09) == [1, 2, 3]


def test_bad_address_bytes_are_rejected():
    emu = Mfrc522Emulator()
    with pytest.raises(ValueError):
        emu.transfer(b"\x03\x00")  # bit 0 set


def test_set1_bit_sets_or_clears_interrupt_bits():
    emu = Mfrc522Emulator()
    wr(emu, 0x04, 0x7F)
    assert rd(emu, 0x04)[0] & 0x7F in (0x00, 0x04)  # LoAlert comes back while the FIFO is empty
    wr(emu, 0x04, 0x80 | 0x01)
    assert rd(emu, 0x04)[0] & 0x01


def test_fifo_overflow_and_flush():
    emu = Mfrc522Emulator()
    wr(emu, 0x09, *range(70))
    assert rd(emu, 0x0A, 0x06) == [64, 0x10]  # BufferOvfl
    wr(emu, 0x0A, 0x80)
    assert rd(emu, 0x0A, 0x06) == [0, 0]


def test_mem_command_round_trip():
    emu = Mfrc522Emulator()
    wr(emu, 0x09, *range(25))
    wr(emu, 0x01, 0x01)  # Mem: FIFO -> internal buffer
    assert rd(emu, 0x0A) == [0] and rd(emu, 0x04)[0] & 0x10
    wr(emu, 0x01, 0x01)  # Mem with an empty FIFO: buffer -> FIFO
    assert rd(emu, *[0x09] * 25) == list(range(25))


def test_calc_crc_command():
    emu = Mfrc522Emulator()
    wr(emu, 0x11, 0x3D)  # CRC preset 0x6363
    wr(emu, 0x09, 0x00, 0x00)
    wr(emu, 0x01, 0x03)
    assert rd(emu, 0x05)[0] & 0x04
    assert rd(emu, 0x22, 0x21) == [0xA0, 0x1E]


def test_transmit_ends_in_idle_and_transceive_to_no_card_in_timer_irq():
    emu = Mfrc522Emulator()
    wr(emu, 0x14, 0x83)  # field on
    wr(emu, 0x2A, 0x80)  # TAuto, prescaler 0
    wr(emu, 0x2C, 0x0D)
    wr(emu, 0x2D, 0x3F)  # reload 3391: 250 us
    wr(emu, 0x04, 0x7F)
    wr(emu, 0x09, 0x50, 0x00)
    wr(emu, 0x01, 0x04)  # Transmit
    emu.sleep_us(1000)
    assert rd(emu, 0x04)[0] & 0x50 == 0x50 and rd(emu, 0x01)[0] & 0x0F == 0  # TxIRq, IdleIRq, Idle
    wr(emu, 0x04, 0x7F)
    wr(emu, 0x09, 0x26)
    wr(emu, 0x01, 0x0C)  # Transceive
    wr(emu, 0x0D, 0x87)  # StartSend, 7 bits
    polls = polls_until(emu, 0x01)
    assert rd(emu, 0x04)[0] & 0x20 == 0  # nothing received
    assert 250 < emu.now_us - emu.rf_log[-1][0] < 400 and polls > 3
    assert rd(emu, 0x01)[0] & 0x0F == 0x0C  # Transceive stays active


def test_timer_counter_and_auto_restart():
    emu = Mfrc522Emulator()
    wr(emu, 0x2A, 0x10)  # TAutoRestart, prescaler 0
    wr(emu, 0x2C, 0x10)
    wr(emu, 0x2D, 0x00)  # reload 4096
    wr(emu, 0x0C, 0x40)  # TStartNow
    a = rd(emu, 0x2E, 0x2F)
    b = rd(emu, 0x2E, 0x2F)
    assert (a[0] << 8 | a[1]) > (b[0] << 8 | b[1])  # counts down
    assert rd(emu, 0x07)[0] & 0x08  # TRunning
    emu.sleep_us(700)
    assert rd(emu, 0x04)[0] & 0x01 and rd(emu, 0x07)[0] & 0x08  # fired and restarted
    wr(emu, 0x0C, 0x80)  # TStopNow
    assert not rd(emu, 0x07)[0] & 0x08


def test_hardware_crc_enables():
    emu = Mfrc522Emulator()
    card = emu.add_card(VirtualCard(bytes.fromhex("01020304")))
    wr(emu, 0x14, 0x83)
    emu.sleep_us(2000)
    wr(emu, 0x2A, 0x8F)
    wr(emu, 0x2B, 0xFF)
    wr(emu, 0x2D, 0x20)
    for frame, nbits in ((b"\x26", 0x87), (b"\x93\x20", 0x80)):
        wr(emu, 0x01, 0x00)
        wr(emu, 0x04, 0x7F)
        wr(emu, 0x0A, 0x80)
        wr(emu, 0x09, *frame)
        wr(emu, 0x01, 0x0C)
        wr(emu, 0x0D, nbits)
        polls_until(emu, 0x21)
    wr(emu, 0x12, 0x80)  # TxCRCEn: the chip appends CRC_A
    wr(emu, 0x13, 0x80)  # RxCRCEn: the chip checks and strips it
    wr(emu, 0x01, 0x00)
    wr(emu, 0x04, 0x7F)
    wr(emu, 0x0A, 0x80)
    wr(emu, 0x09, 0x93, 0x70, 1, 2, 3, 4, 4)
    wr(emu, 0x01, 0x0C)
    wr(emu, 0x0D, 0x80)
    polls_until(emu, 0x21)
    assert emu.rf_log[-2][2] == with_crc(b"\x93\x70\x01\x02\x03\x04\x04")
    assert rd(emu, 0x06, 0x0A) == [0, 1] and rd(emu, 0x09) == [0x00]  # SAK without its CRC
    assert card.state == "active"
