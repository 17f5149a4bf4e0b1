"""Input stage: read, validate, de-duplicate and shard proteins."""

from structure_tokens.formats.shards import Protein, read_shard, write_shard
from structure_tokens.inputs.prepare import InputOptions, prepare_inputs
from structure_tokens.inputs.readers import open_source, read_demo, read_fasta, read_proteinlmbench, read_uniprot
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.validate import sequence_hash

__all__ = ["InputOptions", "InputRecord", "Protein", "open_source", "prepare_inputs", "read_demo", "read_fasta",
           "read_proteinlmbench", "read_shard", "read_uniprot", "sequence_hash", "write_shard"]
