"""The contract's value codecs (featurelib.contract): the read path's fast decoders equal the general one."""

from __future__ import annotations

import pytest
from feast.value_type import ValueType

from featurelib import contract

CASES = [
    (ValueType.DOUBLE, [b"0.1", b"-0.0", b"1e-05", b"123", b"nan", b"inf", b"-inf", b"Infinity", b"1.7976931348623157e+308"]),
    (ValueType.FLOAT, [b"0.10000000149011612", b"-3", b"inf"]),
    (ValueType.INT64, [b"0", b"-7", b"9223372036854775807", b"-9223372036854775808"]),
    (ValueType.INT32, [b"42", b"-2147483648"]),
    (ValueType.BOOL, [b"true", b"false"]),
    (ValueType.STRING, [b"", b"x: y", "naïve + 100%".encode()]),
    (ValueType.BYTES, [b"\x00\xff:"]),
    (ValueType.UNIX_TIMESTAMP, [b"1795694400123456", b"0"]),
    (ValueType.STRING_LIST, [b'["DE","US"]', b"[]"]),
    (ValueType.DOUBLE_LIST, [b'[0.5,"nan","-inf"]']),
]


@pytest.mark.parametrize(("value_type", "raw"), [(t, r) for t, raws in CASES for r in raws])
def test_fast_decoder_equals_decode_proto(value_type: ValueType, raw: bytes) -> None:
    codec = contract.codec(value_type)
    assert codec.decoder()(raw).SerializeToString() == codec.decode_proto(raw).SerializeToString()


@pytest.mark.parametrize(("value_type", "raw"), [(ValueType.INT64, b"1.5"), (ValueType.INT64, b"x"),
                                                  (ValueType.DOUBLE, b"one"), (ValueType.BOOL, b"True"),
                                                  (ValueType.BOOL, b"1")])
def test_fast_decoder_rejects_what_decode_proto_rejects(value_type: ValueType, raw: bytes) -> None:
    codec = contract.codec(value_type)
    with pytest.raises(ValueError):
        codec.decode_proto(raw)
    with pytest.raises(ValueError):
        codec.decoder()(raw)


def test_hash_keys_is_hash_key_of_every_row() -> None:
    ids = ["card_1", "a:b", "50%+x", "é"]
    assert contract.hash_keys("features", ["card_id"], [ids], "v") == [
        contract.hash_key("features", ["card_id"], [i], "v") for i in ids]
    merchants = ["m1", "m:2", "m+3", "m%4"]
    assert contract.hash_keys("p", ["merchant_id", "card_id"], [merchants, ids], "v") == [
        contract.hash_key("p", ["merchant_id", "card_id"], [m, i], "v") for m, i in zip(merchants, ids)]
