"""Method declarations, one torch-free module each (`METHOD = Method(...)` and its settings);
the registry (ssltui.core.registry) finds every module here."""
