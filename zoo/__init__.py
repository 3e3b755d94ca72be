"""Data package: the zoo manifest (``models.toml``) and its weights files. No code."""
