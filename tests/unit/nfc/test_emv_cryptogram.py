"""kapos.emv.cryptogram (EMV Book 2 Annex A1) against published vectors and against pyemv,
an independent implementation.

Vectors: the examples in pyemv 1.5.0's documentation (pyemv/kd.py and pyemv/ac.py
docstrings, https://github.com/knovichikhin/pyemv): ICC master key option A, common
session key, ARQC (ISO 9797-1 MAC algorithm 3), ARPC methods 1 and 2."""

import os

import pyemv
import pytest

from kapos.emv import cryptogram as K
from kapos.errors import SecurityError
from kapos.ports.sim.cards.emv_app import DES_BLOCK as D

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


@pytest.mark.parametrize("pan, psn, expected", [
    ("12345678901234567", "01", "73AD54688CEF2934B0979857E3C719F1"),
    ("99012345678901234", "45", "67F8292358083E5EA7AB7FDA58D53B6B"),
])
def test_icc_master_key_option_a_published_vectors(pan, psn, expected):
    assert K.icc_master_key(D, IMK, pan, psn).hex().upper() == expected


def test_common_session_key_published_vector():
    assert K.session_key(D, IMK, bytes.fromhex("001C")).hex().upper() == "E9FB384AF807B940FEDCEA613461B0C4"


def test_arqc_and_arpc_published_vectors():
    sk = bytes.fromhex("29B33180E567CE38EA4CBC9D753B0E61")
    arqc = K.arqc(D, sk, bytes.fromhex("0123456789ABCDEF0123456789ABCDEF"))
    assert arqc.hex().upper() == "FA624250B008B59A"
    assert K.arpc_method1(D, sk, arqc, b"\x00\x00").hex().upper() == "45D4255EEF10C920"
    assert K.arpc_method2(D, sk, arqc, bytes(4)).hex().upper() == "CB56FA40"
    sk2 = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    arqc2 = bytes.fromhex("1234567890ABCDEF")
    assert K.arpc_method1(D, sk2, arqc2, b"\x00\x00").hex().upper() == "F5E6F44147E2F1B0"
    assert K.arpc_method2(D, sk2, arqc2, bytes(4)).hex().upper() == "9308BEBC"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_pyemv_on_random_inputs(seed):
    rnd = os.urandom(64)
    imk = rnd[:16]
    pan = "".join(str(b % 10) for b in rnd[16:32])[: 13 + seed % 7]
    psn = "%02d" % (rnd[32] % 100)
    atc = rnd[33:35]
    data = rnd[35:35 + 1 + rnd[35] % 28]
    mk = K.icc_master_key(D, imk, pan, psn)
    assert mk == pyemv.kd.derive_icc_mk_a(imk, pan, psn)
    sk = K.session_key(D, mk, atc)
    assert sk == pyemv.kd.derive_common_sk(mk, atc + bytes(6))
    arqc = K.arqc(D, sk, data)
    assert arqc == pyemv.ac.generate_ac(sk, data, padding_type=pyemv.ac.PaddingType.EMV)
    assert K.arpc_method1(D, sk, arqc, b"00") == pyemv.ac.generate_arpc_1(sk, arqc, b"00")
    assert K.arpc_method2(D, sk, arqc, b"\x00\x80\x00\x00") == pyemv.ac.generate_arpc_2(sk, arqc, b"\x00\x80\x00\x00")


def test_bad_inputs_are_clear_errors():
    with pytest.raises(SecurityError):
        K.icc_master_key(D, IMK[:8], "4761739001010010")
    with pytest.raises(SecurityError):
        K.icc_master_key(D, IMK, "4761-7390")
    with pytest.raises(SecurityError, match="9F03 missing"):
        K.arqc_input({0x9F02: bytes(6)})
