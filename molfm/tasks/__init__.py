"""Objectives shared across systems (property prediction on any encoder, fine-tuning from a
pretrained encoder). A system's own objectives live in its folder under ``molfm/systems/``."""
