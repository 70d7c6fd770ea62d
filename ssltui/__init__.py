"""ssltui: self-supervised learning (SimCLR, RotNet) on CIFAR-10, from a terminal app or headless."""

__version__ = "0.1.0"
