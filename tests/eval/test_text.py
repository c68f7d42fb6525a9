"""Caption metrics against hand-computed values, OPSIN round trips on real PubChem names,
retrieval metrics on hand-made similarity matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from nltk.translate.bleu_score import corpus_bleu
from nltk.translate.meteor_score import meteor_score

from molfm.data.sources.pubchem_names import parse_identifier_lines
from molfm.eval.text import (
    caption_metrics,
    opsin_name_check,
    pubchem_name_for_opsin,
    retrieval_metrics,
    wordpiece_tokens,
)

DATA = Path(__file__).resolve().parents[1] / "data"
KEYS = ("bleu2", "bleu4", "meteor", "rouge1", "rouge2", "rougeL")


# ----------------------------------------------------------------------------- captions
def test_identical_texts_score_one():
    texts = [
        "The molecule is a monocarboxylic acid anion that is the conjugate base of lactic acid.",
        "5-acetamido-2,4-bis(oxidanyl)-6-[1,2,3-tris(oxidanyl)propyl]oxane-2-carboxylic acid",
    ]
    got = caption_metrics(texts, texts)
    for key in KEYS:
        if key != "meteor":
            assert got[key] == pytest.approx(1.0), key
    # METEOR keeps a fragmentation penalty for one chunk of m words: 1 - 0.5 * (1/m)^3
    m = [len(wordpiece_tokens(t)) for t in texts]
    assert got["meteor"] == pytest.approx(np.mean([1 - 0.5 / k**3 for k in m]))
    assert got["meteor"] > 0.999
    assert got["n"] == 2 and got["meteor_matching"] == "exact+stem"


def test_disjoint_texts_score_zero():
    got = caption_metrics(["benzene ring with chlorine atoms"], ["water salt of sodium"])
    for key in KEYS:
        assert got[key] == pytest.approx(0.0), key


def test_partial_overlap_by_hand_and_against_nltk():
    pred, ref = "the cat sat on a mat", "the cat sat on the mat"
    got = caption_metrics([pred], [ref], tokenizer=str.split)
    # clipped n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths (no brevity penalty)
    assert got["bleu2"] == pytest.approx((5 / 6 * 3 / 5) ** 0.5)
    assert got["bleu4"] == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    # 5 aligned words, Fmean 5/6. nltk aligns exact matches greedily from the end, so the
    # prediction's "the" takes the reference's second "the": 3 chunks, penalty 0.5 * (3/5)^3
    assert got["meteor"] == pytest.approx(5 / 6 * (1 - 0.5 * 0.6**3))
    assert got["rouge1"] == pytest.approx(5 / 6)
    assert got["rouge2"] == pytest.approx(3 / 5)
    assert got["rougeL"] == pytest.approx(5 / 6)  # LCS "the cat sat on mat"
    p, r = pred.split(), ref.split()
    assert got["bleu4"] == pytest.approx(corpus_bleu([[r]], [p]))
    assert got["meteor"] == pytest.approx(meteor_score([r], p, wordnet=_NoWordNet()))


class _NoWordNet:
    def synsets(self, word):
        return []


def test_whitespace_bleu_by_hand_and_against_nltk():
    """Whitespace tokens, case kept, whatever the WordPiece tokenizer: an IUPAC name part is
    one token, so a wrong locant costs the whole word."""
    preds = ["2-methyl propan-1-ol", "The molecule is an acid"]
    refs = ["2-methyl propan-2-ol", "The molecule is a weak acid"]
    got = caption_metrics(preds, refs)  # the default (MiniLM WordPiece) tokenizer
    tokens_p, tokens_r = [p.split() for p in preds], [[r.split()] for r in refs]
    assert got["bleu2_whitespace"] == pytest.approx(corpus_bleu(tokens_r, tokens_p, (0.5, 0.5)))
    assert got["bleu4_whitespace"] == pytest.approx(corpus_bleu(tokens_r, tokens_p))
    # by hand: unigrams 1 + 4 of 2 + 5 match, bigrams 0 + 2 of 1 + 4; 7 hypothesis words
    # against 8 reference words, brevity penalty exp(1 - 8/7)
    expected = np.exp(1 - 8 / 7) * (5 / 7 * 2 / 5) ** 0.5
    assert got["bleu2_whitespace"] == pytest.approx(expected)
    assert got["bleu2_whitespace"] < got["bleu2"]  # WordPiece splits the names into matches
    # identical texts: 1 (BLEU-4 is not: nltk counts the 2-word name as 0 of 1 trigrams)
    assert caption_metrics(preds, preds)["bleu2_whitespace"] == pytest.approx(1.0)


def test_corpus_bleu_pools_counts_and_meteor_averages():
    preds = ["the cat sat on a mat", "a dog ran in the park"]
    refs = ["the cat sat on the mat", "a dog ran in the park"]
    got = caption_metrics(preds, refs, tokenizer=str.split)
    # corpus BLEU-2: unigrams (5 + 6) / 12, bigrams (3 + 5) / 10
    assert got["bleu2"] == pytest.approx((11 / 12 * 8 / 10) ** 0.5)
    single = meteor_score([refs[0].split()], preds[0].split(), wordnet=_NoWordNet())
    identical = 1 - 0.5 * (1 / 6) ** 3  # one chunk of 6 aligned words
    assert got["meteor"] == pytest.approx((single + identical) / 2)


def test_wordpiece_tokens_as_molt5():
    tokens = wordpiece_tokens("The Molecule [PAD] is 2-methylpropan-1-ol [SEP]")
    assert tokens == ["the", "molecule", "is", "2", "-", "methyl", "##pro", "##pan", "-", "1",
                      "-", "ol"]  # fmt: skip
    assert len(wordpiece_tokens("word " * 600)) == 512


def test_caption_metrics_bad_input():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        caption_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        caption_metrics([], [])
    with pytest.raises(ValueError, match="wordnet"):
        caption_metrics(["a"], ["a"], wordnet="princeton")


# ----------------------------------------------------------------------------- OPSIN
def test_opsin_round_trips_pubchem_names():
    frame = parse_identifier_lines((DATA / "pubchem_names_150.tsv").read_text(encoding="utf-8"))
    frame = frame[frame["iupac_name"].notna()].iloc[:60]
    names, smiles = frame["iupac_name"].tolist(), frame["smiles"].tolist()
    report = opsin_name_check(names, smiles)
    # PubChem names round-trip once their lower-cased N locants and ';' separators are undone;
    # a few salt names fail on stoichiometry PubChem names do not spell out
    assert report.parse_rate >= 0.95
    assert report.exact_rate >= 0.9
    plain = opsin_name_check(names, smiles, pubchem_style=False)
    assert plain.exact_rate < report.exact_rate  # as written, many do not parse
    assert len(report.checks) == 60 and report.summary()["n"] == 60


def test_opsin_wrong_name_and_gibberish():
    report = opsin_name_check(
        ["propan-2-ol", "propan-1-ol", "qwertyzane-9-ium soup", "", "n,n-dimethylmethanamide"],
        ["CC(C)O", "CC(C)O", "CC(C)O", "CC(C)O", "CN(C)C=O"],
    )
    right, wrong, gibberish, empty, pubchem = report.checks
    assert right.parses and right.same_structure and right.opsin_input == "propan-2-ol"
    assert wrong.parses and not wrong.same_structure and wrong.same_skeleton is False
    assert not gibberish.parses and gibberish.parsed_smiles is None
    assert not empty.parses
    assert pubchem.same_structure and pubchem.opsin_input == "N,N-dimethylmethanamide"
    assert report.parse_rate == pytest.approx(3 / 5)
    assert report.exact_rate == pytest.approx(2 / 5)
    frame = report.to_frame()
    assert frame["same_structure"].tolist() == [True, False, False, False, True]


def test_pubchem_name_for_opsin():
    assert pubchem_name_for_opsin("sodium;n-cyclohexylsulfamate") == (
        "sodium N-cyclohexylsulfamate"
    )
    assert pubchem_name_for_opsin("methyl n'-cyano-n,n-dimethyl-carbamimidothioate") == (
        "methyl N'-cyano-N,N-dimethyl-carbamimidothioate"
    )
    assert pubchem_name_for_opsin("cyclohexanamine") == "cyclohexanamine"
    with pytest.raises(ValueError, match="not a valid SMILES"):
        opsin_name_check(["ethanol"], ["C1CC"])


# ----------------------------------------------------------------------------- retrieval
def test_retrieval_on_hand_made_matrix():
    sim = np.array(
        [
            [0.9, 0.6, 0.2, 0.0],  # mol 0: own text first; text 1 prefers mol 0
            [0.8, 0.5, 0.1, 0.0],  # mol 1: own text second
            [0.0, 0.0, 0.3, 0.3],  # mol 2: tie with text 3 -> counted as rank 1
            [0.1, 0.2, 0.0, 0.7],  # mol 3: first
        ]
    )
    got = retrieval_metrics(sim, batch_size=2, k=2)
    # full: mol->text ranks 0, 1, 1, 0; text->mol (columns) ranks 0, 0, 0, 1
    assert got["full"] == {
        "mol2text_acc": 0.5,
        "mol2text_recall@2": 1.0,
        "text2mol_acc": 0.75,
        "text2mol_recall@2": 1.0,
    }
    # blocks [0:2] and [2:4]: mol->text ranks 0, 1, 1, 0; text->mol ranks 0, 0, 0, 1
    assert got["batch"]["mol2text_acc"] == 0.5 and got["batch"]["text2mol_acc"] == 0.75
    top1 = retrieval_metrics(sim, batch_size=2, k=1)
    assert top1["batch"]["mol2text_recall@1"] == top1["batch"]["mol2text_acc"]


def test_retrieval_batches_only_see_their_block():
    n = 130
    sim = np.eye(n) * 0.5
    sim[5, 100] = 0.9  # a text outside molecule 5's block of 64 outscores its own text
    sim[100, 5] = 0.9
    got = retrieval_metrics(torch.tensor(sim))
    assert got["batch"]["mol2text_acc"] == 1.0 and got["batch"]["text2mol_acc"] == 1.0
    assert got["full"]["mol2text_acc"] == pytest.approx(1 - 2 / n)
    assert got["full"]["mol2text_recall@20"] == 1.0
    assert got["n"] == n and got["batch_size"] == 64
    constant = retrieval_metrics(np.zeros((30, 30)))
    assert constant["full"]["mol2text_acc"] == 0.0  # ties count against the match
    assert constant["full"]["mol2text_recall@20"] == 0.0
    with pytest.raises(ValueError, match="square"):
        retrieval_metrics(np.zeros((2, 3)))
