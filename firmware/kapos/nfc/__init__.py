"""ISO/IEC 14443 Type A and the card protocols on top, over any reader frontend (L1, portable).

    frontend        what a reader chip must offer (transceive, bit frames, MIFARE auth)
    crc             CRC_A (ISO 14443-3 Annex B)
    iso14443a       REQA/WUPA, anticollision + SELECT over cascade levels, HLTA
    isodep          ISO 14443-4: RATS/ATS, blocks, chaining, WTX, DESELECT
    mifare_classic  authenticate (done by the chip), read/write 16-byte blocks
    tlv             a small BER-TLV reader
    reader          one tap: activate, then the caller's EMV read (kapos.emv) / token block

kapos.drivers.mfrc522 is the frontend for the MFRC522; tests run all of this against
the register-level emulator in kapos.ports.sim.mfrc522_emu.
"""
