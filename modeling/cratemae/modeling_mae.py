# Generated from hf_mim.models.mae.modeling_mae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MAE: the encoder sees only the visible 25% of patches (plus cls); a light decoder fills in mask tokens and
regresses the pixels of every patch; the loss is the per-patch MSE averaged over masked patches of the batch.

Follows facebookresearch/mae ``models_mae.py`` (``random_masking``, ``forward_encoder``, ``forward_decoder``,
``forward_loss``). Given the same weights and ``noise`` it equals transformers' ``ViTMAEForPreTraining``.
"""

import torch

from .mim_layers_decoder import MAEDecoder
from .mim_modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel, PixelTargetMixin
from .configuration_mae import MAEConfig


class MAEPreTrainedModel(MIMPreTrainedModel):
    config_class = MAEConfig


class MAEModel(MAEPreTrainedModel, MIMViTModel):
    """The MAE encoder (a plain ViT). Without masking input it encodes every patch in order."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the patch values, then mean over masked patches of the whole batch (not per sample)."""
    per_patch = (prediction.float() - target.float()).pow(2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1.0)


class MAEForPreTraining(PixelTargetMixin, MAEPreTrainedModel):

    def __init__(self, config: MAEConfig):
        super().__init__(config)
        self.encoder = MAEModel(config)
        self.decoder = MAEDecoder.from_config(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes the random mask (MAE
            semantics). bool_masked_pos (`torch.BoolTensor`, *optional*): explicit mask with the same count per row.
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio` for this call.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        grid = self.patch_grid(pixel_values)
        noise = self.noise_or_draw(
            noise, bool_masked_pos, ratio, pixel_values.shape[0], grid[0] * grid[1], pixel_values.device
        )
        encoded = self.encoder(
            pixel_values,
            noise=noise,
            bool_masked_pos=bool_masked_pos,
            mask_ratio=ratio,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.decoder(encoded.last_hidden_state, encoded.ids_restore, grid)
        loss = masked_mse(logits, self.target(pixel_values), encoded.mask)
        output = MIMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=encoded.mask,
            ids_restore=encoded.ids_restore,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class MAEForImageClassification(MAEPreTrainedModel, MIMViTForImageClassification):
    encoder_class = MAEModel
