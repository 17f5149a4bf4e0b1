"""How config reaches the package: command-line values typed, options built from their sections, checks."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from structure_tokens.config import check_config, coerce_yaml_scalars
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.evaluation.options import EvaluationOptions
from structure_tokens.llm.options import OutputOptions

from conftest import REPO



def test_options_take_their_fields_from_a_section_and_validate_them():
    assert EmbedOptions.from_config({"layer": 3, "name": "esm2_t6_8M_UR50D", "device": "cpu"}) == \
        EmbedOptions(layer=3, device="cpu")  # `name` belongs to fetch_model, not to the embedder
    with pytest.raises(ValueError, match="evaluation.secondary_structure must be one of"):
        EvaluationOptions.from_config({"secondary_structure": "stride"})
    with pytest.raises(ValueError, match="llm.vocab_offset must be >= 0"):
        OutputOptions.from_config({"vocab_offset": -1})



@pytest.mark.parametrize("config, message", [
    ({"finetune": {"fractions": {"train": 0.5, "validation": 0.1, "test": 0.1}}},
     r"finetune.fractions .* must be >= 0 and sum to 1"),
    ({"finetune": {"split_method": "clusters"}}, "finetune.split_method 'clusters' needs finetune.clusters_tsv"),
    ({"input": {"min_length": 50, "max_length": 30}}, r"input.max_length \(30\) is below input.min_length \(50\)"),
    ({"input": {"source": "fasta"}}, "input.source 'fasta' needs input.path"),
    ({"input": {"source": "fasta", "path": "missing.fasta"}}, "input.path: missing.fasta does not exist"),
    ({"codebook": {"k": 512, "max_train_residues": 100}}, r"codebook.max_train_residues \(100\) is below codebook.k"),
    ({"model": {"window_overlap": 1022}}, r"model.window_overlap must be in \[0, 1022\)"),
    ({"evaluation": {"structures": "no/such/folder"}}, "evaluation.structures: no/such/folder does not exist"),
])
def test_check_config_names_the_key_of_a_bad_combination(config, message):
    with pytest.raises(ValueError, match=message):
        check_config(config)


def test_the_default_config_passes_check_config():
    check_config(yaml.safe_load((REPO / "config/config.yaml").read_text()))


def test_workflow_rejects_a_bad_config_before_any_job(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("finetune:\n  fractions: {train: 0.5, validation: 0.1, test: 0.1}\n")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(config), "-n", "--cores", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode != 0
    assert "invalid config: finetune.fractions" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_model_layer_out_of_range_fails_when_the_workflow_starts_naming_the_key(tmp_path, tiny_checkpoint):
    """`model.layer` is checked against the released model's depth (from its name) or, for a local
    checkpoint, against the depth in the file's config, before any job runs."""
    check_config({"model": {"name": "esm2_t6_8M_UR50D", "layer": -7}})  # -7: the input embedding of 6 layers
    with pytest.raises(ValueError, match=r"model.layer: 7 is outside the model's layers: 0..6"):
        check_config({"model": {"name": "esm2_t6_8M_UR50D", "layer": 7}})
    check_config({"model": {"checkpoint": str(tiny_checkpoint), "layer": 2}})
    with pytest.raises(ValueError, match=r"model.layer: 3 is outside the model's layers: 0..2"):
        check_config({"model": {"checkpoint": str(tiny_checkpoint), "layer": 3}})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": {"checkpoint": str(tiny_checkpoint), "layer": 5}}))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "-n", "--configfile", str(config)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode != 0 and "invalid config: model.layer: 5 is outside" in result.stdout + result.stderr


def test_command_line_values_are_read_as_yaml_where_the_schema_wants_no_string():
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    config = {"keep_embeddings": "false", "output_dir": "123", "codebook": {"k": "64", "train_shards": "null",
                                                                             "holdout_fraction": "0.2"},
              "input": {"path": "null", "num_proteins": "many"}, "finetune": {"fractions": {"train": "1"}}}
    coerce_yaml_scalars(config, schema)
    assert config == {"keep_embeddings": False, "output_dir": "123",  # a string where the schema wants one
                      "codebook": {"k": 64, "train_shards": None, "holdout_fraction": 0.2},
                      "input": {"path": "null", "num_proteins": "many"},  # left for the schema to reject
                      "finetune": {"fractions": {"train": 1}}}


def readme_config_examples() -> list[list[str]]:
    """Every `snakemake ... --config ...` command of README.md and docs/*.md, split as the shell would."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    commands = re.findall(r"^(snakemake [^\n`]*--config [^\n`]*)$", text, flags=re.M)
    return [shlex.split(command)[1:] for command in commands]


@pytest.mark.parametrize("args", readme_config_examples(), ids=" ".join)
def test_readme_config_examples_work_as_written(tmp_path, args):
    """Each example as a dry run from the repository root; through the SLURM profile without conda
    (none here), and without --conda-create-envs-only, which needs conda."""
    args = [arg for arg in args if arg != "--conda-create-envs-only"]
    env = dict(os.environ, STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT="none")
    out = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                          str(tmp_path), *args, "-n"], capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-5000:]
    assert "This was a dry-run" in out.stdout


def test_readme_has_config_examples():
    assert {"keep_embeddings=false", "codebook={k: 64, train_shards: 20}", "cuda_variant=cu12"} <= {
        arg for args in readme_config_examples() for arg in args}
