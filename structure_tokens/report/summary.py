"""``report/summary.md``: a short human-readable account of a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.provenance import weights_note, weights_of
from structure_tokens.formats.vocab import structure_token_names


def format_value(value: Any) -> str:
    """Numbers with sensible precision, ``n/a`` for missing values."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return f"{len(value)} entries"
    return str(value)


def mapping_lines(mapping: Mapping[str, Any], indent: str = "") -> list[str]:
    """A nested bullet list of a JSON object (lists are shown by their length)."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            lines.append(f"{indent}- {key}:" if value else f"{indent}- {key}: none")
            lines += mapping_lines(value, indent + "  ")
        else:
            lines.append(f"{indent}- {key}: {format_value(value)}")
    return lines


def codebook_table(codebook_summary: Mapping[str, Any], training: Mapping[str, Any]) -> list[str]:
    """The codebook quality metrics as a markdown table."""
    per_protein = codebook_summary.get("unique_tokens_per_protein", {})
    rows = [
        ("utilization (codes used / K)", codebook_summary.get("utilization")),
        ("perplexity of code usage", codebook_summary.get("perplexity")),
        ("normalized entropy", codebook_summary.get("normalized_entropy")),
        ("dead codes", codebook_summary.get("dead_codes")),
        ("tiny codes (< 0.01% of residues)", codebook_summary.get("tiny_codes")),
        ("inertia (training sample)", codebook_summary.get("inertia")),
        ("train MSE", codebook_summary.get("train_mse")),
        ("held-out MSE", codebook_summary.get("heldout_mse")),
        ("training / held-out residues", f"{training.get('n_train')} / {training.get('n_heldout')}"),
        ("k-means iterations, seconds", f"{training.get('iterations')}, {format_value(training.get('seconds'))}"),
        ("tokenized proteins / residues",
         f"{codebook_summary.get('n_proteins')} / {codebook_summary.get('n_residues')}"),
        ("distinct tokens per protein (mean, median, min, max)",
         ", ".join(format_value(per_protein.get(key)) for key in ("mean", "median", "min", "max"))),
        ("codebook sha256", f"`{codebook_summary.get('codebook_sha256')}`"),
    ]
    return ["| metric | value |", "|---|---|", *(f"| {name} | {format_value(value)} |" for name, value in rows)]


def example_lines(codebook_summary: Mapping[str, Any]) -> list[str]:
    """The example proteins of the codebook summary as a table of their first structure tokens."""
    names = structure_token_names(codebook_summary["k"])
    lines = ["| protein | length | first structure tokens |", "|---|---|---|"]
    for example in codebook_summary.get("examples", []):
        head = " ".join(names[t] for t in example["tokens_head"])
        more = " …" if example["length"] > len(example["tokens_head"]) else ""
        lines.append(f"| {example['id']} | {example['length']} | `{head}`{more} |")
    return lines


def finetune_lines(manifest: Mapping[str, Any]) -> list[str]:
    """Examples per split of the instruction data, proteins left out, and its warnings first."""
    counts, target = manifest["counts"], manifest.get("target", "function")
    lines = [f"WARNING: {warning}." for warning in manifest.get("warnings", [])]
    lines += ["" if lines else None,
              f"- completion text: `{target}`; {counts['without_target']} of {counts['proteins_read']} proteins "
              f"have none and are left out",
              *(f"- {split}: {info['examples']} examples" for split, info in manifest["splits"].items())]
    return [line for line in lines if line is not None]


def write_summary_md(
    out_md: str | os.PathLike,
    *,
    prepare_summary: Mapping[str, Any],
    codebook_summary: Mapping[str, Any],
    training: Mapping[str, Any],
    files: Mapping[str, Sequence[str | os.PathLike]],
    finetune_manifest: Mapping[str, Any] | None = None,
) -> str:
    """Write the run summary (inputs, model, codebook metrics, examples, instruction data, files);
    return its text."""
    out_md = Path(out_md)
    model_name, k, weights = codebook_summary["model_name"], codebook_summary["k"], weights_of(codebook_summary)
    lines = [f"# Structure tokens: run summary (K={k})", ""]
    note = weights_note(model_name, weights)
    if note:
        lines += [f"WARNING: {note}.", ""]
    lines += ["## Inputs", "", *mapping_lines(prepare_summary), ""]
    lines += ["## Model", "", f"- model: `{model_name}`", f"- layer: {codebook_summary['layer']}",
              f"- weights: {weights}",
              f"- embedding dim: {codebook_summary.get('dim', training.get('dim'))}", ""]
    lines += ["## Codebook", "", *codebook_table(codebook_summary, training), ""]
    lines += ["## Example tokenized proteins", "", *example_lines(codebook_summary), ""]
    if finetune_manifest is not None:
        lines += ["## Instruction data (sft/)", "", *finetune_lines(finetune_manifest), ""]
    lines += ["## Files", ""]
    for label, paths in files.items():
        for path in paths:
            relative = os.path.relpath(path, out_md.parent)
            lines.append(f"- {label}: [{relative}]({relative})")
            if str(path).endswith(".png"):
                lines.append(f"\n  ![{Path(path).stem}]({relative})")
    text = "\n".join(lines) + "\n"
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(text)
    return text
