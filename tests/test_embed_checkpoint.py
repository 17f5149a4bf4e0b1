"""ESM-2 checkpoints: the released on-disk format, safe (weights_only) loading, download errors."""

from __future__ import annotations

import argparse
import datetime
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import esm
import pytest
import torch
from conftest import REPO

from structure_tokens.embed.checkpoint import (RANDOM_WEIGHTS_MARKER, WeightsUnavailableError, download_weights,
                                               hub_checkpoint_path, load_esm2, regression_path, safe_load,
                                               write_random_esm2_checkpoint)
from structure_tokens.formats.provenance import FAIR_ESM_RELEASE, RANDOM_TEST_WEIGHTS, UNKNOWN_WEIGHTS


def test_random_checkpoint_has_the_released_layout_and_loads(tiny_checkpoint):
    data = safe_load(tiny_checkpoint)
    # the released layout, plus the marker that says the weights are random
    assert set(data) == {"model", "cfg", RANDOM_WEIGHTS_MARKER} and isinstance(data["cfg"]["model"], argparse.Namespace)
    assert data["cfg"]["model"].encoder_layers == 2 and data["cfg"]["model"].token_dropout is True
    keys = set(data["model"])
    assert all(k.startswith(("encoder.sentence_encoder.", "encoder.lm_head.")) for k in keys)
    assert "encoder.sentence_encoder.layers.0.self_attn.rot_emb.inv_freq" in keys
    assert "encoder.sentence_encoder.emb_layer_norm_after.weight" in keys
    regression = safe_load(regression_path(tiny_checkpoint))
    assert set(regression["model"]) == {"contact_head.regression.weight", "contact_head.regression.bias"}
    model, alphabet, name, weights = load_esm2(tiny_checkpoint)
    assert (name, weights) == (tiny_checkpoint.stem, RANDOM_TEST_WEIGHTS)
    assert model.num_layers == 2 and model.embed_dim == 32
    assert not model.training and alphabet.padding_idx == 1


def test_loading_gives_fair_esms_model_without_building_a_random_one_first(tmp_path, monkeypatch):
    path = write_random_esm2_checkpoint(tmp_path / "esm2_t2_32.pt")
    reference, alphabet = esm.pretrained.load_model_and_alphabet_core(
        "esm2_t2_32", safe_load(path), safe_load(regression_path(path)))
    initialised = []

    def record(tensor, *args, **kwargs):
        initialised.append(tensor.shape)

    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", record)
    model, _, *_ = load_esm2(path)
    assert not initialised  # no random initialisation, later overwritten
    assert torch.nn.init.kaiming_uniform_ is record  # and the initialisers are back
    assert model.state_dict().keys() == reference.state_dict().keys()
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    _, _, tokens = alphabet.get_batch_converter()([("p", "MKTAYIAKQRQISFVK")])
    with torch.no_grad():
        assert torch.equal(model(tokens, repr_layers=[2])["representations"][2],
                           reference.eval()(tokens, repr_layers=[2])["representations"][2])


def test_tied_weights_and_other_dtypes_load_as_fair_esm_loads_them(tmp_path):
    path = write_random_esm2_checkpoint(tmp_path / "esm2_t1_16.pt", num_layers=1, embed_dim=16, attention_heads=2)
    data = safe_load(path)  # a file whose LM head differs from the input embedding, stored in float16
    data["model"]["encoder.lm_head.weight"] = torch.randn_like(data["model"]["encoder.lm_head.weight"])
    data["model"] = {name: value.half() if value.is_floating_point() else value
                     for name, value in data["model"].items()}
    torch.save(data, path)
    model, alphabet, *_ = load_esm2(path)
    reference, _ = esm.pretrained.load_model_and_alphabet_core(
        "esm2_t1_16", safe_load(path), safe_load(regression_path(path)))
    assert model.lm_head.weight is model.embed_tokens.weight
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    _, _, tokens = alphabet.get_batch_converter()([("p", "MKTAYIAKQRQISFVK")])
    with torch.no_grad():
        assert torch.equal(model(tokens)["logits"], reference.eval()(tokens)["logits"])


def test_loading_does_not_import_torch_dynamo(tiny_checkpoint):
    """Building on the meta device would import torch._dynamo: about 1 s of every embed job."""
    code = ("import sys\nfrom structure_tokens.embed.checkpoint import load_esm2\n"
            f"load_esm2({str(tiny_checkpoint)!r})\nprint('torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "False"


def test_weights_are_mapped_from_the_file_and_legacy_format_files_still_load(tmp_path, tiny_checkpoint):
    model, _, *_ = load_esm2(tiny_checkpoint)
    mapped = [tuple(int(address, 16) for address in line.split()[0].split("-"))
              for line in Path("/proc/self/maps").read_text().splitlines()
              if line.endswith(str(tiny_checkpoint.resolve()))]
    assert any(start <= model.layers[0].fc1.weight.data_ptr() < end for start, end in mapped)  # no copy in memory
    legacy = tmp_path / tiny_checkpoint.name  # the pre-1.6 torch.save format cannot be mapped: it is read
    with torch.serialization.safe_globals([argparse.Namespace]):
        torch.save(torch.load(tiny_checkpoint, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    shutil.copy(regression_path(tiny_checkpoint), regression_path(legacy))
    legacy_model, _, *_ = load_esm2(legacy)
    for name, value in model.state_dict().items():
        assert torch.equal(legacy_model.state_dict()[name], value), name


def test_loading_without_the_regression_file_still_works(tmp_path):
    path = write_random_esm2_checkpoint(tmp_path / "esm2_t1_16.pt", num_layers=1, embed_dim=16, attention_heads=2)
    regression_path(path).unlink()
    with pytest.warns(UserWarning, match="Regression weights not found"):
        model, _, *_ = load_esm2(path)
    assert model.num_layers == 1


def test_a_checkpoint_needing_other_globals_is_refused_by_name(tmp_path):
    path = tmp_path / "esm2_evil.pt"
    torch.save({"model": {}, "cfg": {"model": argparse.Namespace(x=1), "when": datetime.date(2026, 1, 1)}}, path)
    refused = r"esm2_evil.pt: refused to load: it needs the global\(s\) datetime.date,"
    with pytest.raises(ValueError, match=refused) as info:
        load_esm2(path)
    assert "weights_only=False" not in str(info.value)


def test_damaged_or_foreign_files_get_a_clear_error(tmp_path, tiny_checkpoint):
    truncated = tmp_path / "esm2_truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:2000])
    with pytest.raises(ValueError, match="esm2_truncated.pt: not a readable PyTorch checkpoint"):
        load_esm2(truncated)
    foreign = tmp_path / "esm2_plain_state_dict.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="esm2_plain_state_dict.pt: not an ESM-2 checkpoint in the released"):
        load_esm2(foreign)
    with pytest.raises(FileNotFoundError, match="esm2_missing.pt"):
        load_esm2(tmp_path / "esm2_missing.pt")


def test_a_truncated_zip_or_legacy_checkpoint_is_named_as_damaged(tmp_path, tiny_checkpoint):
    legacy = tmp_path / "legacy.pt"
    torch.save(safe_load(tiny_checkpoint), legacy, _use_new_zipfile_serialization=False)
    for source in (tiny_checkpoint, legacy):
        damaged = tmp_path / f"cut_{source.name}"
        damaged.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        with pytest.raises(ValueError, match=f"cut_{source.name}: not a readable PyTorch checkpoint "
                                             r"\(truncated or corrupt\?\)") as info:
            load_esm2(damaged)
        assert "weights_only" not in str(info.value)


@pytest.mark.parametrize("save", ["plain pickle", "legacy torch.save"])
def test_a_pickle_needing_other_globals_is_refused_without_unsafe_advice(tmp_path, tiny_checkpoint, save):
    """A raw pickle of numpy weights or a legacy-format file with foreign objects: refused, naming what it
    needs; never called damaged, never told to load with weights_only=False."""
    path = tmp_path / "weights.pt"
    if save == "plain pickle":
        data = {"model": {k: v.numpy() for k, v in safe_load(tiny_checkpoint)["model"].items()}}
        path.write_bytes(pickle.dumps(data))
    else:
        torch.save({"model": {}, "when": datetime.date(2026, 1, 1)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"weights.pt: refused to load: it needs the global\(s\) "
                                         + ("numpy" if save == "plain pickle" else "datetime.date")) as info:
        load_esm2(path)
    assert "corrupt" not in str(info.value) and "weights_only=False" not in str(info.value)


def test_any_file_name_loads_its_architecture_from_the_file(tmp_path):
    """No `esm2*` name needed: a 3-layer file called `finetuned.pt` loads as a 3-layer ESM-2."""
    path = write_random_esm2_checkpoint(tmp_path / "finetuned.pt", num_layers=3, embed_dim=16, attention_heads=2)
    model, _, name, _ = load_esm2(path)
    assert (model.num_layers, model.embed_dim, name) == (3, 16, "finetuned")


def test_offline_download_says_how_to_supply_weights(tmp_path, monkeypatch):
    def offline(url, dst, progress=True):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError, match=r"copying esm2_t6_8M_UR50D.pt and "
                                                      r"esm2_t6_8M_UR50D-contact-regression.pt into .*checkpoints/, "
                                                      r"or set model.checkpoint"):
        download_weights("esm2_t6_8M_UR50D", tmp_path)
    assert not list((tmp_path / "checkpoints").iterdir())  # no half-written file left
    with pytest.raises(ValueError, match="unknown ESM-2 model 'esm3'"):
        download_weights("esm3", tmp_path)


def test_download_is_skipped_when_the_files_are_there(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded again"))
    path = hub_checkpoint_path("esm2_t6_8M_UR50D", tmp_path)
    assert path == tmp_path / "checkpoints" / "esm2_t6_8M_UR50D.pt"
    path.parent.mkdir(parents=True)
    path.touch()
    regression_path(path).touch()
    assert download_weights("esm2_t6_8M_UR50D", tmp_path) == path


def without_random_marker(path: Path) -> Path:
    """The checkpoint re-saved as a trained one would be: the released keys only (written beside it and
    renamed over it: the loaded tensors are memory-mapped from the old file)."""
    data = safe_load(path)
    del data[RANDOM_WEIGHTS_MARKER]
    torch.save(data, path.with_suffix(".new"))
    path.with_suffix(".new").replace(path)
    return path


@pytest.mark.parametrize(("name", "layers", "marked", "origin"), [
    ("esm2_t6_8M_UR50D", 6, True, RANDOM_TEST_WEIGHTS),  # random weights under a released name: flagged
    ("esm2_t6_8M_UR50D", 6, False, FAIR_ESM_RELEASE),  # a released name with its depth, no marker
    ("esm2_tiny_finetuned", 2, False, UNKNOWN_WEIGHTS),  # "tiny" in the name says nothing: not flagged as random
    ("esm2_t6_8M_UR50D", 2, False, UNKNOWN_WEIGHTS),  # a released name but another depth
])
def test_weights_origin_is_read_from_the_checkpoint_not_its_name(tmp_path, name, layers, marked, origin):
    path = write_random_esm2_checkpoint(tmp_path / f"{name}.pt", num_layers=layers, embed_dim=16, attention_heads=2)
    if not marked:
        without_random_marker(path)
    loaded = load_esm2(path)
    assert loaded.weights == origin
    assert loaded.provenance(layers).weights == origin and loaded.provenance(layers).dim == 16
