"""ESM-2 per-residue embeddings: token-budget batches over length-sorted proteins, half precision on
GPU, fused attention, overlapping windows for proteins longer than the model's context."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping, Sequence

import esm
import h5py
import numpy as np
import torch

from structure_tokens.embed.attention import cast_model, enable_fast_attention
from structure_tokens.embed.checkpoint import load_esm2
from structure_tokens.embed.gpu import build_description, missing_kernels, unusable_cuda_advice
from structure_tokens.embed.options import DTYPE_NAMES, WINDOW, EmbedOptions, resolve_layer
from structure_tokens.embed.progress import ShardProgress
from structure_tokens.formats.embeddings import EmbeddingWriter
from structure_tokens.formats.provenance import Provenance
from structure_tokens.formats.resumable import ResumableShardWriter
from structure_tokens.formats.shards import Protein, read_shard

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}
CPU_TOKEN_BUDGET = 2048
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """A stretch ``[start, start + len(sequence))`` of protein ``index`` embedded in one pass."""

    index: int
    start: int
    sequence: str


def window_starts(length: int, overlap: int) -> list[int]:
    """Starts of windows of ``WINDOW`` residues, consecutive ones sharing ``overlap``, covering ``length``."""
    if length <= WINDOW:
        return [0]
    step = WINDOW - overlap
    starts = list(range(0, length - WINDOW, step))
    return starts + [length - WINDOW]


GPU_ALLOCATION_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")
NO_GPU_VALUES = ("", "-1", "NoDevFiles")


def allocated_gpus(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables by which SLURM (or the user) gave this process GPUs, e.g. ``{"SLURM_JOB_GPUS": "0"}``."""
    found = {}
    for name in GPU_ALLOCATION_VARIABLES:
        value = environ.get(name, "").strip()
        if value not in NO_GPU_VALUES and not (name == "SLURM_GPUS_ON_NODE" and value == "0"):
            found[name] = value
    return found


def resolve_device(requested: str) -> torch.device:
    """The device for ``model.device``: ``auto`` is CUDA when torch can use it, else the CPU.

    A job that was given a GPU never runs on the CPU by accident: with ``auto`` or ``cuda`` and a GPU
    allocated but unusable by torch (a CPU-only build, a driver too old for the build), or a GPU
    the build has no kernels for, this raises with the driver, the build and what to do
    (structure_tokens.embed.gpu). ``cpu`` always gives the CPU, on purpose.
    """
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda" if requested == "auto" else requested)
        problem = missing_kernels(device.index or 0)
        if problem:
            raise RuntimeError(f"model.device is {requested!r}, but {problem}")
        return device
    gpus = allocated_gpus()
    if requested == "auto" and not gpus:
        return torch.device("cpu")
    given = ("this job was given GPUs (" + ", ".join(f"{k}={v}" for k, v in gpus.items()) + ")" if gpus
             else "no GPU is visible")
    raise RuntimeError(f"model.device is {requested!r} and {given}, but {build_description()} cannot use CUDA. "
                       f"{unusable_cuda_advice()} To run on the CPU on purpose, set model.device: cpu.")


def padded_tokens(batch: list[Piece]) -> int:
    """Tokens of a padded batch: its size times its longest piece plus BOS and EOS."""
    return len(batch) * (max(len(p.sequence) for p in batch) + 2)


class Embedder:
    """Embeds proteins with one loaded model; reusable across shards and by benchmarks."""

    def __init__(self, model: torch.nn.Module, alphabet: Any, options: EmbedOptions = EmbedOptions()):
        self.options = options
        self.device = resolve_device(options.device)
        if options.dtype == "auto":
            self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        else:
            self.dtype = DTYPES[options.dtype]
        self.model = cast_model(model.eval(), self.device, self.dtype)  # weights cast once
        self.fast_attention_modules = enable_fast_attention(self.model) if options.fast_attention else 0
        self.layer = resolve_layer(options.layer, model.num_layers)
        self.converter = alphabet.get_batch_converter()
        self.oom_splits = 0
        # On a CPU, small batches stay in cache: capped at CPU_TOKEN_BUDGET (measured faster, see
        # docs/benchmarks.md). On a GPU the configured budget applies, lowered by out-of-memory errors.
        self.token_budget = (options.token_budget if self.device.type == "cuda"
                             else min(options.token_budget, CPU_TOKEN_BUDGET))
        self.max_batch_tokens = self.token_budget
        self.skipped: list[int] = []
        self.tokens_run = self.real_tokens_run = 0  # tokens of the forward passes, and those not padding

    def pieces(self, proteins: Sequence[Protein]) -> list[Piece]:
        """What is run through the model: whole proteins, or windows / truncations of long ones."""
        pieces = []
        for index, protein in enumerate(proteins):
            sequence = protein.sequence
            if len(sequence) <= WINDOW or self.options.long_policy == "windows":
                pieces += [Piece(index, s, sequence[s:s + WINDOW])
                           for s in window_starts(len(sequence), self.options.window_overlap)]
            elif self.options.long_policy == "truncate":
                log.warning("%s: %d residues, truncated to the first %d", protein.id, len(sequence), WINDOW)
                pieces.append(Piece(index, 0, sequence[:WINDOW]))
            else:
                log.warning("%s: %d residues > %d, skipped (long_policy: skip)", protein.id, len(sequence), WINDOW)
        return pieces

    def batches(self, pieces: list[Piece]) -> list[list[Piece]]:
        """Length-sorted batches whose padded size (tokens incl. BOS/EOS) fits the token budget."""
        ordered = sorted(pieces, key=lambda p: (-len(p.sequence), p.index, p.start))
        batches: list[list[Piece]] = []
        for piece in ordered:  # descending lengths: the first piece of a batch is its longest
            if batches and (len(batches[-1]) + 1) * (len(batches[-1][0].sequence) + 2) <= self.token_budget:
                batches[-1].append(piece)
            else:
                batches.append([piece])
        return batches

    @torch.inference_mode()
    def _run(self, batch: list[Piece], on_device: bool) -> "InFlight":
        """Launch one forward pass; its float16 representations come to the host in one copy, or stay
        on the device with ``on_device``.

        On CUDA the copy into pinned memory is asynchronous: the host can queue the next batch
        (and write earlier results) while this one computes. On CPU everything is already done.
        """
        _, _, tokens = self.converter([(str(i), p.sequence) for i, p in enumerate(batch)])
        self.tokens_run += tokens.numel()
        self.real_tokens_run += sum(len(p.sequence) + 2 for p in batch)
        out = self.model(tokens.to(self.device, non_blocking=True), repr_layers=[self.layer])
        representations = out["representations"][self.layer].to(torch.float16)
        if self.device.type != "cuda" or on_device:
            return InFlight(batch, representations, None)
        host = torch.empty(representations.shape, dtype=torch.float16, pin_memory=True)
        host.copy_(representations, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record()
        return InFlight(batch, host, copied)

    def _forward(self, batch: list[Piece], on_device: bool) -> list["InFlight"]:
        """Launch a batch, halving it on CUDA out-of-memory.

        Each out-of-memory split is counted in ``oom_splits`` and lowers ``max_batch_tokens``, so
        later batches of the same size are split before they run instead of failing again.
        """
        if len(batch) > 1 and padded_tokens(batch) > self.max_batch_tokens:
            return self._split(batch, on_device)
        try:
            return [self._run(batch, on_device)]
        except torch.cuda.OutOfMemoryError:
            if len(batch) == 1:
                raise
        # retried outside the handler: its traceback would keep the failed pass's tensors alive
        torch.cuda.empty_cache()
        self.oom_splits += 1
        self.max_batch_tokens = padded_tokens(batch) - 1
        log.warning("CUDA out of memory on a batch of %d (%d tokens); halving it", len(batch),
                    padded_tokens(batch))
        return self._split(batch, on_device)

    def _split(self, batch: list[Piece], on_device: bool) -> list["InFlight"]:
        half = len(batch) // 2
        return self._forward(batch[:half], on_device) + self._forward(batch[half:], on_device)

    def plan(self, proteins: Sequence[Protein]) -> "Plan":
        """The forward batches that embed ``proteins`` (a resumed run replays the same plan)."""
        pieces = self.pieces(proteins)
        embedded = {p.index for p in pieces}
        return Plan(self.batches(pieces), [i for i in range(len(proteins)) if i not in embedded], self.device.type)

    def embed(self, proteins: Sequence[Protein]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index into proteins, (length, dim) float16)`` in processing order (see :meth:`embed_batches`)."""
        for finished in self.embed_batches(proteins):
            yield from finished

    def embed_batches(self, proteins: Sequence[Protein], plan: "Plan | None" = None, done: Collection[int] = (),
                      on_device: bool = False) -> Iterator[list[tuple[int, Any]]]:
        """After each forward batch, the proteins it finished: ``[(index into proteins, (length, dim) float16)]``,
        numpy arrays on the host, or, with ``on_device``, tensors left on the model's device (so that
        only what is computed from them, such as tokens, needs to leave it).

        The next batch is launched before a batch's results are handed out, so on a GPU the caller's
        work on them (writing, token assignment) overlaps the next forward pass. If launching fails,
        the results already computed are handed out before the error is raised.
        Windowed proteins are finished once all their windows are done, each residue averaged over
        the windows that cover it; truncated ones have ``WINDOW`` rows. Proteins skipped by
        ``long_policy: skip`` never appear: their indices are in ``skipped`` once this is exhausted.
        Proteins in ``done`` are not handed out, and batches holding only such proteins are not run:
        the other batches are exactly those of a run without ``done``, so their values are too.
        """
        plan = plan or self.plan(proteins)
        self.skipped = plan.skipped
        done = set(done)
        batches = [batch for batch in plan.batches if any(p.index not in done for p in batch)]
        windows_left: dict[int, int] = {}
        for piece in (piece for batch in batches for piece in batch if piece.index not in done):
            windows_left[piece.index] = windows_left.get(piece.index, 0) + 1
        partial: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def finish(launched: list[InFlight]) -> list[tuple[int, Any]]:
            finished = []
            for piece, rep in ((piece, rep) for part in launched for piece, rep in part.results()):
                if piece.index in done:
                    continue  # stored already; it shares the batch with proteins that are not
                if windows_left[piece.index] == 1 and piece.index not in partial:
                    finished.append((piece.index, rep))
                    continue
                length = len(proteins[piece.index].sequence)
                total, count = partial.setdefault(piece.index, (
                    torch.zeros((length, rep.shape[1]), dtype=torch.float32, device=rep.device),
                    torch.zeros((length, 1), dtype=torch.float32, device=rep.device)))
                total[piece.start:piece.start + len(rep)] += rep.float()
                count[piece.start:piece.start + len(rep)] += 1
                windows_left[piece.index] -= 1
                if windows_left[piece.index] == 0:
                    del partial[piece.index]
                    finished.append((piece.index, (total / count).half()))  # the same float32 mean, rounded
            return finished if on_device else [(index, rep.numpy()) for index, rep in finished]

        previous: list[InFlight] | None = None
        for batch in batches:
            try:
                launched = self._forward(batch, on_device)
            except BaseException:
                if previous is not None:
                    yield finish(previous)  # computed before the failure: not lost
                raise
            if previous is not None:
                yield finish(previous)
            previous = launched
        if previous is not None:
            yield finish(previous)


@dataclass
class Plan:
    """The forward batches of a shard, the proteins ``long_policy: skip`` leaves out, the device type."""

    batches: list[list[Piece]]
    skipped: list[int]
    device_type: str

    def fingerprints(self) -> dict[int, str]:
        """Per protein index, a digest of the forward batches its values come from.

        A batch's values depend on every sequence in it (padding, kernel choice), so a stored protein
        equals a clean run's only if its batches are the same: a resumed run reuses it only then.
        """
        keys: dict[int, list[str]] = {}
        for batch in self.batches:
            key = hashlib.sha256("\n".join([self.device_type] + [p.sequence for p in batch]).encode()).hexdigest()
            for piece in batch:
                keys.setdefault(piece.index, []).append(key)
        return {index: hashlib.sha256(" ".join(batch_keys).encode()).hexdigest()[:32]
                for index, batch_keys in keys.items()}


@dataclass
class InFlight:
    """A launched forward pass: its pieces and the tensor holding its representations (pinned host
    memory they are being copied to on CUDA, else the model's output itself)."""

    pieces: list[Piece]
    host: torch.Tensor
    copied: Any  # torch.cuda.Event on a GPU, None when the tensor is ready

    def results(self) -> list[tuple[Piece, torch.Tensor]]:
        """Each piece with its ``(len(piece.sequence), dim)`` float16 representations (BOS/EOS stripped),
        views of the host tensor (or of the device tensor, when results stay on the device)."""
        if self.copied is not None:
            self.copied.synchronize()
        return [(piece, self.host[i, 1:len(piece.sequence) + 1]) for i, piece in enumerate(self.pieces)]


def load_embedder(checkpoint: str | os.PathLike, options: EmbedOptions) -> tuple[Embedder, Provenance]:
    """An :class:`Embedder` of a checkpoint (:func:`load_esm2`) and the provenance of its embeddings."""
    loaded = load_esm2(checkpoint)
    embedder = Embedder(loaded.model, loaded.alphabet, options)
    return embedder, loaded.provenance(embedder.layer)


def embedding_attrs(provenance: Provenance, embedder: Embedder) -> dict[str, Any]:
    """Provenance and settings attributes of an embedding shard (docs/DESIGN.md)."""
    return {
        **provenance.attrs(),
        "compute_dtype": str(embedder.dtype).removeprefix("torch."),
        "long_policy": embedder.options.long_policy,
        "window": WINDOW,
        "window_overlap": embedder.options.window_overlap,
        "torch_version": torch.__version__,
        "esm_version": esm.__version__,
        "h5py_version": h5py.__version__,
        "numpy_version": np.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def resume_keys(proteins: Sequence[Protein], plan: Plan) -> list[tuple[str, str, str]]:
    """``(id, sequence_hash, batch fingerprint)`` per protein: what a stored result must match to be reused."""
    fingerprints = plan.fingerprints()
    return [(p.id, p.sequence_hash, fingerprints.get(i, "")) for i, p in enumerate(proteins)]


def stored_indices(writer: ResumableShardWriter, proteins: Sequence[Protein]) -> set[int]:
    """Indices of the proteins an interrupted run already stored in ``writer``'s batches."""
    stored = writer.done_ids  # a property that waits for queued writes: read it once
    return {i for i, protein in enumerate(proteins) if protein.id in stored}


def shard_progress(shard_tsv: str | os.PathLike, embedder: Embedder, proteins: Sequence[Protein], plan: Plan,
                   done: Collection[int]) -> ShardProgress:
    """Progress over the proteins of ``plan`` that are not ``done``, named after the shard."""
    todo = [i for i in range(len(proteins)) if i not in done and i not in plan.skipped]
    return ShardProgress(Path(shard_tsv).stem, embedder, n_proteins=len(todo),
                         n_residues=sum(proteins[i].length for i in todo), log=log)


def embed_shard(shard_tsv: str | os.PathLike, checkpoint: str | os.PathLike, out_h5: str | os.PathLike,
                options: EmbedOptions = EmbedOptions(), log: logging.Logger = log) -> dict[str, Any]:
    """Embed one shard into ``out_h5``, resuming after the batches an interrupted run finished.

    Progress is logged at a bounded rate (:mod:`structure_tokens.embed.progress`). Proteins left
    out by ``long_policy: skip`` are listed in the file's ``skipped_ids`` dataset and in the
    returned stats, which also hold the shard's throughput numbers.
    """
    proteins = read_shard(shard_tsv)
    embedder, provenance = load_embedder(checkpoint, options)
    attrs = embedding_attrs(provenance, embedder)
    plan = embedder.plan(proteins)
    with EmbeddingWriter(out_h5, proteins=resume_keys(proteins, plan), embed_dim=provenance.dim,
                         attrs=attrs) as writer:
        done = stored_indices(writer, proteins)
        if done:
            log.info("%s: %d proteins already embedded by an interrupted run", out_h5, len(done))
        progress = shard_progress(shard_tsv, embedder, proteins, plan, done)
        for finished in embedder.embed_batches(proteins, plan, done):
            for index, embedding in finished:
                writer.add(proteins[index].id, embedding)
            writer.flush()  # each forward batch is stored as it finishes: a killed job loses at most one
            progress.add(len(finished), sum(proteins[index].length for index, _ in finished))
        skipped = writer.skipped_ids = [proteins[i].id for i in plan.skipped]
    return {"n_proteins": len(proteins), "embedded_now": progress.proteins, "resumed": len(done),
            "skipped_ids": skipped, "n_residues": progress.residues, **progress.finish()}
