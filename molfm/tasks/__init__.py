"""Objectives shared across systems: property prediction on any encoder (:mod:`.property`,
:mod:`.property_run`), prediction on user files (:mod:`.predict`), and their run configs
(:mod:`.config`). A system's own objectives live in its folder under ``molfm/systems/``.
"""
