"""Tuners: methods that adapt a frozen transformers model instead of defining one (R-AMT's mask tuning).

A tuner has no ``PretrainedConfig`` or model class of its own, so it is not registered with the Auto classes: it
wraps a model loaded with them and saves only what it trains, as peft's adapters do.
"""
