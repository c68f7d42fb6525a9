"""Scaffold-constrained decoration with a causal SMILES model, no extra training.

A scaffold with attachment points (``[*]``) is written as a SMILES *template* rooted at a
scaffold atom, so every ``*`` comes after the atom it hangs from: either as a whole branch
``(*)``, at the end of a branch ``(CC*)``, or as the last atom of the string. Decoding walks
the template with the recurrent form of the model:

* template tokens are **forced** (fed to the model as if it had written them);
* at a ``*`` the model **samples freely**: for a branch slot until it writes the ``)`` that
  closes the branch, for a final slot until ``<eos>``.

While sampling inside a slot, two masks apply:

* the scaffold's: anything but an atom or a single bond as the slot's first token, the
  ring-bond labels still open in the template (they would close a scaffold ring onto the
  substituent), ``)`` or ``<eos>`` before the substituent has an atom or while its own
  rings/branches are open, and ``<eos>`` inside a branch slot;
* the SMILES syntax of the whole string so far (:class:`~molfm.systems.gp_molformer.syntax.SmilesSyntax`:
  no ``C11``/``C1C1``/duplicate ring bonds, no ring label after a branch, ...), with a length
  budget of ``max_slot_tokens`` per slot: a slot near it may only close its rings and branches
  and end, so slots do not run away.

The model's conditional distribution does the rest; the resulting molecules are then checked
with RDKit (validity, and whether the scaffold is still a substructure with every attachment
point carrying a heavy atom).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from rdkit import Chem, rdBase

from molfm.chem.parse import InvalidMoleculeError, parse_smiles
from molfm.systems.gp_molformer.sampling import sample_next_token
from molfm.systems.gp_molformer.syntax import ATOM, BOND, OPEN, RING, SmilesSyntax, token_kind
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer, UnknownTokenError, tokenize_smiles

__all__ = ["ScaffoldTemplate", "scaffold_template", "check_scaffold", "decorate", "keeps_scaffold"]

_SINGLE_BONDS = {"-", "/", "\\"}  # may open a slot: they keep the scaffold's bond to '*'
FORCED, BRANCH_SLOT, TAIL_SLOT = 0, 1, 2


@dataclass(frozen=True)
class ScaffoldTemplate:
    """A scaffold as a token program: forced tokens and slots to be filled."""

    scaffold: str  # the scaffold as given
    smiles: str  # the rooted template SMILES with bare '*'
    items: tuple[tuple[int, str], ...]  # (kind, token); token is "" for slots
    open_rings: tuple[frozenset[str], ...] = field(default=())  # ring labels open at each item
    n_attachments: int = 0


def scaffold_template(scaffold: str) -> ScaffoldTemplate:
    """Parse a scaffold with ``[*]`` attachment points into a :class:`ScaffoldTemplate`.

    Raises
    ------
    InvalidMoleculeError
        The scaffold is not valid SMILES (RDKit's reason), or has no attachment point, an
        attachment point bonded to more than one atom, or several fragments.
    """
    mol = parse_smiles(scaffold)
    dummies = [a for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if not dummies:
        raise InvalidMoleculeError(scaffold, "scaffold has no attachment point ([*])")
    if len(Chem.GetMolFrags(mol)) > 1:
        raise InvalidMoleculeError(scaffold, "scaffold must be one connected fragment")
    for atom in dummies:
        if atom.GetDegree() != 1:
            raise InvalidMoleculeError(
                scaffold, f"attachment point {atom.GetIdx()} must bond to exactly one atom"
            )
        atom.SetIsotope(0), atom.SetAtomMapNum(0), atom.SetNoImplicit(True)
    if len(dummies) == mol.GetNumAtoms():
        raise InvalidMoleculeError(scaffold, "scaffold has no atoms besides attachment points")
    root = next(a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() != 0)
    smiles = Chem.MolToSmiles(mol, rootedAtAtom=root)
    tokens = tokenize_smiles(smiles)
    items: list[tuple[int, str]] = []
    open_rings: list[frozenset[str]] = []
    ring_state: set[str] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "*":
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt == ")":
                items.append((BRANCH_SLOT, ""))
                i += 1  # the model writes this ')' itself to close the slot
            elif nxt is None:
                items.append((TAIL_SLOT, ""))
            else:  # cannot happen for a degree-1 dummy written after its neighbour
                raise InvalidMoleculeError(scaffold, f"unsupported attachment context {smiles!r}")
        else:
            items.append((FORCED, token))
            if token_kind(token) == RING:
                ring_state ^= {token}
        open_rings.append(frozenset(ring_state))
        i += 1
    return ScaffoldTemplate(scaffold, smiles, tuple(items), tuple(open_rings), len(dummies))


def check_scaffold(index: int, text: str, tokenizer: SmilesTokenizer | None = None) -> None:
    """Raise a ValueError naming scaffold ``index`` when it has no usable attachment point,
    does not parse, or (with ``tokenizer``) holds a token the model does not know: called
    before the model loads, then with its tokenizer before any sampling."""
    try:
        template = scaffold_template(text)
        if tokenizer is not None:
            _check_tokens(template, tokenizer)
    except ValueError as err:
        raise ValueError(f"scaffold {index}: {err}") from None


def _check_tokens(template: ScaffoldTemplate, tokenizer: SmilesTokenizer) -> None:
    unknown = sorted(
        {t for k, t in template.items if k == FORCED and tokenizer.token_to_id(t) is None}
    )
    if unknown:
        raise UnknownTokenError(template.smiles, unknown)


@dataclass
class _Cursor:
    """Where one sequence is in the template."""

    item: int = 0
    in_slot: bool = False
    depth: int = 0  # branch depth inside the current slot
    rings: set[str] = field(default_factory=set)  # ring labels opened inside the slot
    has_atom: bool = False
    slot_tokens: int = 0
    slot_base_open: int = 0  # rings + branches open in the whole string when the slot began
    done: bool = False
    failed: bool = False
    tokens: list[str] = field(default_factory=list)


def _slot_mask(
    tokenizer: SmilesTokenizer, template: ScaffoldTemplate, cur: _Cursor, kind: int
) -> torch.Tensor:
    """Boolean [V] of tokens the slot may not emit now."""
    mask = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
    for special in (tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id):
        mask[special] = True
    template_open = template.open_rings[cur.item - 1] if cur.item else frozenset()
    for label in template_open - cur.rings:
        index = tokenizer.token_to_id(label)
        if index is not None:
            mask[index] = True
    if cur.slot_tokens == 0:
        # The substituent starts with an atom (or a single bond): '=' or a ring label here would
        # change the scaffold's bond to '*' or ring-bond the scaffold atom to the substituent.
        for index in range(tokenizer.vocab_size):
            token = tokenizer.id_to_token(index)
            kind_of = token_kind(token)
            if kind_of in (RING, OPEN) or (kind_of == BOND and token not in _SINGLE_BONDS):
                mask[index] = True
    closing_ok = cur.has_atom and cur.depth == 0 and not cur.rings
    close_paren = tokenizer.token_to_id(")")
    if kind == BRANCH_SLOT:
        mask[tokenizer.eos_id] = True
        if close_paren is not None and not (closing_ok or cur.depth > 0):
            mask[close_paren] = True
    else:
        if not closing_ok:
            mask[tokenizer.eos_id] = True
        if close_paren is not None and cur.depth == 0:
            mask[close_paren] = True
    return mask


def _advance_slot(cur: _Cursor, token: str, kind: int) -> bool:
    """Record a sampled slot token; return True when it closes the slot."""
    cur.slot_tokens += 1
    if token == "(":
        cur.depth += 1
    elif token == ")":
        if cur.depth == 0:
            return True  # the template's own ')' after the branch slot
        cur.depth -= 1
    elif token_kind(token) == RING:
        cur.rings ^= {token}
    elif token_kind(token) == ATOM:
        cur.has_atom = True
    return False


@torch.inference_mode()
def decorate(
    model: torch.nn.Module,
    tokenizer: SmilesTokenizer,
    scaffold: str | ScaffoldTemplate,
    n: int,
    *,
    batch_size: int = 256,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    max_slot_tokens: int = 60,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[str | None]:
    """Generate ``n`` decorations of ``scaffold``; ``None`` where a slot ran past the limit.

    The returned strings are SMILES as written by the model around the template (check them
    with RDKit: see :func:`keeps_scaffold`).
    """
    template = scaffold if isinstance(scaffold, ScaffoldTemplate) else scaffold_template(scaffold)
    _check_tokens(template, tokenizer)
    model.eval().to(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    syntax = SmilesSyntax(tokenizer)  # on the CPU, where the slot masks are built
    ids = {t: tokenizer.token_to_id(t) for k, t in template.items if k == FORCED}
    out: list[str | None] = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        cursors = [_Cursor() for _ in range(b)]
        rows_syntax = syntax.init_state(b)  # the whole string written so far, per row
        state = model.init_state(b, device=device)
        position = 0
        logits, state = model.step(torch.full((b,), tokenizer.bos_id, device=device), 0, state)
        while True:
            next_ids = torch.full((b,), tokenizer.pad_id, dtype=torch.long)
            fed: list[int] = []  # rows given a SMILES token this step
            sampling_rows, masks, kinds = [], [], []
            for i, cur in enumerate(cursors):
                if cur.done:
                    continue
                if cur.item >= len(template.items):
                    cur.done = True
                    continue
                kind, token = template.items[cur.item]
                if kind == FORCED:
                    next_ids[i] = ids[token]
                    cur.tokens.append(token)
                    cur.item += 1
                    fed.append(i)
                else:
                    sampling_rows.append(i)
                    masks.append(_slot_mask(tokenizer, template, cursors[i], kind))
                    kinds.append(kind)
            if sampling_rows:
                rows = torch.tensor(sampling_rows)
                slot_syntax = rows_syntax.select(rows)
                open_now = (slot_syntax.ring_open.sum(1) + slot_syntax.depth).tolist()
                budget = []
                for i, n_open in zip(sampling_rows, open_now, strict=True):
                    cur = cursors[i]
                    if cur.slot_tokens == 0:
                        cur.slot_base_open = n_open
                    # the syntax budget counts every open ring and branch; the slot must close
                    # only its own (and write one closing token), within max_slot_tokens
                    budget.append(max_slot_tokens - cur.slot_tokens + cur.slot_base_open)
                banned = syntax.banned(
                    slot_syntax, remaining=torch.tensor(budget), also=torch.stack(masks)
                )
                row_logits = logits[rows.to(logits.device)].float().cpu()
                drawn = sample_next_token(
                    row_logits.masked_fill(banned, float("-inf")),
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    generator=generator,
                )
                for i, kind, token_id in zip(sampling_rows, kinds, drawn.tolist(), strict=True):
                    cur = cursors[i]
                    if token_id == tokenizer.eos_id:  # only allowed to end a final slot
                        cur.done, cur.item = True, len(template.items)
                        continue
                    token = tokenizer.id_to_token(token_id)
                    cur.tokens.append(token)
                    next_ids[i] = token_id
                    fed.append(i)
                    if _advance_slot(cur, token, kind):
                        cur.item += 1
                        cur.depth, cur.rings, cur.has_atom, cur.slot_tokens = 0, set(), False, 0
                    elif cur.slot_tokens >= max_slot_tokens:
                        cur.done = cur.failed = True
            if fed:
                fed_rows = torch.tensor(fed)
                rows_syntax.put(
                    fed_rows, syntax.update(rows_syntax.select(fed_rows), next_ids[fed_rows])
                )
            if all(c.done for c in cursors):
                break
            position += 1
            logits, state = model.step(next_ids.to(device), position, state)
        out.extend(None if c.failed else "".join(c.tokens) for c in cursors)
    return out


def keeps_scaffold(smiles: str | None, template: ScaffoldTemplate) -> bool:
    """True when ``smiles`` parses and contains the scaffold with every attachment decorated.

    Attachment points must match a heavy atom (a decoration, not an implicit hydrogen).
    """
    if not smiles:
        return False
    with rdBase.BlockLogs():  # a failed parse is the answer here, not a message
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return False
    query = Chem.MolFromSmarts(template.smiles.replace("*", "[!#1]"))
    if query is None:
        return False
    return mol.HasSubstructMatch(query, useChirality=False)
