"""One sub-package per method. Each exposes ``METHOD`` (a :class:`hf_mim.registry.MethodSpec`); importing
:mod:`hf_mim` discovers them and registers every class with the transformers Auto classes."""
