"""Reference numbers from the paper (data files read with importlib.resources-free paths)."""
