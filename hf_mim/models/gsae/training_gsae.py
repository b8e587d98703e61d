"""The unit-norm decoder rule of TopK SAEs under ``Trainer`` (its own module: it imports the Trainer stack)."""

from transformers import TrainerCallback

from hf_mim.layers.sae import UnitNormDecoder


class UnitNormDecoderCallback(TrainerCallback):
    """Around every optimiser step of any model with :class:`~hf_mim.layers.sae.UnitNormDecoder` s: the gradient
    component along each decoder column is removed before the step and the columns are renormalised after it
    (Gao et al.'s training loop), so the dictionary stays unit-norm whatever the optimiser."""

    @staticmethod
    def decoders(model) -> list[UnitNormDecoder]:
        return [module for module in model.modules() if isinstance(module, UnitNormDecoder)]

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        for decoder in self.decoders(model):
            decoder.remove_parallel_gradient_()

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        for decoder in self.decoders(model):
            decoder.normalize_()
