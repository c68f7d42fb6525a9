"""molfm: molecular foundation models over SMILES, 2D graphs, 3D geometry and text."""

__version__ = "0.1.0"
