"""ESM-2 weights: safe loading of the released fair-esm `.pt` format, hub download, test checkpoints.

The released files (``esm2_t33_650M_UR50D.pt``) are ``{"model": state_dict, "cfg": {"model":
argparse.Namespace(...)}, ...}`` with keys prefixed ``encoder.sentence_encoder.`` / ``encoder.``,
next to ``<name>-contact-regression.pt``. PyTorch >= 2.6 unpickles with ``weights_only=True``;
the only non-tensor global these files need is ``argparse.Namespace``, so that alone is allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import esm
import torch

from structure_tokens.embed.options import ESM2_LAYERS
from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.provenance import FAIR_ESM_RELEASE, RANDOM_TEST_WEIGHTS, UNKNOWN_WEIGHTS, Provenance

ESM2_MODELS = tuple(ESM2_LAYERS)
MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"
ALLOWED_GLOBALS = [argparse.Namespace]
RANDOM_WEIGHTS_MARKER = "structure_tokens_random_weights"  # top-level key of write_random_esm2_checkpoint's files
log = logging.getLogger(__name__)


def regression_path(checkpoint: str | os.PathLike) -> Path:
    """The contact-regression file that fair-esm expects next to a checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}-contact-regression.pt")


def safe_load(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``, allowing only the globals ESM-2 files need.

    Tensors are memory-mapped from the file (zip format, as ``torch.save`` writes since PyTorch
    1.6), not read into fresh memory: a job loads 650M weights in 0.5 s instead of 1.8 s
    (docs/benchmarks.md). A file that needs any other global, or that is not a readable
    checkpoint, raises a ``ValueError`` naming the file and the problem (never falls back to full
    unpickling).
    """
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise ValueError(_load_problem(path, error)) from None


def _load_problem(path: str | os.PathLike, error: Exception) -> str:
    """Why ``path`` could not be loaded safely: the globals it needs beyond the allow-list, or damage."""
    allowed = [f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS]
    # what torch's weights-only unpickler accepts anyway (tensors, storages), as get_unsafe_globals_in_checkpoint
    torch_allowed = set(torch._weights_only_unpickler._get_allowed_globals())
    unsafe = [name for name in dict.fromkeys(_pickled_globals(path))
              if name not in allowed and name not in torch_allowed]
    if unsafe:
        return (f"{path}: refused to load: it needs the global(s) {', '.join(unsafe)}, outside the "
                f"allow-list {allowed} of the released ESM-2 format (a file in that format holds tensors "
                "and one argparse.Namespace; re-save the weights that way with torch.save)")
    if isinstance(error, pickle.UnpicklingError):  # torch's own text would advise an unsafe load
        return f"{path}: refused to load: not a checkpoint in the released ESM-2 format (torch.save of tensors)"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {reason}"


def _pickled_globals(path: str | os.PathLike) -> list[str]:
    """``module.name`` of every global the checkpoint's pickles refer to (zip, legacy or plain pickle files).

    A legacy ``torch.save`` file is four pickles (magic number, protocol, system info, data) and
    then raw storage bytes, where the scan stops.
    """
    if zipfile.is_zipfile(path):
        try:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError):
            return []
    found: list[str] = []
    with open(path, "rb") as handle:
        for _ in range(4):
            strings: list[str] = []
            try:
                for opcode, arg, _ in pickletools.genops(handle):
                    if opcode.name == "GLOBAL":
                        found.append(arg.replace(" ", "."))
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(".".join(strings[-2:]))
                    elif isinstance(arg, str):
                        strings.append(arg)
            except (ValueError, EOFError):  # not (or no longer) a pickle
                break
    return found


@contextlib.contextmanager
def _random_init_skipped() -> Iterator[None]:
    """Modules built inside allocate their parameters (untouched memory) but skip ``torch.nn.init``.

    The cheap alternative to building on the ``meta`` device, whose first use imports
    ``torch._dynamo`` (about 1 s per job, measured). It switches ``torch.nn.init`` off for the whole
    process while it lasts: only for loading, before any other thread builds modules.
    """
    initialisers = {name: getattr(torch.nn.init, name) for name in dir(torch.nn.init)
                    if name.endswith("_") and not name.startswith("_")}
    for name in initialisers:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, initialiser in initialisers.items():
            setattr(torch.nn.init, name, initialiser)


def build_esm2(model_data: dict[str, Any], regression_data: dict[str, Any] | None) -> tuple[torch.nn.Module, Any]:
    """fair-esm's ``load_model_and_alphabet_core`` for ESM-2, without the random initialisation it
    then overwrites (4.5 s of 6-10 s for 650M): the model is built without random initialisation
    and takes the checkpoint's tensors as its parameters, without copying them (float32 ones; others
    are converted to float32, as fair-esm's copy does). Same keys checked, same weights, and the
    input embedding and the LM head share one weight again, the LM head's value as with fair-esm.

    Without a contact-regression file its two weights stay zero (fair-esm leaves them random):
    contact prediction is not used here.
    """
    if regression_data is not None:
        model_data["model"].update(regression_data["model"])
    with _random_init_skipped():
        model, alphabet, state = esm.pretrained._load_model_and_alphabet_core_v2(model_data)
    state = {name: value.float() if value.is_floating_point() else value for name, value in state.items()}
    shared: dict[int, list[str]] = {}  # parameters registered under several names (tied weights)
    for name, parameter in model.named_parameters(remove_duplicate=False):
        shared.setdefault(id(parameter), []).append(name)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    for names in (names for names in shared.values() if len(names) > 1):  # assigning untied them
        kept = model.get_parameter(names[-1])  # loaded last: the value a copy into one tensor keeps
        for name in names[:-1]:
            module, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(module), attribute, kept)
    optional = set() if regression_data is not None else {"contact_head.regression.weight",
                                                          "contact_head.regression.bias"}
    if set(missing) - optional or unexpected:
        raise RuntimeError(f"missing keys {sorted(set(missing) - optional)}, unexpected keys {sorted(unexpected)}")
    if missing:
        warnings.warn("Regression weights not found, predicting contacts will not produce correct results.")
    with torch.no_grad():
        for name in missing:
            model.get_parameter(name).zero_()
    return model, alphabet


class LoadedESM2(NamedTuple):
    """An ESM-2 model loaded by :func:`load_esm2`, with its name and the origin of its weights."""

    model: torch.nn.Module
    alphabet: Any
    name: str  # the checkpoint's file name without .pt
    weights: str  # structure_tokens.formats.provenance.WEIGHT_ORIGINS

    def provenance(self, layer: int) -> Provenance:
        """The provenance of this model's embeddings at representation ``layer`` (resolved, >= 0)."""
        return Provenance(self.name, layer, self.model.embed_dim, self.weights)


def weights_origin(model_data: dict[str, Any], name: str) -> str:
    """Where a checkpoint's weights come from, decided from the loaded file: the random-test marker
    of :func:`write_random_esm2_checkpoint`, else a released model's name with its depth, else unknown."""
    if model_data.get(RANDOM_WEIGHTS_MARKER):
        return RANDOM_TEST_WEIGHTS
    depth = getattr(model_data.get("cfg", {}).get("model"), "encoder_layers", None)
    return FAIR_ESM_RELEASE if ESM2_LAYERS.get(name) == depth else UNKNOWN_WEIGHTS


def load_esm2(checkpoint: str | os.PathLike) -> LoadedESM2:
    """``(model, alphabet, name, weights)`` from a local fair-esm ESM-2 checkpoint, model in eval mode.

    ``name`` is the file name without ``.pt``; the model's shape comes from the file's config, and
    ``weights`` from the file's content (:func:`weights_origin`).
    """
    checkpoint = Path(checkpoint)
    model_name = checkpoint.stem  # any file name: the architecture is read from the file's own config
    if not checkpoint.is_file():
        raise FileNotFoundError(f"ESM-2 checkpoint not found: {checkpoint}")
    model_data = safe_load(checkpoint)
    regression = regression_path(checkpoint)
    regression_data = safe_load(regression) if regression.is_file() else None
    try:
        model, alphabet = build_esm2(model_data, regression_data)
    except (KeyError, AttributeError, TypeError, RuntimeError) as error:
        raise ValueError(f"{checkpoint}: not an ESM-2 checkpoint in the released fair-esm format "
                         f"({type(error).__name__}: {error})") from error
    return LoadedESM2(model.eval(), alphabet, model_name, weights_origin(model_data, model_name))


def checkpoint_num_layers(checkpoint: str | os.PathLike) -> int:
    """Transformer layers of an ESM-2 checkpoint, from its config (weights memory-mapped, not read)."""
    try:
        return int(safe_load(checkpoint)["cfg"]["model"].encoder_layers)
    except (KeyError, AttributeError, TypeError) as error:
        raise ValueError(f"{checkpoint}: not an ESM-2 checkpoint in the released fair-esm format "
                         f"(no model config: {type(error).__name__}: {error})") from None


def hub_checkpoint_path(model_name: str, cache_dir: str | os.PathLike) -> Path:
    """``<cache_dir>/checkpoints/<name>.pt``: the layout of torch.hub and fair-esm."""
    return Path(cache_dir) / "checkpoints" / f"{model_name}.pt"


class WeightsUnavailableError(RuntimeError):
    """The weights could not be downloaded; the message says how to supply them instead."""


def download_weights(model_name: str, cache_dir: str | os.PathLike) -> Path:
    """Download a released ESM-2 model and its contact regression into the cache (once).

    Raises :class:`WeightsUnavailableError` (offline, blocked) with what to do instead.
    """
    if model_name not in ESM2_MODELS:
        raise ValueError(f"unknown ESM-2 model {model_name!r}; expected one of {ESM2_MODELS}")
    path = hub_checkpoint_path(model_name, cache_dir)
    # the model file last: once it exists, both are complete (the workflow defines no download then)
    targets = {regression_path(path): REGRESSION_URL.format(name=model_name),
               path: MODEL_URL.format(name=model_name)}
    for target, url in targets.items():
        if target.is_file():
            continue
        log.info("downloading %s -> %s", url, target)
        try:
            with atomic_output(target) as tmp:
                torch.hub.download_url_to_file(url, str(tmp), progress=False)
        except Exception as error:
            raise WeightsUnavailableError(
                f"could not download ESM-2 weights for {model_name} ({error}). Supply them by copying "
                f"{model_name}.pt and {model_name}-contact-regression.pt into {path.parent}/, or set "
                "model.checkpoint in the config to a local .pt file in the fair-esm format."
            ) from error
    return path


def write_random_esm2_checkpoint(path: str | os.PathLike, *, num_layers: int = 2, embed_dim: int = 32,
                                 attention_heads: int = 4, seed: int = 0) -> Path:
    """A randomly initialised ESM-2 in the released on-disk format (for tests and benchmarks), marked
    as random (:data:`RANDOM_WEIGHTS_MARKER`) whatever its file name."""
    path = Path(path)
    torch.manual_seed(seed)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(num_layers=num_layers, embed_dim=embed_dim, attention_heads=attention_heads,
                                alphabet=alphabet, token_dropout=True)
    state = model.state_dict()
    regression = {k: v for k, v in state.items() if k.startswith("contact_head.regression.")}
    released = {(f"encoder.{k}" if k.startswith("lm_head.") else f"encoder.sentence_encoder.{k}"): v
                for k, v in state.items() if k not in regression}
    cfg = argparse.Namespace(arch="esm2", encoder_layers=num_layers, encoder_embed_dim=embed_dim,
                             encoder_ffn_embed_dim=4 * embed_dim, encoder_attention_heads=attention_heads,
                             token_dropout=True, max_positions=1024)
    with atomic_output(path) as tmp:
        torch.save({"model": released, "cfg": {"model": cfg}, RANDOM_WEIGHTS_MARKER: True}, tmp)
    with atomic_output(regression_path(path)) as tmp:
        torch.save({"model": regression}, tmp)
    return path
