"""``sft/README.md``: a Hugging Face dataset card, so the instruction-data folder can be pushed to a hub as it is.

The YAML header declares the Parquet files of each split (``configs``), the columns and the
split sizes (``dataset_info``) and the licence; the text says how the data was made and whose
data it is, from the manifest of :func:`structure_tokens.llm.finetune.write_finetune_data`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from structure_tokens.formats.atomic import atomic_output

COLUMNS = {"id": "string", "aliases": "list of string", "split": "string", "instruction": "string",
           "protein": "string", "prompt": "string", "completion": "string", "n_residues": "int64"}
# input.source -> (licence id on the hub, attribution text)
SOURCES = {
    "demo": ("cc-by-4.0", "The proteins, their names and function texts are UniProtKB/Swiss-Prot entries, "
                          "(c) The UniProt Consortium, licensed under CC BY 4.0. Cite: The UniProt Consortium, "
                          "\"UniProt: the Universal Protein Knowledgebase\", Nucleic Acids Research."),
    "uniprot": ("cc-by-4.0", "The proteins, their names and function texts are UniProtKB entries, (c) The UniProt "
                             "Consortium, licensed under CC BY 4.0. Cite: The UniProt Consortium, \"UniProt: the "
                             "Universal Protein Knowledgebase\", Nucleic Acids Research."),
    "proteinlmbench": ("other", "Instructions, sequences and answers come from the Hugging Face dataset "
                                "tsynbio/ProteinLMBench (subset UniProt_Function); its dataset card gives its "
                                "licence and citation. Its sequences and function texts derive from UniProtKB "
                                "(CC BY 4.0, The UniProt Consortium)."),
    "fasta": ("other", "The proteins come from the user's FASTA file: its licence and attribution apply, e.g. "
                       "CC BY 4.0 and a citation of The UniProt Consortium for UniProtKB sequences."),
}
TARGET_TEXTS = {"function": "function text",  # finetune.target -> what the completion is
                "description": "description (the text of its FASTA header, or its UniProt protein name)"}
FEATURE_TYPES = {"string": "    dtype: string", "int64": "    dtype: int64",
                 "list of string": "    sequence: string"}


def dataset_card(manifest: Mapping[str, Any], source: str) -> str:
    """The text of ``README.md`` for an SFT folder described by ``manifest``, made from ``input.source``."""
    licence, attribution = SOURCES.get(source, SOURCES["fasta"])
    splits = {name: info for name, info in manifest["splits"].items() if info["files"]}
    header = ["---", f"license: {licence}", "language:", "- en", "tags:", "- biology", "- protein",
              "- structure-tokens", "- esm-2", "task_categories:", "- text-generation", "configs:",
              "- config_name: default", "  data_files:"]
    for name in splits:
        header += [f"  - split: {name}", f"    path: data/{name}-*.parquet"]
    header += ["dataset_info:", "  features:"]
    for column, kind in COLUMNS.items():
        header += [f"  - name: {column}", FEATURE_TYPES[kind]]
    header += ["  splits:"]
    for name, info in splits.items():
        header += [f"  - name: {name}", f"    num_examples: {info['examples']}"]
    header.append("---")
    split = manifest["split"]
    target = TARGET_TEXTS[manifest.get("target", "function")]
    warnings = "".join(f"\n**Warning:** {warning}.\n" for warning in manifest.get("warnings", []))
    fractions = ", ".join(f"{name} {value:g}" for name, value in split["fractions"].items())
    sizes = "\n".join(f"| {name} | {info['examples']} | {info['groups']} | {info['residues']} |"
                      for name, info in manifest["splits"].items())
    body = f"""
# Structure-token instruction data
{warnings}
Instruction-tuning rows for a protein-language LLM: each row asks about one protein, given as
amino acids and discrete structure tokens (format `{manifest['format']}`), and the completion is
the protein's {target}. Made by the structure-tokens pipeline
(`snakemake`, rules `finetune_shard` and `finetune_data`); `manifest.json` beside this card has
every count and the SHA-256 of every file. `data/<split>-NNNNN.parquet` (and
`jsonl/<split>-NNNNN.jsonl`, the same rows) are numbered per split; a file holds rows of one
pipeline shard.

## How it was made

- Per-residue embeddings from ESM-2 `{manifest['model_name']}` (layer {manifest['layer']}) were
  assigned to the nearest of K={manifest['k']} k-means centroids (codebook SHA-256
  `{manifest['codebook_sha256']}`): structure tokens `S000`..`S{manifest['k'] - 1:03d}`.
- The protein is rendered in the `{manifest['format']}` format with the added-token strings of the
  run's `vocab.json` (first added token id {manifest['vocab_offset']}); extend your tokenizer with
  them before training (`structure_tokens.llm.hf_tokenizer.extend_tokenizer`).
- `prompt` is `{split_repr(manifest['prompt_template'])}` filled with the instruction (default
  "{manifest['instruction_default']}") and the protein; `completion` is the {target}.
  Proteins without it are left out ({manifest['counts']['without_target']} of
  {manifest['counts']['proteins_read']}).
- Splits: by `{split['method']}` (identical sequences{' or cluster members' if split['method'] == 'clusters' else ''}
  never fall in two splits), seeded hash with seed {split['seed']}, target fractions {fractions}.

## Splits

| split | rows | groups | residues |
|---|---|---|---|
{sizes}

## Columns

{chr(10).join(f"- `{column}` ({kind})" for column, kind in COLUMNS.items())}

## Licence and attribution

{attribution}
"""
    return "\n".join(header) + "\n" + body


def split_repr(template: str) -> str:
    """A prompt template on one line, newlines shown as ``\\n``."""
    return template.replace("\n", "\\n")


def write_dataset_card(out_dir: str | os.PathLike, manifest: Mapping[str, Any], source: str) -> Path:
    """Write ``<out_dir>/README.md`` atomically; return its path."""
    path = Path(out_dir) / "README.md"
    with atomic_output(path) as tmp:
        tmp.write_text(dataset_card(manifest, source))
    return path
