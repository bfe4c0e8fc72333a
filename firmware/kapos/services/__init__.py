"""Terminal-side services (L4-ish: asyncio, sqlite3, ssl, pyserial allowed here).

    journal      SQLite journal: transactions, the persistent STAN counter, the
                 store-and-forward queue (reversals / advices), batch totals
    transport    TcpTransport (2-byte length, optional pinned-CA TLS) and
                 SerialTransport (STX LEN .. ETX LRC, ACK/NAK) behind one interface
    host_client  HostAuthorizer: the ISO 8583 Authorizer the runtime talks to

The runtime only sees `kapos.app.authorizer.Authorizer`; composition (wiring) builds a
HostAuthorizer with `host_client.from_config(config)`.
"""
