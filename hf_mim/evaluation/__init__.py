"""Evaluation: reconstruction images, kNN, linear probe, fine-tuning."""

from hf_mim.evaluation.visualize import Reconstruction, reconstruct, reconstruction_grid, save_reconstruction_grid

__all__ = ["Reconstruction", "reconstruct", "reconstruction_grid", "save_reconstruction_grid"]
