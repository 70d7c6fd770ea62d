"""One module per screen: launch, live, results, runs, help."""
