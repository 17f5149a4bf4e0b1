"""Extending an offline-built Hugging Face tokenizer with the protein vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from structure_tokens.formats.vocab import parse_stream
from structure_tokens.cli import main
from structure_tokens.formats.vocab import render_protein
from structure_tokens.formats.vocab import parse_added_token
from structure_tokens.llm.hf_tokenizer import (MAPPING_FILE, added_token_strings, extend_and_save, extend_tokenizer,
                                               load_token_mapping)
from structure_tokens.formats.vocab import build_vocab, interleave, write_vocab

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEXT = ["What is the function of this protein?", "It binds ATP and hydrolyses it.", "Protein kinase."]


def build_tokenizer(with_pad: bool = False) -> "transformers.PreTrainedTokenizerFast":
    """A tiny lower-casing byte-level BPE tokenizer trained on three sentences; never downloaded."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["<unk>", "<eos>"] + (["[PAD]"] if with_pad else [])
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(TEXT * 5, trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<eos>",
                                                pad_token="[PAD]" if with_pad else None)


def test_every_protein_token_is_one_new_token_and_text_is_untouched():
    tokenizer = build_tokenizer()
    before = len(tokenizer)
    text_ids = tokenizer("Protein kinase.")["input_ids"]
    vocab = build_vocab(16, vocab_offset=100)
    mapping = extend_tokenizer(tokenizer, vocab)
    # 20 amino acids + 16 structure tokens + 2 markers, plus <pad> since the tokenizer had none.
    assert len(tokenizer) == before + 20 + 16 + 2 + 1
    assert tokenizer.pad_token == "<pad>" and mapping.added_tokens[-1] == "<pad>"
    assert tokenizer("Protein kinase.")["input_ids"] == text_ids
    sequence, structure = "MKTAYW", [12, 3, 0, 15, 7, 7]
    text = f"Describe: {render_protein(sequence, structure, vocab, 'interleaved')} Thanks"
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    assert pieces[pieces.index("<protein>"):pieces.index("</protein>") + 1] == [
        "<protein>", "<aa:M>", "<S012>", "<aa:K>", "<S003>", "<aa:T>", "<S000>", "<aa:A>", "<S015>",
        "<aa:Y>", "<S007>", "<aa:W>", "<S007>", "</protein>"]
    decoded = tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True)
    assert parse_stream(decoded, vocab) == (sequence, structure)
    _, vocab_ids = interleave(sequence, structure, vocab)
    assert tokenizer.convert_ids_to_tokens(mapping.to_tokenizer_ids(vocab_ids).tolist()) == pieces[
        pieces.index("<protein>") + 1:pieces.index("</protein>")]
    with pytest.raises(ValueError, match=r"\[100, 139\)"):
        mapping.to_tokenizer_ids([99])


def test_existing_pad_is_reused_and_extension_is_idempotent():
    tokenizer = build_tokenizer(with_pad=True)
    vocab = build_vocab(4)
    first = extend_tokenizer(tokenizer, vocab, combined=True)
    size = len(tokenizer)
    second = extend_tokenizer(tokenizer, vocab, combined=True)
    assert len(tokenizer) == size
    np.testing.assert_array_equal(first.tokenizer_ids, second.tokenizer_ids)
    assert first.tokenizer_ids[-1] == tokenizer.convert_tokens_to_ids("[PAD]")
    assert len(first.combined_tokens) == 20 * 4
    assert tokenizer.convert_ids_to_tokens(tokenizer("<protein><M|S003></protein>")["input_ids"]) == [
        "<protein>", "<M|S003>", "</protein>"]
    assert parse_added_token("<M|S003>") == ("M", "S003")


def test_save_and_reload_with_mapping(tmp_path):
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path / "base")
    write_vocab(tmp_path / "vocab.json", 8, 0, "abc123")
    mapping = extend_and_save(tmp_path / "base", tmp_path / "vocab.json", tmp_path / "extended")
    assert main(["extend-tokenizer", "--tokenizer", str(tmp_path / "base"), "--vocab", str(tmp_path / "vocab.json"),
                 "--out", str(tmp_path / "cli"), "--combined"]) == 0
    assert len(load_token_mapping(tmp_path / "cli" / MAPPING_FILE).combined_tokens) == 20 * 8
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "extended", local_files_only=True)
    stored = load_token_mapping(tmp_path / "extended" / MAPPING_FILE)
    np.testing.assert_array_equal(stored.tokenizer_ids, mapping.tokenizer_ids)
    assert stored.codebook_sha256 == "abc123" and stored.added_tokens == mapping.added_tokens
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    strings = added_token_strings(vocab)
    assert reloaded.convert_tokens_to_ids(strings) == mapping.tokenizer_ids[:-1].tolist()
    records = json.loads((tmp_path / "extended" / MAPPING_FILE).read_text())["tokens"]
    assert records[0] == {"vocab_id": 0, "token": "A", "added_token": "<aa:A>",
                          "tokenizer_id": reloaded.convert_tokens_to_ids("<aa:A>")}
