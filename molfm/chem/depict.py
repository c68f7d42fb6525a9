"""2D depictions of molecules as SVG text (RDKit's MolDraw2DSVG), for pages and reports.

The drawing is computed from the molecule alone (RDKit's 2D coordinates, stereo annotations;
attachment points ``*`` drawn as RDKit draws dummy atoms), so the same SMILES gives the same
picture. No file is read or written.
"""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D

from molfm.chem.parse import parse_smiles

__all__ = ["svg", "MIN_SIZE", "MAX_SIZE"]

MIN_SIZE = 16
"""The smallest width or height (pixels) of a drawing."""
MAX_SIZE = 2000
"""The largest width or height (pixels) of a drawing."""


def svg(smiles_or_mol: str | Chem.Mol, width: int = 300, height: int = 200) -> str:
    """An SVG drawing of a molecule.

    Parameters
    ----------
    smiles_or_mol
        A SMILES (attachment points ``*`` allowed) or an RDKit molecule (left unchanged).
    width, height
        Size in pixels, each in ``[MIN_SIZE, MAX_SIZE]``.

    Returns
    -------
    str
        The SVG document (``<?xml ...?>`` declaration dropped, so it can be inlined in HTML).

    Raises
    ------
    molfm.chem.parse.InvalidMoleculeError
        The SMILES does not parse (RDKit's reason).
    ValueError
        A size outside the range.
    """
    for name, value in (("width", width), ("height", height)):
        if not MIN_SIZE <= int(value) <= MAX_SIZE:
            raise ValueError(f"{name} must be in [{MIN_SIZE}, {MAX_SIZE}], got {value}")
    if isinstance(smiles_or_mol, Chem.Mol):
        mol = Chem.Mol(smiles_or_mol)  # a copy: the caller's molecule keeps its coordinates
    else:
        mol = parse_smiles(smiles_or_mol)
    rdDepictor.Compute2DCoords(mol)
    drawer = rdMolDraw2D.MolDraw2DSVG(int(width), int(height))
    drawer.drawOptions().addStereoAnnotation = True
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    drawer.FinishDrawing()
    text = drawer.GetDrawingText()
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :].lstrip()
    return text
