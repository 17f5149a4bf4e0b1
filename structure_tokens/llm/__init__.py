"""LLM-ready outputs: the tokens table, ``vocab.json`` and interleaved streams (``outputs``),
instruction-tuning data (``finetune``) and Hugging Face tokenizer extension (``hf_tokenizer``)."""
