"""ISO 8583 host protocol (L1, portable): the dialect as data, the codec, the message set
and sans-I/O framers.

    spec       the kapos-87 dialect: one row per field (FIELDS), Spec, DEFAULT_SPEC
    codec      encode / decode / mac_input / with_mac / redacted
    messages   MTIs, processing / response / network codes, builders, response matching
    framing    TcpFramer (2-byte length), SerialFramer / SerialLink (STX LEN .. ETX LRC)
"""
