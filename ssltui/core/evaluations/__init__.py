"""Evaluation declarations, one torch-free module each (`EVALUATION = Evaluation(...)` and its
settings); the registry (ssltui.core.registry) finds every module here."""
