"""Model files: our pickle-free format and safe loading of official checkpoints."""
