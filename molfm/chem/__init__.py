"""molfm.chem: the RDKit layer (parsing, featurization, conformers, geometry, I/O, fingerprints,
scaffolds, properties).

No torch training code lives here; torch/PyG are imported only inside the ``to_pyg`` helpers.
"""

from molfm.chem.conformers import (
    ConformerError,
    ConformerOptions,
    ConformerResult,
    generate_conformer,
    generate_conformers,
)
from molfm.chem.featurize import GraphArrays, featurize, mol_to_data, smiles_to_data, to_pyg
from molfm.chem.fingerprints import (
    bulk_tanimoto,
    morgan_bits,
    morgan_fingerprint,
    morgan_fingerprints,
    tanimoto,
    tanimoto_matrix,
)
from molfm.chem.geometry import (
    angle_triplets,
    bond_angles,
    bond_index,
    bond_lengths,
    dihedral_angles,
    dihedral_quadruplets,
    shortest_path_matrix,
)
from molfm.chem.io import mol_from_xyz, read_sdf, read_xyz, write_sdf, write_xyz
from molfm.chem.parse import (
    InvalidMoleculeError,
    ParseResult,
    StandardizeOptions,
    canonical_smiles,
    mol_or_none,
    parse_smiles,
    standardize_mol,
    try_parse_smiles,
)
from molfm.chem.properties import (
    PROPERTIES,
    functional_group_counts,
    get_property,
    logp,
    molecular_weight,
    penalized_logp,
    qed,
    sa_score,
)
from molfm.chem.scaffolds import murcko_scaffold
from molfm.chem.schema import OGB_SCHEMA, FeatureSchema, FeatureSpec, get_schema, register_schema

__all__ = [
    # parse
    "InvalidMoleculeError",
    "ParseResult",
    "StandardizeOptions",
    "canonical_smiles",
    "mol_or_none",
    "parse_smiles",
    "standardize_mol",
    "try_parse_smiles",
    # featurize
    "OGB_SCHEMA",
    "FeatureSchema",
    "FeatureSpec",
    "GraphArrays",
    "featurize",
    "get_schema",
    "mol_to_data",
    "register_schema",
    "smiles_to_data",
    "to_pyg",
    # conformers
    "ConformerError",
    "ConformerOptions",
    "ConformerResult",
    "generate_conformer",
    "generate_conformers",
    # geometry
    "angle_triplets",
    "bond_angles",
    "bond_index",
    "bond_lengths",
    "dihedral_angles",
    "dihedral_quadruplets",
    "shortest_path_matrix",
    # io
    "mol_from_xyz",
    "read_sdf",
    "read_xyz",
    "write_sdf",
    "write_xyz",
    # fingerprints
    "bulk_tanimoto",
    "morgan_bits",
    "morgan_fingerprint",
    "morgan_fingerprints",
    "tanimoto",
    "tanimoto_matrix",
    # properties, scaffolds
    "PROPERTIES",
    "get_property",
    "functional_group_counts",
    "logp",
    "molecular_weight",
    "penalized_logp",
    "qed",
    "sa_score",
    "murcko_scaffold",
]
