"""AES DUKPT (ANSI X9.24-3-2017) against published test vectors.

Source of every expected value below, unless a test says otherwise:
  ANSI X9.24-3-2017 Supplement "Test Vectors" (ASC X9,
  https://x9.org/standards/x9-24-part-3-test-vectors/), as transcribed with page
  references in openemv/dukpt at commit a0a09627081600c10a56b904b704049e30f4cf99:
    test/dukpt_aes128_test.c  (AES-128 BDK)
    test/dukpt_aes256_test.c  (AES-256 BDK)
Note: the sample BDK is FEDCBA9876543210 F1F1F1F1F1F1F1F1 (not ...F1F2F3F4F5F6F7F8).
"""

import pytest

from kapos.errors import SecurityError
from kapos.security import dukpt, pinblock

H = bytes.fromhex
IK_ID = H("1234567890123456")
BDK128 = H("FEDCBA9876543210F1F1F1F1F1F1F1F1")
BDK256 = BDK128 + BDK128
IK128 = "1273671EA26AC29AFA4D1084127652A1"
IK256 = "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F"

FIRST_EIGHT = [1, 2, 3, 4, 5, 6, 7, 8]
# "rollover" counters 0x1FFFE, 0x20000, 0x20001 (0x1FFFF is skipped: 17 one-bits)
ROLLOVER = [0x0001FFFE, 0x00020000, 0x00020001]
LAST_FOUR = [0xFFFE2000, 0xFFFE4000, 0xFFFE8000, 0xFFFF0000]

# --- AES-128 BDK (dukpt_aes128_test.c) ---
TXN128 = {
    1: "4F21B565BAD9835E112B6465635EAE44",
    2: "2F34D68DE10F68D38091A73B9E7C437C",
    3: "031504E530365CF81264238540518318",
    4: "0EEFC7ADA628BA68878DA9165A8A1887",
    5: "C2A7AC328A5DA2D6002D62465BFC028B",
    6: "D30F7D9351DA58448A2F5E92B4EE3B7D",
    7: "A8253CEED9AC042C54F75D35C8352278",
    8: "718EE6CF0B27E53D5F7AF99C4D8146A2",
    0x0001FFFE: "E21E8C8D347F8561A2BE752DAA85A111",
    0x00020000: "F7AE9025468A25D37B7249CFFED224C8",
    0x00020001: "692C8EA4013645135B36497131DF9D2C",
    0xFFFE2000: "48E585B694EB0B18D5C35443E163C0BA",
    0xFFFE4000: "396C2C7CA1EA701C03B86B7D41F0C562",
    0xFFFE8000: "0387625F189B58AE03EF0E8CCA41105E",
    0xFFFF0000: "F6BA59389BD14A9855BE9727E7C52E3C",
}
PIN128 = [
    "AF8CB133A78F8DC2D1359F18527593FB",
    "D30BDC73EC9714B000BEC66BDB7B6D09",
    "7D69F01F3B45449F62C7816ECE723268",
    "91A0588318EC2673214271F70137896E",
    "35A43BC9EFEB09C756204B57E3FB7D4D",
    "02DCC6CD1201A3A2CA7099559C862123",
    "6ECF912F3B18CA11A7A27BB60705FD09",
    "4D9DF3FBEE3448FC3E676D04320A90F5",
]
MACGEN128 = [
    "A2DC23DE6FDE0824A2BC321E08E4B8B7",
    "484C3B06E8562704528CD5B46FB12FB6",
    "A5DF7D9D800CA769766F0C77CA4E6E6C",
    "E6E4679647D8A9057C1FC15537CB4C4E",
    "0588185FE1FF8C7E22FAD78C1C61F065",
    "7B60F72A5639C0EE7EB2100FA80BB793",
    "BAA08CA263C69525BC6B1BA8F4275D69",
    "6FD572E5D59E618875F193484F9178FB",
]
DATAENC128 = [
    "A35C412EFD41FDB98B69797C02DCD08F",
    "D639514AA33AC43AD9229E433D6D4E5B",
    "EF17F6AB45B4820C93A3DCB21BC491AD",
    "B3BD44C08BB6BA27C3BB4711D7D70387",
    "CA02DF6F30B39E14BD0B4A30E460920F",
    "C9B8A7C4E486180B2229115164F0B293",
    "0FA8F1F0A2DD7B1005A862D77CDED698",
    "650F34204ABD4E57764D61AC3D266FB1",
]
# "Calculation of AES PIN Block Format 4" (supplement p. 31): PIN 1234,
# PAN 4111111111111111, random fill 2F69ADDE2E9E7ACE, enciphered with PIN128[i].
PINBLOCK128 = [
    "A912150391AB65A67E52883D81CE2D15",
    "52A00503BD34BA1383F6A7EE9FE2547F",
    "A5A27E82B43A9A866A93D7ABE89CEF93",
    "71B3D0528669498777555A8BE6698E44",
    "881A7F77A2E04E5BEA985E342FD0B628",
    "BDC1C3871AFB0B340AA5B5CEFD08695E",
    "4A8E6B8C7DBEE6CBA6DC774F0CB83396",
    "8308BB857C17F390369F761F8EB358FA",
]

# --- AES-256 BDK (dukpt_aes256_test.c) ---
TXN256 = {
    1: "54AC2B32B145EA4A554CB8BC44B17467063A799856B1CCC2A138D36E8DBF78B3",
    2: "5DD5A0253842BBBE1D7C0DA27021412C6F1FAB53FB928DEAE56DA06090A9DE97",
    3: "8EEEF7C464AE415BB1D73FAED21993CD669F7999092A579EC6DD3CC680C65171",
    4: "C18CBED570B3B89ECADA7CEC9C224CD5A86ECF3DE377D3EFAB720F8C4D76B9D0",
    5: "6B3C3C93307151C25DC2309456F01C5C3108DAD571C321899A9B7E0C009FD2EB",
    6: "B8BB61AE3E2D5CD8C699E0C578FB2C7B89B0C0CF02DBAB60864D8049C986C844",
    7: "88D0ACA287B3066F5DE0C93396337D4C2DA8D92C1F720A576D62CEB4C979E01E",
    8: "20A796D5077D51B8E7613893A4F095B134E02917DC84BD391F3661D0873FF308",
    0x0001FFFE: "A289508CBF1228452CD86AB77B15CB35577AC828C18BB66681E5A16D6C9CCED3",
    0x00020000: "D62DDA94A47D7DA5D763443B4ECB15EA8DD62E0E4F915958BA459591F8312E37",
    0x00020001: "44110A1102748D4A3AC326F53D8CAC650212590CA7126D54546DDE0F20E89CEE",
    0xFFFE2000: "4625EB06E4886D4AFCC9AE37ED4F4E4E1653C9E60E3F24742A87A26AA96AB7A6",
    0xFFFE4000: "FF20E1BB575539ACCB44E3111BE8757F83AE8549A2DD71B441A4A424F7FFD4B1",
    0xFFFE8000: "630535C9C53E1EC6524016930B56F6728909C45403536B419AEBCB25B7351C07",
    0xFFFF0000: "6D6DB7AAAE8B3EA90E57A39E4BBA71E173B21B446B30A78D64BFC6A8806C55EE",
}
WORKING256 = {
    (dukpt.PIN_ENCRYPTION, dukpt.AES128): [
        "09C9C432966811D6B2C3336BAC1B1202",
        "D632226A80795D13A80AFE66A3E97B01",
        "C2CBD3D766B16F9F82F4EE3F74478918",
        "58A3779C1E24B3EDAF068609E7E56D59",
        "97504C8BB0FD4D4A88D605143BF00025",
        "BF281141609E6CAE7DF10DFA47A8D03D",
        "B7C6BB187134E9D429C3E8B7CCBD8477",
        "53C1C60A65532313141A102AD720E967",
    ],
    (dukpt.PIN_ENCRYPTION, dukpt.AES256): [
        "8C1AB7BEE973829E30242E0BBBDD4946D540C98FC1B5BDCF94790001A23FD502",
        "3583D6CD02FC38822CC71A8D7678E04F4A8556335E6CC66863D3DADC5AEE2C62",
        "96A1AB5D37CB7CF81DDE64F66C46E0389B833E7AD5F4E44C791F04FAFDA6DA0E",
        "420AA584BF215C4777E93009B56D08DE80687021D07ED96349FF71379CE5636D",
        "B1E9E3D918952E6E5F67917F0FE77060F865AE27DCAD5742DDF90F61453B98BA",
        "8714EB94E3BFD3018EC99D0434D9C94F071AF2EEBF4332FB14F5179793AA582C",
        "693C893A1E81D280302E0A47E7E634337B9A9B26E7CC6064D807E08FF911AFAC",
        "173A45284262A3E292D86D08FD6DE9167963214450D1D48F6103BD2EB08E61B5",
    ],
    (dukpt.MAC_GENERATION, dukpt.AES128): [
        "F04A1FABD4176E15490CEC82E217A96D",
        "DD99D77B4E2AB538B26BB6A8B3FB0BE3",
        "5A742A4A0403B3D7BB30842DAFBB5972",
        "C531F7E08514858C445D5F54BFE7DA8E",
        "E2E25AA7FE6E5DD6042C632A5DFED945",
        "07B215929C5DB4262DECEE4A0336DD4F",
        "3AC9CC5159F96E10FCC5EB64015AC76A",
        "6E94A9283EA9AEB7EAA77C3FF55FF2D1",
    ],
    (dukpt.MAC_GENERATION, dukpt.AES256): [
        "61DABDF4B340CF461EE860B1D1AB55357142BD2D6977306859CF49AEFE8F1549",
        "4417356219B2F93CE3F2671623DDCAB58A8B85AD80662A8D628024000956D426",
        "35BD00A46F2A2BD127F565FBF2974B735AE3BB70242C0A415857CF69B2C2691A",
        "D80617C3C5869A8DCF0DA5383D032A0D6E6C51C0BF649BE992BE84AA191AE326",
        "8B047E32C476C0A0AF90A9B8D1C247C433E3D4C1DF1C7FC52E8CB1DC4C8FB275",
        "A2FF6FFB37CB8042B8C9B2F94C90C83D94DD5BECCD9951CFAB0BE7BD865CA403",
        "E8A57085DBE804B8C2767F9F77D54854861E99633A062C700B4E50A865153150",
        "949A3FEF12DBD273DD25BB60E29BBE313C872A9DE3BE03A7E29626ACA0A42880",
    ],
    (dukpt.DATA_ENCRYPT, dukpt.AES128): [
        "616D59AE91F8CC7016F89FDA29605FA4",
        "07B79D9BFF3633C07A9FDDF132070B30",
        "706E4E629E466BED956548E7B0D90C3D",
        "CF3A4D9CA7E962E4023A84A2FE47DC80",
        "94C28455AEAD970555F326298557FA81",
        "408D3B9A7D1AF109E2F689514BF79AC7",
        "DC2915BF421D617E7725E63A7DACB18D",
        "8950DD50C254C60E26737CA9229F0F18",
    ],
    (dukpt.DATA_ENCRYPT, dukpt.AES256): [
        "71EB36C9A6B7F801D1D1700C29741FC5A5C4E9B45D742DA7AF6992B8AA29AF58",
        "D0AC9F71F875FFFF3A83778F72F39EBB0924A5A526617AF669665E0A19725465",
        "8E70D5DF53F48ED2F2A0B54FC4F45C844579BE96F6F161222CDD50193E2F737F",
        "41D23F7D78E22A978D726BC71D266374263120EE49146CE5C1291FD0EE7DDD31",
        "813D156C142E5BB8F136427EBD0A1AC4DC9B2B5963C481F5E0A58F4BF33BD185",
        "F1FB0591AA2E45E1CE4C5D970C7396C4A87E53E5900C4A6D95C174140CC0AC9C",
        "69BC5C9AFB2C93CC30C3F7529360B34D7B64B7206E0F0940D8654378C54824F2",
        "0BF8789A21D068410A16C9F7FCBF65A7B4FF73203ADC0F1B4B5E5BF8050E4284",
    ],
}


def ksn(counter):
    return dukpt.make_ksn(IK_ID, counter)


def test_initial_key_aes128():
    """X9.24-3-2017 supplement, AES-128 BDK: Initial Key (openemv/dukpt test/dukpt_aes128_test.c)."""
    assert dukpt.derive_initial_key(BDK128, IK_ID).hex().upper() == IK128


def test_initial_key_aes256():
    """X9.24-3-2017 supplement, AES-256 BDK: Initial Key (openemv/dukpt test/dukpt_aes256_test.c)."""
    assert dukpt.derive_initial_key(BDK256, IK_ID).hex().upper() == IK256


@pytest.mark.parametrize("counter", sorted(TXN128))
def test_transaction_keys_aes128(counter):
    """X9.24-3-2017 supplement pp. 2, 5, 6: intermediate derivation keys, AES-128 BDK
    (openemv/dukpt test/dukpt_aes128_test.c)."""
    key = dukpt.derive_transaction_key(H(IK128), ksn(counter))
    assert key.hex().upper() == TXN128[counter]


@pytest.mark.parametrize("counter", sorted(TXN256))
def test_transaction_keys_aes256(counter):
    """X9.24-3-2017 supplement pp. 7, 10, 12: intermediate derivation keys, AES-256 BDK
    (openemv/dukpt test/dukpt_aes256_test.c)."""
    key = dukpt.derive_transaction_key(H(IK256), ksn(counter))
    assert key.hex().upper() == TXN256[counter]


@pytest.mark.parametrize("i", range(8))
def test_working_keys_aes128_bdk(i):
    """X9.24-3-2017 supplement p. 2: PIN, MAC generation and data encryption keys for
    counters 1-8, AES-128 BDK (openemv/dukpt test/dukpt_aes128_test.c), via the host API."""
    k = ksn(FIRST_EIGHT[i])
    assert dukpt.host_derive_working_key(BDK128, k, dukpt.PIN_ENCRYPTION).hex().upper() == PIN128[i]
    assert dukpt.host_derive_working_key(BDK128, k, dukpt.MAC_GENERATION).hex().upper() == MACGEN128[i]
    assert dukpt.host_derive_working_key(BDK128, k, dukpt.DATA_ENCRYPT).hex().upper() == DATAENC128[i]


@pytest.mark.parametrize("usage,key_type", sorted(WORKING256))
def test_working_keys_aes256_bdk(usage, key_type):
    """X9.24-3-2017 supplement pp. 7 and 13: AES-128 and AES-256 PIN, MAC generation and
    data encryption keys for counters 1-8, AES-256 BDK (openemv/dukpt test/dukpt_aes256_test.c)."""
    got = [
        dukpt.host_derive_working_key(BDK256, ksn(c), usage, key_type).hex().upper()
        for c in FIRST_EIGHT
    ]
    assert got == WORKING256[(usage, key_type)]


@pytest.mark.parametrize("i", range(8))
def test_format4_pin_blocks_end_to_end(i):
    """X9.24-3-2017 supplement p. 31 "Calculation of AES PIN Block Format 4": PIN 1234,
    PAN 4111111111111111, random fill 2F69ADDE2E9E7ACE, AES-128 BDK, counters 1-8
    (openemv/dukpt test/dukpt_aes128_test.c, encrypted_pinblock_verify)."""
    key = dukpt.host_derive_working_key(BDK128, ksn(FIRST_EIGHT[i]), dukpt.PIN_ENCRYPTION)
    fill = lambda n: H("2F69ADDE2E9E7ACE")
    block = pinblock.encipher_iso4(key, bytearray(b"1234"), "4111111111111111", fill)
    assert block.hex().upper() == PINBLOCK128[i]
    assert pinblock.decipher_iso4(key, block, "4111111111111111") == bytearray(b"1234")


def test_terminal_reproduces_first_eight_published_keys():
    """Terminal side (registers, no BDK) gives the supplement's PIN and MAC generation keys
    for counters 1-8, AES-128 (openemv/dukpt test/dukpt_aes128_test.c)."""
    terminal = dukpt.DukptTerminal.load_initial_key(H(IK128), IK_ID)
    for i in range(8):
        state, k, keys = terminal.next_transaction()
        assert k == ksn(FIRST_EIGHT[i])
        assert keys.pin_key().hex().upper() == PIN128[i]
        assert keys.mac_request_key().hex().upper() == MACGEN128[i]
        assert keys.data_request_key().hex().upper() == DATAENC128[i]


def test_terminal_aes256_reproduces_published_keys():
    """Terminal side with an AES-256 IK: AES-256 and AES-128 PIN keys for counters 1-8
    (openemv/dukpt test/dukpt_aes256_test.c)."""
    terminal = dukpt.DukptTerminal.load_initial_key(H(IK256), IK_ID)
    for i in range(8):
        _, _, keys = terminal.next_transaction()
        assert keys.pin_key(dukpt.AES256).hex().upper() == WORKING256[(dukpt.PIN_ENCRYPTION, dukpt.AES256)][i]
        assert keys.pin_key().hex().upper() == WORKING256[(dukpt.PIN_ENCRYPTION, dukpt.AES128)][i]


def test_counter_with_17_bits_is_rejected():
    """The supplement also lists counter 0x1FFFF, which has 17 one-bits; X9.24-3-2017 never
    issues it (at most 16), so the host refuses it (openemv/dukpt comments it out too)."""
    with pytest.raises(SecurityError):
        dukpt.host_derive_working_key(BDK128, ksn(0x0001FFFF), dukpt.PIN_ENCRYPTION)


# Cross-implementation vectors. The X9 supplement as transcribed by openemv/dukpt does
# not list keys for every usage ("X9.24-3:2017 does not provide test vectors for the
# response MAC key"), so these come from an independent implementation:
#   5n00py/paysec, crates/paysec-dukpt/tests/test_working_key.rs
#   (commit 2f5de1deb6ae72935e4b689ec2f8c50de4a5aa5a), AES-128 BDK above.
# They agree with every supplement value that file repeats, but are weaker evidence.
ALL_USAGES_COUNTER1 = [
    (dukpt.KEY_ENCRYPTION_KEY, "36A724B7BEFA5A25F5E7B5782A4554A2"),
    (dukpt.PIN_ENCRYPTION, "AF8CB133A78F8DC2D1359F18527593FB"),
    (dukpt.MAC_GENERATION, "A2DC23DE6FDE0824A2BC321E08E4B8B7"),
    (dukpt.MAC_VERIFICATION, "DBB463945B286C07CD3AD82EE96FD9C9"),
    (dukpt.MAC_BOTH_WAYS, "85675439D18D7F1158BD8E3EAA3D502B"),
    (dukpt.DATA_ENCRYPT, "A35C412EFD41FDB98B69797C02DCD08F"),
    (dukpt.DATA_DECRYPT, "16292C6EA8F64C5420A0584BFBC577BE"),
    (dukpt.DATA_BOTH_WAYS, "A308E080DD15A1B741F1721BF67DE11C"),
]


@pytest.mark.parametrize("usage,expected", ALL_USAGES_COUNTER1)
def test_all_usages_counter_1(usage, expected):
    """Every working-key usage for KSN ...00000001, AES-128 BDK
    (5n00py/paysec crates/paysec-dukpt/tests/test_working_key.rs)."""
    assert dukpt.host_derive_working_key(BDK128, ksn(1), usage).hex().upper() == expected


def test_response_keys_from_terminal_match_cross_implementation():
    """Terminal's response keys (MAC verification, data decrypt) for counter 1
    (5n00py/paysec crates/paysec-dukpt/tests/test_working_key.rs)."""
    terminal = dukpt.DukptTerminal.load_initial_key(H(IK128), IK_ID)
    _, _, keys = terminal.next_transaction()
    assert keys.mac_response_key().hex().upper() == "DBB463945B286C07CD3AD82EE96FD9C9"
    assert keys.data_response_key().hex().upper() == "16292C6EA8F64C5420A0584BFBC577BE"


@pytest.mark.parametrize(
    "counter,pin,mac,data",
    [
        (0x0001FFFE, "DDF7E08A84B5478C498D007C743BF762", "6D7623AD652734B8FAE1B6E093EACE3D", "8E4E5D5E0F01C54F01F4ACA1C8F8EDCE"),
        (0x00020000, "AB828BE7B58C7EC5D5ED0D5D320A0C9D", "0B59D3D7D93028D97135FB895CACE24E", "13361208975755318FE7AE28C9616014"),
    ],
)
def test_rollover_working_keys_cross_implementation(counter, pin, mac, data):
    """PIN / MAC generation / data encryption keys at the 0x1FFFE -> 0x20000 rollover,
    AES-128 BDK (5n00py/paysec crates/paysec-dukpt/tests/test_working_key.rs)."""
    k = ksn(counter)
    assert dukpt.host_derive_working_key(BDK128, k, dukpt.PIN_ENCRYPTION).hex().upper() == pin
    assert dukpt.host_derive_working_key(BDK128, k, dukpt.MAC_GENERATION).hex().upper() == mac
    assert dukpt.host_derive_working_key(BDK128, k, dukpt.DATA_ENCRYPT).hex().upper() == data
