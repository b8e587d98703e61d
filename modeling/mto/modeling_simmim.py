# Generated from hf_mim.models.simmim.modeling_simmim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""SimMIM: every patch goes through the encoder, masked ones replaced by a learnable mask token; a 1x1 conv +
PixelShuffle head maps the feature map back to pixels; the loss is L1 on masked pixels.

Follows microsoft/SimMIM ``models/simmim.py`` and ``models/vision_transformer.py``. With a vanilla-ViT config
(learned absolute positions, full qkv bias, no layer scale) it equals transformers' ``ViTForMaskedImageModeling``.
"""

import torch
from torch import nn

from .mim_layers_patch_embed import is_plain_module
from .mim_masking_generators import SimMIMMaskGenerator
from .mim_modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel
from .configuration_simmim import SimMIMConfig


class SimMIMPreTrainedModel(MIMPreTrainedModel):
    """BEiT-style init; SimMIM's ``_trunc_normal_`` override truncates at +-1 std for every weight."""

    config_class = SimMIMConfig
    init_style = "beit"
    trunc_bound = 1.0


class SimMIMModel(SimMIMPreTrainedModel, MIMViTModel):
    """The SimMIM encoder. Pass ``use_mask_token=True`` to replace masked patches (pre-training)."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^mask_token$"]


def masked_l1(reconstruction: torch.Tensor, pixel_values: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """Official reduction: L1 summed over masked pixels and channels / (masked pixels + 1e-5) / channels."""
    loss = (reconstruction.float() - pixel_values.float()).abs()
    pixel_mask = pixel_mask.bool()  # a where() keeps only this bool mask for backward, not a float copy
    return torch.where(pixel_mask, loss, 0.0).sum() / (pixel_mask.sum() + 1e-5) / pixel_values.shape[1]


class SimMIMForPreTraining(SimMIMPreTrainedModel):
    def __init__(self, config: SimMIMConfig):
        super().__init__(config)
        self.encoder = SimMIMModel(config, use_mask_token=True)
        stride = config.patch_size
        self.decoder = nn.Sequential(
            nn.Conv2d(config.hidden_size, stride**2 * config.num_channels, kernel_size=1),
            nn.PixelShuffle(stride),
        )
        self.mask_generator = SimMIMMaskGenerator(
            config.image_hw[0], config.mask_patch_size, config.patch_size, config.mask_ratio
        )
        self.post_init()

    def reconstruct(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Patch tokens ``[B, L, D]`` -> image ``[B, C, H, W]`` through the 1x1 conv + PixelShuffle head.

        The 1x1 convolution is a linear map of each token, and PixelShuffle puts output channel ``c*p*p + i*p + j``
        of a patch at pixel ``(i, j)`` of channel ``c``; computing it that way on the tokens skips the feature-map
        transpose and the CPU's slow 1x1-convolution kernel. A wrapped or hooked head runs as modules.
        """
        conv, patch, channels = self.decoder[0], self.config.patch_size, self.config.num_channels
        batch = tokens.shape[0]
        if not is_plain_module(conv, nn.Conv2d):
            return self.decoder(tokens.transpose(1, 2).reshape(batch, -1, grid[0], grid[1]))
        pixels = nn.functional.linear(tokens, conv.weight.flatten(1), conv.bias)
        pixels = pixels.reshape(batch, grid[0], grid[1], channels, patch, patch).permute(0, 3, 1, 4, 2, 5)
        return pixels.reshape(batch, channels, grid[0] * patch, grid[1] * patch)

    def pixel_mask(self, bool_masked_pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Patch mask ``[B, L]`` -> pixel mask ``[B, 1, H, W]``."""
        patch = self.config.patch_size
        mask = bool_masked_pos.reshape(-1, grid[0], grid[1])
        return mask.repeat_interleave(patch, 1).repeat_interleave(patch, 2).unsqueeze(1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, num_patches)`, *optional*): True = masked. When
            omitted, a SimMIM cell mask is drawn (from `self.mask_rng` if set).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        grid = self.encoder.patch_embed.check_input(pixel_values, allow_other_size=interpolate_pos_encoding)
        if bool_masked_pos is None:
            if grid != self.encoder.patch_embed.grid_size:
                raise ValueError("pass bool_masked_pos explicitly for inputs of a size other than config.image_size")
            bool_masked_pos = self.mask_generator(pixel_values.shape[0], self.mask_rng, pixel_values.device)
        elif bool_masked_pos.shape != (pixel_values.shape[0], grid[0] * grid[1]):
            raise ValueError(
                f"bool_masked_pos must have shape [{pixel_values.shape[0]}, {grid[0] * grid[1]}], "
                f"got {tuple(bool_masked_pos.shape)}"
            )
        encoded = self.encoder(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            replace_masked=True,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        tokens = encoded.last_hidden_state[:, self.encoder.num_prefix_tokens :]
        reconstruction = self.reconstruct(tokens, grid)
        loss = masked_l1(reconstruction, pixel_values, self.pixel_mask(bool_masked_pos, grid))
        output = MIMPreTrainingOutput(
            loss=loss,
            reconstruction=reconstruction,
            mask=bool_masked_pos.bool(),
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class SimMIMForImageClassification(SimMIMPreTrainedModel, MIMViTForImageClassification):
    encoder_class = SimMIMModel
