"""Test and simulation data, in one place so nothing else carries any of it.

    cards        the built-in test cards (testcards.toml): accounts, PINs, tracks, tokens;
                 what the simulated readers present and the reference host loads by default
    keys         the PUBLIC test keys: the ANSI X9.24-3 sample BDK, the static test PIN
                 key, the closed-loop token test key

None of it is secret and none of it may protect real money: production wiring uses it
only on the simulated boards (the sim card readers, the in-process reference host) and
for the opt-in `keys.auto_test_keys` (docs/security.md).
"""
