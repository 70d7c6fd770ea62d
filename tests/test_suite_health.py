"""The suite itself: each xdist worker must end within execnet's 5 s grace (tests/conftest.py)."""

from __future__ import annotations

import gc

import torch


def test_the_heap_built_by_collection_is_frozen() -> None:
    """After its last report a worker runs five full garbage collections; execnet SIGINTs it if
    they are not done within 5 s, which ends the suite with a KeyboardInterrupt warning. The
    import-time heap (torch alone is ~180k objects) must be frozen so they stay cheap."""
    assert torch.__name__ == "torch"  # imported at collection, like every worker's
    assert gc.get_freeze_count() > 150_000, (
        f"only {gc.get_freeze_count()} objects frozen: tests/conftest.py's pytest_collection_finish "
        "did not freeze the heap collection built"
    )
