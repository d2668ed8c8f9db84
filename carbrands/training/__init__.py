"""Training a compiled model: optimizers, where it runs (strategy, precision), the fit loop."""
