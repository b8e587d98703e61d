# Generated from hf_mim.layers.decoder by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""The MAE-style light decoder: project visible latents, insert mask tokens, add fixed position embeddings,
run a few transformer blocks and regress ``patch_size**2 * channels`` values per patch."""

import torch
from torch import nn

from .mim_layers_block import TransformerBlock
from .mim_layers_pos_embed import sincos_2d
from .mim_masking_core import restore_sequence


class MAEDecoder(nn.Module):
    """Parameter names follow the official MAE with the ``decoder_`` prefix turned into a ``decoder.`` module:
    ``embed``, ``mask_token``, ``pos_embed`` (fixed sin-cos, cls slot zero), ``blocks``, ``norm``, ``pred``."""

    def __init__(
        self,
        config,
        encoder_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        intermediate_size: int,
        grid_size: tuple[int, int],
        output_dim: int,
        has_cls_token: bool = True,
        pos_embed_layout: str = "mae",
        layer_norm_eps: float = 1e-6,
        qkv_bias: bool | str = True,
        hidden_act: str = "gelu",
    ):
        super().__init__()
        self.grid_size = tuple(grid_size)
        self.has_cls_token = has_cls_token
        self.pos_embed_layout = pos_embed_layout
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        num_positions = self.grid_size[0] * self.grid_size[1] + int(has_cls_token)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, dim), requires_grad=False)
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(
                    config, dim, num_heads, intermediate_size, qkv_bias=qkv_bias, layer_norm_eps=layer_norm_eps,
                    hidden_act=hidden_act,
                )
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.pred = nn.Linear(dim, output_dim)

    @staticmethod
    def config_arguments(config) -> dict:
        """The constructor arguments an MAE-style config describes (its ``decoder_*`` fields)."""
        return dict(
            encoder_dim=config.hidden_size,
            dim=config.decoder_hidden_size,
            depth=config.decoder_num_hidden_layers,
            num_heads=config.decoder_num_attention_heads,
            intermediate_size=config.decoder_intermediate_size,
            grid_size=config.grid_size,
            output_dim=config.patch_size**2 * config.num_channels,
            has_cls_token=config.use_cls_token,
            pos_embed_layout=config.pos_embed_layout,
            layer_norm_eps=config.layer_norm_eps,
            qkv_bias=config.qkv_bias,
        )

    @classmethod
    def from_config(cls, config, **overrides) -> "MAEDecoder":
        """The decoder a config describes; ``overrides`` replace single arguments or add a subclass's own."""
        return cls(config, **{**cls.config_arguments(config), **overrides})

    def sincos_table(self, grid_size=None) -> torch.Tensor:
        return sincos_2d(
            grid_size or self.grid_size, self.pos_embed.shape[-1], self.pos_embed_layout, cls_token=self.has_cls_token
        ).unsqueeze(0)

    def position_embeddings(self, grid_size: tuple[int, int]) -> torch.Tensor:
        if tuple(grid_size) == self.grid_size:
            return self.pos_embed
        # sin-cos tables are exact at any resolution, so regenerate instead of interpolating
        return self.sincos_table(grid_size).to(self.pos_embed)

    def forward(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, grid_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """``latent`` is the encoder output ``[B, (cls) + K, D_enc]``; returns ``[B, L, output_dim]`` in raster order."""
        x = self.embed(latent)
        if self.has_cls_token:
            cls, visible = x[:, :1], x[:, 1:]
            x = torch.cat([cls, restore_sequence(visible, self.mask_token, ids_restore)], dim=1)
        else:
            x = restore_sequence(x, self.mask_token, ids_restore)
        x = x + self.position_embeddings(grid_size or self.grid_size)
        for block in self.blocks:
            x = block(x)[0]
        x = self.pred(self.norm(x))
        return x[:, 1:] if self.has_cls_token else x
