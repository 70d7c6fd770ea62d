"""The trainer: data, models, augmentation, losses, optimizers, the loop and CUDA graphs,
methods, evaluations, phases, the runner, the scheduler and the sweep worker. It reads the core;
it never imports textual or typer and writes nothing to the terminal."""
