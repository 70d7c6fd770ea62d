"""Evaluations of an encoder on a labelled subset: supervised/semi fine-tuning, linear probe, kNN."""
