"""One folder per published system, each readable on its own.

A system never imports another system's internals (``lint-imports`` checks it, see
``pyproject.toml``); what two systems share lives a layer down (``tasks``, ``engine``,
``eval``, ``nn``, ``data``, ``chem``). Importing this package imports no system: each model
class registers itself with :mod:`molfm.hub` where it is defined, and the hub finds the
module of a model type it has not seen yet in :data:`molfm.hub.MODEL_MODULES`.
"""
