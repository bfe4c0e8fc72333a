"""An EMV entry point and kernel over any `transceive(apdu) -> response` (L1, portable).

    apdu        command APDUs, status words, GET RESPONSE (61xx) and Le retry (6Cxx)
    dol         data object lists (PDOL, CDOL1/2, UDOL) filled from terminal data
    terminal    terminal configuration and per-transaction terminal data (9F37 from a CSPRNG)
    kernel      PPSE / PSE / AID list, candidates with fallback, final selection, GPO,
                records, Visa qVSDC, Mastercard M/Chip (GENERATE AC), mag-stripe profile,
                limits and CVM, TVR / TSI, ICC data for field 55, second GENERATE AC
    cryptogram  EMV Book 2 Annex A1 (ICC master key option A, common session key, MAC,
                ARQC, ARPC methods 1 and 2) over an injected DES block: the issuer side
                (reference host) and the emulated cards use it; the terminal holds no card key

The contactless reader (nfc.isodep) and the contact reader (ports.linux.pcsc) both hand
the kernel a transceive function; see docs/emv.md for what is and is not done.
"""
