"""Sweeps: hyperparameter search over the config schema on the validation split, built on Optuna.

`space` (what is searched; torch- and Optuna-free), `study` (the Optuna study that holds a
sweep's trials: storage, create or join, trials handed out once), `report` (the study read
back ranked, for `sweep show`, `sweep list` and the TUI) and `worker` (runs trials as
ordinary runs of the run store; imports torch when it runs one).
"""
