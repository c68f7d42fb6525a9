"""Objectives shared across systems: property prediction on any encoder (:mod:`.property`,
:mod:`.property_run`), prediction on user files (:mod:`.predict`). A system's own objectives
live in its folder under ``molfm/systems/``.

Import-light: this ``__init__`` only registers the shared model types with :mod:`molfm.hub`.
"""

from molfm.hub import register_model_module

register_model_module("property", "molfm.tasks.property")
register_model_module("gine", "molfm.nn.gine")
register_model_module("gps", "molfm.nn.gps")
