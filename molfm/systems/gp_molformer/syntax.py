"""SMILES syntax constraints for batched sampling: branches, ring bonds and where a string may end.

A causal SMILES model can write strings that no parser accepts: a ring-bond label that is
never closed, a ``)`` with no open branch, a molecule that ends inside a branch or right after
a bond symbol. :class:`SmilesSyntax` tracks, for a batch of sequences being sampled, the
branch depth, which ring-bond labels are open (and on which atom), and what kind of token came
last, and bans the next tokens that would break the syntax:

* the first token, and the token after ``(``, ``.`` or a bond symbol, must be an atom
  (a bond symbol may also follow ``(``, and a ring label may follow a bond: ``C=1...``);
* ``)`` needs an open branch and may not close an empty one; a ring label may not follow
  ``)`` or ``(``;
* a ring label may not close on the atom that opened it (``C11``) nor on the atom the
  current atom is already bonded to through the chain (``C1C1``): RDKit rejects both;
* at most ``max_depth`` nested branches (deeper ``(`` is banned);
* ``<eos>`` needs every branch and ring closed and an atom, ring label or ``)`` last;
* ``.`` only outside branches, after an atom, ring label or ``)``;
* with a length budget (``remaining`` tokens left, ``<eos>`` included), a row close to it
  (``remaining <= open rings + open branches + atoms a fresh ring still needs + FINISH_SLACK``)
  may only close: no ``(``, new
  ring label, bond or ``.``, and no atom while a ring closure, ``)`` or ``<eos>`` is allowed.
  Without it a constrained row that cannot end runs on to the length limit and is truncated
  (1.2 % of constrained samples of the shipped model did); rows that end well before the limit
  are unaffected.

Only syntax is constrained: valence and aromaticity (kekulization) are left to the model, so
a constrained sample can still fail RDKit sanitization. The constraint changes the sampled
distribution (probability mass of banned tokens is renormalized over the allowed ones), so
results with it are reported separately from plain sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = ["FINISH_SLACK", "SmilesSyntax", "SyntaxState", "token_kind"]

ATOM, BOND, OPEN, CLOSE, RING, DOT, START, SPECIAL = range(8)
# Not a token kind, a state: a bond written after '(' or ')' must bond to an atom, never be a
# ring bond ('C(=1' and 'C(C)=1' do not parse; 'C=1' and 'C1=2' do).
ATOM_BOND = 8
FINISH_SLACK = 4
"""Spare tokens, beyond one per open ring and branch, at which a row must start closing."""
_BOND_TOKENS = {"-", "=", "#", "$", ":", "/", "\\"}


def token_kind(token: str) -> int:
    """Syntactic class of a SMILES token (``ATOM``, ``BOND``, ``OPEN``, ...)."""
    if token in ("(", ")", "."):
        return {"(": OPEN, ")": CLOSE, ".": DOT}[token]
    if token in _BOND_TOKENS:
        return BOND
    if token.isdigit() and len(token) == 1 or (token.startswith("%") and token[1:].isdigit()):
        return RING
    if token.startswith("<") and token.endswith(">"):
        return SPECIAL
    return ATOM


@dataclass
class SyntaxState:
    """Per-sequence syntax state, batched: tensors with leading dimension ``B``."""

    depth: torch.Tensor  # [B] open branches
    ring_open: torch.Tensor  # [B, R] bool, ring label r is open
    ring_atom: torch.Tensor  # [B, R] index of the atom that opened label r
    n_atoms: torch.Tensor  # [B] atoms written so far
    last: torch.Tensor  # [B] kind of the last token (START before the first)
    parent: torch.Tensor  # [B] atom the current atom is bonded to through the chain (-1: none)
    anchor: torch.Tensor  # [B] atom the next atom will bond to (-1: none)
    stack: torch.Tensor  # [B, max_depth] branch roots, stack[:, d] for open branch d
    closed: torch.Tensor  # [B, R] openers of the ring bonds closed on the current atom (-1)

    def select(self, keep: torch.Tensor) -> SyntaxState:
        """Rows ``keep`` (bool ``[B]`` or indices) of every tensor."""
        return SyntaxState(*(t[keep] for t in vars(self).values()))

    def put(self, rows: torch.Tensor, other: SyntaxState) -> None:
        """Overwrite rows ``rows`` (indices ``[K]``) with the ``K`` rows of ``other``, in place."""
        for name, tensor in vars(self).items():
            tensor[rows] = getattr(other, name)

    def expand(self, batch_size: int) -> SyntaxState:
        """Repeat a one-row state ``batch_size`` times."""
        return SyntaxState(
            *(t.expand(batch_size, *t.shape[1:]).clone() for t in vars(self).values())
        )


class SmilesSyntax:
    """Syntax tracker and token mask for one tokenizer (see the module docstring).

    Parameters
    ----------
    tokenizer
        The model's tokenizer; its tokens are classified once into atoms, bonds, branches,
        ring labels, ``.`` and specials.
    device
        Where the masks live (the sampling device).
    max_depth
        Deepest branch nesting allowed.
    """

    def __init__(
        self, tokenizer: SmilesTokenizer, device: torch.device | str = "cpu", max_depth: int = 16
    ) -> None:
        self.device = torch.device(device)
        self.max_depth = max_depth
        vocab = [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]
        kinds = torch.tensor([token_kind(t) for t in vocab], dtype=torch.long)
        self.kind = kinds.to(self.device)  # [V]
        self.eos_id = tokenizer.eos_id
        ring_ids = [i for i, t in enumerate(vocab) if kinds[i] == RING]
        self.ring_ids = torch.tensor(ring_ids, dtype=torch.long, device=self.device)  # [R]
        ring_index = torch.full((len(vocab),), -1, dtype=torch.long)
        ring_index[ring_ids] = torch.arange(len(ring_ids))
        self.ring_index = ring_index.to(self.device)  # [V] -> label slot or -1
        # Which kinds may follow which (rows: last kind, columns: next token); <eos> is
        # handled separately because it also depends on open branches and rings.
        follow = torch.ones(9, 8, dtype=torch.bool)  # [last state, next token kind]
        follow[:, SPECIAL] = False
        for first in (START, DOT):
            follow[first] = False
            follow[first, ATOM] = True
        follow[OPEN] = False
        follow[OPEN, ATOM] = follow[OPEN, BOND] = True
        follow[BOND] = False
        follow[BOND, ATOM] = follow[BOND, RING] = True
        follow[CLOSE, RING] = False
        follow[ATOM_BOND] = False
        follow[ATOM_BOND, ATOM] = True
        allowed = follow[:, kinds]  # [9, V]
        allowed[:, tokenizer.eos_id] = False
        self._allowed = allowed.to(self.device)
        self._needs_atom = torch.tensor(
            [k in (BOND, OPEN, DOT, ATOM_BOND) for k in range(9)], device=self.device
        )
        self._ends_ok = torch.tensor(
            [k in (ATOM, RING, CLOSE) for k in range(9)], dtype=torch.bool, device=self.device
        )

    def init_state(self, batch_size: int = 1) -> SyntaxState:
        """The state before the first token."""
        n_rings = len(self.ring_ids)
        zeros = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        return SyntaxState(
            depth=zeros.clone(),
            ring_open=torch.zeros(batch_size, n_rings, dtype=torch.bool, device=self.device),
            ring_atom=torch.zeros(batch_size, n_rings, dtype=torch.long, device=self.device),
            n_atoms=zeros.clone(),
            last=torch.full((batch_size,), START, dtype=torch.long, device=self.device),
            parent=zeros - 1,
            anchor=zeros - 1,
            stack=torch.full(
                (batch_size, self.max_depth), -1, dtype=torch.long, device=self.device
            ),
            closed=torch.full((batch_size, n_rings), -1, dtype=torch.long, device=self.device),
        )

    def banned(
        self,
        state: SyntaxState,
        remaining: int | torch.Tensor | None = None,
        also: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Bool ``[B, V]``: tokens that would break the syntax after ``state``.

        ``remaining``: tokens the rows may still write, ``<eos>`` included (``None``: no
        limit; a LongTensor ``[B]`` gives one budget per row); rows close to it may only close
        rings and branches and end. ``also``: bool ``[B, V]`` of tokens the caller bans for
        its own reasons; they are applied before the budget, so a closing row is not pushed
        towards a token the caller would refuse."""
        banned = ~self._allowed[state.last]  # [B, V]
        no_branch = state.depth == 0
        banned |= (self.kind == CLOSE).unsqueeze(0) & no_branch.unsqueeze(1)
        banned |= (self.kind == DOT).unsqueeze(0) & ~no_branch.unsqueeze(1)
        banned |= (self.kind == OPEN).unsqueeze(0) & (state.depth >= self.max_depth).unsqueeze(1)
        # An allowed ring label always belongs to the last atom written: a label may not close
        # onto that atom itself (C11), onto the atom it is chained to (C1C1), or onto an atom
        # another label already ring-bonded to it (C12...C12): each would be a second bond.
        current = (state.n_atoms - 1).unsqueeze(1)
        duplicate = (state.ring_atom == current) | (state.ring_atom == state.parent.unsqueeze(1))
        duplicate |= (state.ring_atom.unsqueeze(2) == state.closed.unsqueeze(1)).any(2)
        if self.ring_ids.numel():
            banned[:, self.ring_ids] |= state.ring_open & duplicate
        ends_ok = no_branch & ~state.ring_open.any(1) & self._ends_ok[state.last]
        banned[:, self.eos_id] = ~ends_ok
        if also is not None:
            banned |= also
        if remaining is not None:
            banned = self._close_within(banned, state, remaining)
        return banned

    def _close_within(
        self, banned: torch.Tensor, state: SyntaxState, remaining: int | torch.Tensor
    ) -> torch.Tensor:
        """Add the closing-mode bans of rows whose budget is nearly spent."""
        n_open = state.ring_open.sum(1) + state.depth  # [B]
        # A ring opened on the current atom can close only two atoms later, one opened on the
        # chained atom one atom later (C1CC1): those atoms are part of the cost of finishing.
        on_current = state.ring_open & (state.ring_atom == (state.n_atoms - 1).unsqueeze(1))
        on_parent = state.ring_open & (state.ring_atom == state.parent.unsqueeze(1))
        atoms_needed = torch.where(on_current.any(1), 2, on_parent.any(1).long())  # [B]
        # after a bond, '(' or '.' the next token is an atom; after ')' a ring closure is too
        needs_atom = self._needs_atom[state.last] | ((state.last == CLOSE) & state.ring_open.any(1))
        atoms_needed = torch.maximum(atoms_needed, needs_atom.long())
        closing = remaining <= n_open + atoms_needed + FINISH_SLACK  # [B]
        if not bool(closing.any()):
            return banned
        grows = (self.kind == OPEN) | (self.kind == DOT) | (self.kind == BOND)  # [V]
        extra = grows.unsqueeze(0).expand_as(banned).clone()  # [B, V]
        if self.ring_ids.numel():
            extra[:, self.ring_ids] |= ~state.ring_open  # opening a new ring label
        is_atom = (self.kind == ATOM).unsqueeze(0)
        closes = ~banned & ~extra & ~is_atom  # ring closures, ')' and <eos> still allowed
        extra |= is_atom & closes.any(1, keepdim=True)  # an atom only when nothing closes
        return banned | (extra & closing.unsqueeze(1))

    def update(self, state: SyntaxState, tokens: torch.Tensor) -> SyntaxState:
        """The state after appending ``tokens`` (LongTensor ``[B]``, one per row)."""
        kind = self.kind[tokens]
        is_atom, is_open, is_close = kind == ATOM, kind == OPEN, kind == CLOSE
        n_atoms = state.n_atoms + is_atom.long()
        rows_all = torch.arange(len(tokens), device=tokens.device)
        # '(' pushes the branch root (the anchor); ')' pops it back as the anchor.
        stack = state.stack.clone()
        push = torch.nonzero(is_open).squeeze(1)
        if push.numel():
            stack[push, state.depth[push].clamp(max=self.max_depth - 1)] = state.anchor[push]
        depth = state.depth + is_open.long() - is_close.long()
        popped = stack[rows_all, depth.clamp(0, self.max_depth - 1)]
        parent = torch.where(is_atom, state.anchor, state.parent)
        anchor = torch.where(is_atom, n_atoms - 1, torch.where(is_close, popped, state.anchor))
        anchor = torch.where(kind == DOT, torch.full_like(anchor, -1), anchor)
        ring_open, ring_atom = state.ring_open.clone(), state.ring_atom.clone()
        closed = state.closed.masked_fill(is_atom.unsqueeze(1), -1)  # a new current atom
        label = self.ring_index[tokens]
        rows = torch.nonzero(label >= 0).squeeze(1)
        if rows.numel():
            slots = label[rows]
            opening = ~ring_open[rows, slots]
            ring_open[rows, slots] = opening
            opener = ring_atom[rows, slots]
            closed[rows, slots] = torch.where(opening, closed[rows, slots], opener)
            ring_atom[rows, slots] = torch.where(opening, n_atoms[rows] - 1, opener)
        after_branch = (state.last == OPEN) | (state.last == CLOSE)
        last = torch.where((kind == BOND) & after_branch, torch.full_like(kind, ATOM_BOND), kind)
        return SyntaxState(
            depth, ring_open, ring_atom, n_atoms, last, parent, anchor, stack, closed
        )

    def feed(self, token_ids: list[int]) -> SyntaxState:
        """One-row state after ``token_ids`` (a prompt; specials are skipped)."""
        state = self.init_state(1)
        for token in token_ids:
            if int(self.kind[token]) != SPECIAL:
                state = self.update(state, torch.tensor([token], device=self.device))
        return state
