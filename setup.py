"""Packages: everything under hf_mim/, plus the top-level model_cards/ templates shipped as hf_mim.model_cards."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["hf_mim", "hf_mim.*"]) + ["hf_mim.model_cards"],
    package_dir={"hf_mim.model_cards": "model_cards"},
)
