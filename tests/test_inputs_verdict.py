"""The per-record verdict (`validate.judge`): every rule of `prepare`, without files or state."""

from __future__ import annotations

import pytest

from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.validate import ESM2_WINDOW, RecordRules, judge, sequence_hash

LONG = "M" + "A" * 1499  # 1,500 residues


def record(input_id="p1", sequence="MKV", **texts) -> InputRecord:
    return InputRecord("mem", 7, input_id, sequence, **texts)


@pytest.mark.parametrize("rec, rules, earlier, code, reason", [
    (record("p\ufffd1"), RecordRules(), None, "invalid_utf8", "id 'p\ufffd1' has bytes that are not UTF-8"),
    (record("a/b"), RecordRules(), None, "unsafe_id", "unsafe id 'a/b'"),
    (record(""), RecordRules(), 3, "unsafe_id", "empty id"),  # the id itself first, then its repetition
    (record("p1"), RecordRules(), 3, "duplicate_id", "duplicate id p1 (first at record 3)"),
    (record("p1", "MKX"), RecordRules(), 3, "duplicate_id", "duplicate id p1"),  # before the sequence
    (record("p1", None), RecordRules(), None, "no_sequence", "record has no sequence"),
    (record("p1", "MKXA"), RecordRules(), None, "unknown_residue", "unknown residue X at position 3"),
    (record("p1", "MKU"), RecordRules(nonstandard_residues="reject"), None, "nonstandard_residue",
     "non-standard residue U at position 3"),
    (record("p1", "MK"), RecordRules(min_length=3), None, "too_short", "length 2 < min_length 3"),
    (record("p1", "MKVW"), RecordRules(max_length=3), None, "too_long", "length 4 > max_length 3"),
    (record("p1", LONG), RecordRules(long_policy="skip"), None, "too_long",
     "length 1500 > 1022, the model's window (model.long_policy: skip)"),
    (record("p1", LONG), RecordRules(max_length=1200, long_policy="truncate"), None, "too_long",
     "length 1500 > max_length 1200"),  # max_length is applied to the sequence as read
])
def test_skipped_records_have_a_reason_and_a_code(rec, rules, earlier, code, reason):
    verdict = judge(rec, rules, earlier)
    assert not verdict.kept and verdict.sequence is None
    assert verdict.code == code and verdict.reason.startswith(reason)


def test_length_skips_still_give_the_sequence_hash():
    verdict = judge(record("p1", "mk v"), RecordRules(min_length=5))
    assert (verdict.digest, verdict.length) == (sequence_hash("MKV"), 3)


def test_kept_records_carry_the_sequence_that_is_embedded():
    verdict = judge(record("p1", "mkuv*"), RecordRules())
    assert verdict.kept and verdict.sequence == "MKCV" and verdict.reason == verdict.code == ""
    assert (verdict.digest, verdict.length, verdict.notes, verdict.counted) == (sequence_hash("MKCV"), 4, (), ())


@pytest.mark.parametrize("policy, length", [("windows", 1500), ("truncate", ESM2_WINDOW)])
def test_long_sequences_follow_the_long_policy(policy, length):
    verdict = judge(record("p1", LONG), RecordRules(long_policy=policy))
    assert verdict.kept and len(verdict.sequence) == verdict.length == length
    assert verdict.digest == sequence_hash(LONG[:length])
    if policy == "truncate":
        assert verdict.notes == ("truncated from 1500 to 1022 residues (model.long_policy: truncate)",)
        assert verdict.counted == ("truncated",)


def test_text_that_is_not_utf8_is_noted_not_skipped():
    verdict = judge(record("p1", "MKV", description="caf\ufffd", function="binds\ufffd"), RecordRules())
    assert verdict.kept
    assert verdict.notes == ("bytes that are not UTF-8 in the description, shown as U+FFFD",
                             "bytes that are not UTF-8 in the function, shown as U+FFFD")
    assert verdict.counted == ("invalid_utf8_text",)


def test_rules_come_from_the_input_section_and_are_checked():
    assert InputOptions(min_length=5, max_length=9, nonstandard_residues="reject").rules("skip") == RecordRules(
        "reject", 5, 9, "skip")
    with pytest.raises(ValueError, match="long_policy must be one of"):
        RecordRules(long_policy="cut")
    with pytest.raises(ValueError, match="nonstandard_residues must be one of"):
        RecordRules(nonstandard_residues="drop")
