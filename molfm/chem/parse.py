"""SMILES parsing with one error policy: a sanitized molecule or an error naming the reason.

Every failure becomes an :class:`InvalidMoleculeError` that carries the row (when the caller
knows it), the offending value and RDKit's own message for *that* molecule. RDKit's error log
is captured per call with ``rdBase.CaptureErrorLog``; logging is never switched off process-wide,
so messages for molecules parsed elsewhere still reach the user.

Standardization (largest fragment, neutralization, canonical atom order) is opt-in through
:class:`StandardizeOptions`, whose ``to_dict()`` is stored with prepared data sets so a cache
records exactly how its molecules were produced.

Two contracts, one for each kind of input:

* **data** (:func:`parse_smiles`, :func:`try_parse_smiles`): strict; a cell that is not a clean
  SMILES string is rejected with a reason, so a user can fix the row;
* **generated strings and metrics** (:func:`mol_or_none`, :func:`canonical_smiles`): lenient,
  the MOSES rules (``moses.metrics.utils.get_mol`` of molsets 0.3.1): a molecule is valid when
  RDKit parses and sanitizes the text; anything else is ``None``, with RDKit's messages
  silenced for that call only. Every validity, uniqueness and novelty figure in molfm uses
  these two, so they stay comparable with published MOSES numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass

from rdkit import Chem, rdBase
from rdkit.Chem.MolStandardize import rdMolStandardize

__all__ = [
    "InvalidMoleculeError",
    "StandardizeOptions",
    "ParseResult",
    "parse_smiles",
    "try_parse_smiles",
    "mol_or_none",
    "canonical_smiles",
    "standardize_mol",
    "rdkit_messages",
]

_MAX_SHOWN_CHARS = 120
_TIMESTAMP = re.compile(r"^\[\d{2}:\d{2}:\d{2}\] ?")
_POSITION_HINT = re.compile(r"check for mistakes around position \d+:?$")
_FOR_INPUT = re.compile(r" for input: '.*'$")


def _rebuild_error(cls: type, value: object, reason: str, row: int | None) -> Exception:
    return cls(value, reason, row=row)


class InvalidMoleculeError(ValueError):
    """A value that is not a usable molecule.

    Parameters
    ----------
    value
        The input as received (SMILES string, ``None``, NaN, ...).
    reason
        Why it was rejected; RDKit's own message whenever RDKit produced one.
    row
        Row (record) index in the caller's data, when known.

    Examples
    --------
    >>> str(InvalidMoleculeError("C1CC", "unclosed ring", row=17))
    "row 17: 'C1CC' : unclosed ring"
    """

    def __init__(self, value: object, reason: str, row: int | None = None) -> None:
        self.value = value
        self.reason = reason
        self.row = row
        super().__init__(self._message())

    def _message(self) -> str:
        shown = repr(self.value)
        if len(shown) > _MAX_SHOWN_CHARS:
            shown = shown[: _MAX_SHOWN_CHARS - 3] + "..."
        prefix = f"row {self.row}: " if self.row is not None else ""
        return f"{prefix}{shown} : {self.reason}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple:
        # Default exception pickling would call cls(message); keep the fields instead, so the
        # error survives the trip back from a worker process.
        return (_rebuild_error, (type(self), self.value, self.reason, self.row))

    def with_row(self, row: int | None) -> InvalidMoleculeError:
        """Return a copy of this error that names ``row``."""
        return type(self)(self.value, self.reason, row=row)


@dataclass(frozen=True)
class StandardizeOptions:
    """How a parsed molecule is standardized (all steps opt-in except canonical order).

    Attributes
    ----------
    largest_fragment
        Keep only the largest fragment (RDKit ``LargestFragmentChooser``): drops counter-ions
        and solvents, e.g. ``CC(=O)[O-].[Na+]`` -> ``CC(=O)[O-]``.
    neutralize
        Neutralize charges where a neutral form exists (RDKit ``Uncharger``), e.g.
        ``C[NH3+]`` -> ``CN``; permanent charges such as quaternary ammonium stay.
    canonical
        Renumber atoms into canonical SMILES order, so features do not depend on how the
        input SMILES happened to be written.
    """

    largest_fragment: bool = False
    neutralize: bool = False
    canonical: bool = True

    def to_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ParseResult:
    """Outcome of :func:`try_parse_smiles`: exactly one of ``mol`` and ``reason`` is set."""

    mol: Chem.Mol | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.mol is not None


def rdkit_messages(log_text: str, smiles: str = "") -> str:
    """Condense captured RDKit error-log text into one line.

    Drops timestamps, the ``SMILES Parse Error:`` prefix, the echoed input and caret lines and
    duplicates, keeping RDKit's wording of the problem itself.

    Parameters
    ----------
    log_text
        Text captured by ``rdBase.CaptureErrorLog`` (several lines).
    smiles
        The parsed text, used to drop RDKit's echo of it.

    Returns
    -------
    str
        ``"; "``-joined messages, ``""`` when nothing was logged.
    """
    lines = [_TIMESTAMP.sub("", line).rstrip() for line in log_text.splitlines()]
    kept: list[str] = []
    skip = 0
    for line in lines:
        if skip:
            skip -= 1
            continue
        line = line.removeprefix("SMILES Parse Error: ").strip()
        if not line or line == smiles.strip() or not line.strip("^~ "):
            continue
        if _POSITION_HINT.search(line):
            skip = 2  # RDKit follows this hint with an echo of the input and a caret line
            line = line.rstrip(":")
        line = _FOR_INPUT.sub("", line)
        if line not in kept:
            kept.append(line)
    failed = [line for line in kept if line.startswith("Failed parsing SMILES")]
    if len(failed) < len(kept):
        kept = [line for line in kept if line not in failed]
    return "; ".join(kept)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    # pandas.NA / NaT without importing pandas
    return type(value).__name__ in {"NAType", "NaTType"}


def _smiles_text(value: object, row: int | None) -> str:
    """Validate the raw cell value; return the SMILES text with outer whitespace stripped."""
    if _is_missing(value):
        raise InvalidMoleculeError(value, "missing value (empty cell)", row=row)
    if not isinstance(value, str):
        raise InvalidMoleculeError(
            value, f"expected a SMILES string, got {type(value).__name__}", row=row
        )
    text = value.strip()
    if not text:
        raise InvalidMoleculeError(value, "empty SMILES", row=row)
    if text.isascii() and text.isprintable() and " " not in text:
        return text  # the common case, checked in C
    for position, char in enumerate(text):
        if not char.isascii():
            raise InvalidMoleculeError(
                value, f"non-ASCII character {char!r} at position {position}", row=row
            )
        if char.isspace() or not char.isprintable():
            # RDKit would silently read only the part before a space/tab as the molecule.
            raise InvalidMoleculeError(
                value, f"whitespace or control character {char!r} at position {position}", row=row
            )
    return text


def _sanitize_problems(text: str) -> str:
    """RDKit's list of chemistry problems for a SMILES that parses but does not sanitize."""
    with rdBase.CaptureErrorLog():
        raw = Chem.MolFromSmiles(text, sanitize=False)
        if raw is None:
            return ""
        problems = Chem.DetectChemistryProblems(raw)
    return "; ".join(problem.Message() for problem in problems)


@functools.cache
def _fragment_chooser() -> rdMolStandardize.LargestFragmentChooser:
    return rdMolStandardize.LargestFragmentChooser()


@functools.cache
def _uncharger() -> rdMolStandardize.Uncharger:
    return rdMolStandardize.Uncharger()


def standardize_mol(
    mol: Chem.Mol, options: StandardizeOptions, *, value: object = None, row: int | None = None
) -> Chem.Mol:
    """Apply ``options`` to a sanitized molecule (largest fragment, then neutralize, then order).

    Parameters
    ----------
    mol
        A sanitized molecule; it is not modified.
    options
        Which steps to run.
    value, row
        Reported in the error if a step fails.

    Returns
    -------
    Chem.Mol
        A new sanitized molecule.

    Raises
    ------
    InvalidMoleculeError
        If RDKit fails in one of the steps.
    """
    shown = value if value is not None else Chem.MolToSmiles(mol)
    with rdBase.CaptureErrorLog() as log:
        try:
            if options.largest_fragment:
                mol = _fragment_chooser().choose(mol)
            if options.neutralize:
                mol = _uncharger().uncharge(mol)
            if options.canonical:
                canonical = Chem.MolToSmiles(mol)
                mol = Chem.MolFromSmiles(canonical)
        except (RuntimeError, ValueError) as err:  # what RDKit raises from C++
            raise InvalidMoleculeError(shown, f"standardization failed: {err}", row=row) from err
    if mol is None:
        reason = rdkit_messages(log.messages) or "canonical SMILES did not re-parse"
        raise InvalidMoleculeError(shown, f"standardization failed: {reason}", row=row)
    return mol


def parse_smiles(
    value: object,
    *,
    row: int | None = None,
    standardize: StandardizeOptions | None = None,
    max_heavy_atoms: int | None = None,
) -> Chem.Mol:
    """Parse and sanitize one SMILES, or raise with RDKit's reason.

    Parameters
    ----------
    value
        The cell value: normally a SMILES string. ``None``, NaN (a pandas empty cell), other
        types, empty or whitespace-only strings, non-ASCII text and inner whitespace are
        rejected with a reason of their own; everything else goes to RDKit.
    row
        Row index to name in the error.
    standardize
        Optional standardization (see :class:`StandardizeOptions`); ``None`` keeps the molecule
        exactly as parsed, all fragments and charges included.
    max_heavy_atoms
        Reject molecules with more heavy atoms than this (checked after standardization).

    Returns
    -------
    Chem.Mol
        A sanitized molecule with at least one atom and implicit hydrogens.

    Raises
    ------
    InvalidMoleculeError
        With ``reason`` set to RDKit's own message, e.g. ``"unclosed ring"`` or
        ``"Explicit valence for atom # 0 N, 5, is greater than permitted"``.
    """
    text = _smiles_text(value, row)
    with rdBase.CaptureErrorLog() as log:
        mol = Chem.MolFromSmiles(text)
    if mol is None:
        reason = rdkit_messages(log.messages, text)
        if not reason or "Failed parsing SMILES" in reason:
            reason = _sanitize_problems(text) or reason
        raise InvalidMoleculeError(value, reason or "RDKit could not parse the SMILES", row=row)
    if mol.GetNumAtoms() == 0:
        raise InvalidMoleculeError(value, "SMILES has no atoms", row=row)
    if standardize is not None:
        mol = standardize_mol(mol, standardize, value=value, row=row)
    if max_heavy_atoms is not None:
        heavy = mol.GetNumHeavyAtoms()
        if heavy > max_heavy_atoms:
            raise InvalidMoleculeError(
                value, f"{heavy} heavy atoms exceeds max_heavy_atoms={max_heavy_atoms}", row=row
            )
    return mol


def try_parse_smiles(
    value: object,
    *,
    standardize: StandardizeOptions | None = None,
    max_heavy_atoms: int | None = None,
) -> ParseResult:
    """Like :func:`parse_smiles` but returns a :class:`ParseResult` instead of raising."""
    try:
        mol = parse_smiles(value, standardize=standardize, max_heavy_atoms=max_heavy_atoms)
    except InvalidMoleculeError as err:
        return ParseResult(mol=None, reason=err.reason)
    return ParseResult(mol=mol, reason=None)


def mol_or_none(smiles_or_mol: object) -> Chem.Mol | None:
    """Parse a SMILES by the MOSES rules; ``None`` when it is not a valid molecule.

    Parameters
    ----------
    smiles_or_mol
        A SMILES string, or an RDKit ``Mol`` (returned unchanged). ``None``, non-strings and
        the empty string give ``None``.

    Returns
    -------
    Chem.Mol or None
        The molecule when ``Chem.MolFromSmiles`` parses the text and ``Chem.SanitizeMol``
        accepts the result (MOSES's ``get_mol``), else ``None``. Unlike :func:`parse_smiles`,
        text after a space is ignored, as RDKit reads it (``"C C"`` is methane).

    Examples
    --------
    >>> mol_or_none("C1CC") is None, mol_or_none("") is None, mol_or_none("CCO").GetNumAtoms()
    (True, True, 3)
    """
    if isinstance(smiles_or_mol, Chem.Mol):
        return smiles_or_mol
    if not isinstance(smiles_or_mol, str) or not smiles_or_mol:
        return None
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles_or_mol)
        if mol is None:
            return None
        try:
            Chem.SanitizeMol(mol)
        except ValueError:  # RDKit's sanitization exceptions derive from ValueError
            return None
    # Only "" parses to a molecule without atoms; kept as a guard, never a valid molecule.
    return mol if mol.GetNumAtoms() else None


def canonical_smiles(smiles_or_mol: object, *, isomeric: bool = True) -> str | None:
    """RDKit canonical SMILES of a molecule or SMILES; ``None`` when it is not valid.

    Parameters
    ----------
    smiles_or_mol
        A SMILES string (parsed with :func:`mol_or_none`) or an RDKit ``Mol``.
    isomeric
        Keep stereochemistry and isotopes (RDKit's default, as MOSES); ``False`` drops them.

    Returns
    -------
    str or None
        ``Chem.MolToSmiles(mol, isomericSmiles=isomeric)``; always a string for a ``Mol``.

    Examples
    --------
    >>> canonical_smiles("OCC"), canonical_smiles("C1CC")
    ('CCO', None)
    """
    mol = mol_or_none(smiles_or_mol)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=isomeric)
