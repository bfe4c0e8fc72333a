"""Virtual ISO 14443 cards for the MFRC522 emulator (kapos.ports.sim.mfrc522_emu).

One module per card personality; a new personality (another EMV kernel's card, a
DESFire, ...) is a new module here that subclasses base.VirtualCard or isodep.IsoDepCard.
base: VirtualCard (ISO 14443-3 states, anticollision), scripted: ScriptedCard,
mifare_classic: MifareClassic1K, isodep: IsoDepCard, slow_isodep: SlowIsoDepCard,
emv_test: EmvTestCard."""
