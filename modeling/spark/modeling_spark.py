# Generated from hf_mim.models.spark.modeling_spark by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""SparK: BERT-style masked modeling for convnets with sparse convolution emulation and a hierarchical decoder.

Follows keyu-tian/SparK ``pretrain/spark.py`` (``SparK.mask``, ``forward``: mask, encode, densify, decode, loss),
``pretrain/encoder.py`` (sparse conv / pool / BN / LN emulation) and ``pretrain/decoder.py`` (``LightDecoder``,
``UNetBlock``); the encoder is a timm-style ResNet (``pretrain/models/resnet.py`` wraps ``timm.models.resnet``)
with timm's parameter names, so official weights convert by prefix
(``sparse_encoder.sp_cnn.`` -> ``encoder.``, ``dense_decoder.`` -> ``decoder.``).

Mechanism, as in the official code:
1. Mask on the grid at the encoder's total stride (32 px for ResNet-50): ``round(cells * (1 - mask_ratio))``
   cells stay active (visible), the ones with the smallest noise (``torch.rand(...).argsort()``).
2. The input is multiplied by the upsampled active map; every conv / max-pool output in the encoder is re-masked
   and every BatchNorm normalises with statistics of the active sites only (writing zeros elsewhere), so masked
   sites stay exactly zero at every stage. Under distributed training every BatchNorm (encoder, densify norms,
   decoder) synchronises its statistics across processes (official ``--sbn``; config ``sync_batch_norm``).
3. Densify each stage map, coarsest first: a sparse norm, a per-stage mask token at the inactive sites, a
   projection to the decoder width of that scale (1x1 conv for the coarsest map, 3x3 otherwise; identity when the
   coarsest width already equals ``decoder_width``).
4. ``LightDecoder``: ``log2(stride)`` UNet blocks (ConvTranspose 4/2, conv3x3-BN-ReLU6-conv3x3-BN); densified
   maps are *added* before blocks 0..n-1; a 1x1 conv maps to pixels.
5. Loss: per-patch normalised pixels (mean, unbiased variance, +1e-6 in the sqrt) as target, MSE averaged over
   each patch, summed over masked (inactive) patches of the batch and divided by their count + 1e-8.

Differences from the official code (behaviour is the same): the active map is passed to each layer instead of
living in the global ``encoder._cur_active``; the input is masked inside ``SparKModel`` (official: in
``SparK.forward`` before the encoder); masks use hf_mim polarity (True = masked) outside the layers. Only the
ResNet family is built here (the official default ``--model=resnet50``); the ConvNeXt family is not ported, but
its sparse LayerNorm is available (``densify_norm="ln"``, :class:`SparseLayerNorm`). Small-image configs change
only the stem (3x3/2 conv without max pool) so a 32 px image still gives a 4x4 mask grid.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput

from .mim_layers_block import DropPath
from .mim_layers_patch_embed import normalize_patches, patchify, unpatchify
from .mim_layers_sparse_conv import SparseBatchNorm2d, SparseConv2d, SparseLayerNorm, SparseMaxPool2d, active_at, active_from_mask
from .mim_masking_core import check_mask
from .mim_modeling_utils import ClassificationHead, MIMPreTrainedModel, MIMPreTrainingOutput, classification_head, classification_loss, is_loaded, torch_default_init_
from .configuration_spark import SparKConfig


def spark_mask_from_noise(noise: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """Official ``SparK.mask``: the ``round(L * (1 - ratio))`` lowest-noise cells stay visible. Returns the hf_mim
    mask ``[B, L]`` (True = masked)."""
    batch, length = noise.shape
    len_keep = round(length * (1 - mask_ratio))
    keep = noise.argsort(dim=1)[:, :len_keep]
    mask = torch.ones(batch, length, dtype=torch.bool, device=noise.device)
    return mask.scatter(1, keep, False)


@dataclass
class SparKModelOutput(ModelOutput):
    """last_hidden_state: the coarsest feature map ``[B, C, h, w]``. pooler_output: its global average ``[B, C]``
    (over visible sites when a mask was given). feature_maps: every stage's output, finest first (strides
    ``config.feature_strides``). mask: ``[B, L]`` bool, True = masked (None for dense encoding).
    hidden_states: the stem output then every stage output, when requested."""

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    feature_maps: tuple[torch.Tensor, ...] | None = None
    mask: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


def _batch_norm(config: SparKConfig, channels: int) -> SparseBatchNorm2d:
    return SparseBatchNorm2d(
        channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum, sync=config.sync_batch_norm
    )


class SparKBasicBlock(nn.Module):
    """timm ``BasicBlock`` (ResNet-18/34) made sparse: conv3x3-BN-ReLU-conv3x3-BN, drop path, shortcut, ReLU."""

    def __init__(self, config: SparKConfig, in_channels: int, out_channels: int, stride: int, drop_path: float):
        super().__init__()
        self.conv1 = SparseConv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _batch_norm(config, out_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = SparseConv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = _batch_norm(config, out_channels)
        self.bn2.zero_init_last = True
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = _downsample(config, in_channels, out_channels, stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x, active), active))
        x = self.drop_path(self.bn2(self.conv2(x, active), active))
        if self.downsample is not None:
            shortcut = self.downsample[1](self.downsample[0](shortcut, active), active)
        return self.act2(x + shortcut)


class SparKBottleneck(nn.Module):
    """timm ``Bottleneck`` (ResNet-50+, stride on the 3x3 conv) made sparse."""

    def __init__(self, config: SparKConfig, in_channels: int, out_channels: int, stride: int, drop_path: float):
        super().__init__()
        width = out_channels // 4
        self.conv1 = SparseConv2d(in_channels, width, 1, bias=False)
        self.bn1 = _batch_norm(config, width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = SparseConv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _batch_norm(config, width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = SparseConv2d(width, out_channels, 1, bias=False)
        self.bn3 = _batch_norm(config, out_channels)
        self.bn3.zero_init_last = True
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = _downsample(config, in_channels, out_channels, stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x, active), active))
        x = self.act2(self.bn2(self.conv2(x, active), active))
        x = self.drop_path(self.bn3(self.conv3(x, active), active))
        if self.downsample is not None:
            shortcut = self.downsample[1](self.downsample[0](shortcut, active), active)
        return self.act3(x + shortcut)


def _downsample(config: SparKConfig, in_channels: int, out_channels: int, stride: int) -> nn.ModuleList | None:
    """timm ``downsample_conv``: 1x1 strided conv + BN (keys ``downsample.0`` / ``downsample.1``)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.ModuleList(
        [SparseConv2d(in_channels, out_channels, 1, stride=stride, bias=False), _batch_norm(config, out_channels)]
    )


class SparKPreTrainedModel(MIMPreTrainedModel):
    config_class = SparKConfig
    _no_split_modules = ["SparKBasicBlock", "SparKBottleneck"]
    supports_gradient_checkpointing = False
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_attention_backend = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """timm ResNet init for the encoder (kaiming-normal fan-out convs, BN 1/0, last BN of each block 0);
        official ``LightDecoder.initialize`` for the decoder (trunc-normal(0.02) convs, kaiming-normal fan-out
        transposed convs, zero biases); PyTorch defaults for the densify projections; mask tokens
        trunc-normal(0.02) cut at +-0.02 (``SparK.__init__``)."""
        role = getattr(module, "spark_init", None)
        if isinstance(module, nn.BatchNorm2d):
            if not is_loaded(module.weight):
                init.constant_(module.weight, 0.0 if (getattr(module, "zero_init_last", False)
                                                      and self.config.zero_init_last) else 1.0)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.ConvTranspose2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d) and role == "encoder":
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d) and role == "decoder":
            init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and not isinstance(module, ClassificationHead):
            torch_default_init_(module)
        elif isinstance(module, nn.ParameterList) and getattr(module, "spark_mask_tokens", False):
            std = self.config.initializer_range
            for token in module:
                init.trunc_normal_(token, mean=0.0, std=std, a=-std, b=std)
        else:
            super()._init_weights(module)


class SparKModel(SparKPreTrainedModel):
    """The (sparse-capable) ResNet encoder. Without masking input it is a plain dense ResNet (as used for
    fine-tuning and feature extraction); with ``bool_masked_pos`` / ``noise`` it encodes the visible cells only,
    emulating sparse convolution."""

    _keys_to_ignore_on_load_unexpected = [r"^(decoder|densify_norms|densify_projs|mask_tokens)\."]

    def __init__(self, config: SparKConfig):
        super().__init__(config)
        self.conv1 = SparseConv2d(
            config.num_channels, config.embedding_size, config.stem_kernel_size, stride=config.stem_stride,
            padding=config.stem_kernel_size // 2, bias=False,
        )
        self.bn1 = _batch_norm(config, config.embedding_size)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = SparseMaxPool2d(kernel_size=3, stride=2, padding=1) if config.stem_pool else None
        total = sum(config.depths)
        block_class = SparKBottleneck if config.layer_type == "bottleneck" else SparKBasicBlock
        in_channels, index = config.embedding_size, 0
        self.stage_names = []
        for stage, (depth, out_channels) in enumerate(zip(config.depths, config.hidden_sizes)):
            blocks = []
            for i in range(depth):
                # timm: drop-path rate rises linearly from 0 to drop_path_rate over all blocks
                rate = config.drop_path_rate * index / max(total - 1, 1)
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(block_class(config, in_channels, out_channels, stride, rate))
                in_channels, index = out_channels, index + 1
            name = f"layer{stage + 1}"
            setattr(self, name, nn.ModuleList(blocks))
            self.stage_names.append(name)
        for submodule in self.modules():
            if isinstance(submodule, nn.Conv2d):
                submodule.spark_init = "encoder"
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.conv1

    def resolve_mask(
        self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None, mask_ratio: float | None = None,
    ) -> torch.Tensor | None:
        """hf_mim mask ``[B, L]`` (True = masked) on the grid at the total stride, from explicit input."""
        stride = self.config.patch_size
        height, width = pixel_values.shape[-2:]
        if height % stride or width % stride:
            raise ValueError(f"image size {height}x{width} must be divisible by the encoder's total stride {stride}")
        length = (height // stride) * (width // stride)
        if bool_masked_pos is not None:
            if noise is not None:
                raise ValueError("pass either noise or bool_masked_pos, not both")
            if bool_masked_pos.shape != (pixel_values.shape[0], length):
                raise ValueError(
                    f"bool_masked_pos must have shape [{pixel_values.shape[0]}, {length}] (the grid at stride "
                    f"{stride}), got {tuple(bool_masked_pos.shape)}"
                )
            return check_mask(bool_masked_pos, allow_unmasked=True).to(pixel_values.device)
        if noise is not None:
            if noise.shape != (pixel_values.shape[0], length):
                raise ValueError(
                    f"noise must have shape [{pixel_values.shape[0]}, {length}] (the grid at stride {stride}), "
                    f"got {tuple(noise.shape)}"
                )
            ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
            return spark_mask_from_noise(noise.to(pixel_values.device), ratio)
        return None

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SparKModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)`): normalised images.
        noise (`torch.FloatTensor` of shape `(batch, cells)`, *optional*): the `round(cells * (1 - mask_ratio))`
            lowest-noise cells of the grid at the total stride stay visible.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, cells)`, *optional*): explicit mask, True = masked.
        Without either the image is encoded densely.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        mask = self.resolve_mask(pixel_values, noise, bool_masked_pos, mask_ratio)
        active = None
        x = pixel_values
        if mask is not None:
            grid = self.patch_grid(pixel_values)
            active = active_from_mask(mask, grid)
            x = x * active_at(active, x.shape[-2:]).to(x.dtype)
        x = self.act1(self.bn1(self.conv1(x, active), active))
        if self.maxpool is not None:
            x = self.maxpool(x, active)
        hidden = (x,) if output_hidden_states else None
        feature_maps = []
        for name in self.stage_names:
            for block in getattr(self, name):
                x = block(x, active)
            feature_maps.append(x)
        if output_hidden_states:
            hidden = hidden + tuple(feature_maps)
        if active is None:
            pooled = x.mean(dim=(2, 3))
        else:
            weight = active_at(active, x.shape[-2:]).to(x.dtype)
            pooled = (x * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp(min=1.0)
        output = SparKModelOutput(
            last_hidden_state=x, pooler_output=pooled, feature_maps=tuple(feature_maps), mask=mask,
            hidden_states=hidden,
        )
        return output if return_dict else output.to_tuple()


class SparKUNetBlock(nn.Module):
    """Official ``UNetBlock``: 2x transposed-conv upsample, then conv3x3-BN-ReLU6-conv3x3-BN."""

    def __init__(self, in_channels: int, out_channels: int, config: SparKConfig):
        super().__init__()
        self.up_sample = nn.ConvTranspose2d(in_channels, in_channels, kernel_size=4, stride=2, padding=1, bias=True)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
            _batch_norm(config, in_channels),
            nn.ReLU6(inplace=True),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            _batch_norm(config, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up_sample(x))


class SparKDecoder(nn.Module):
    """Official ``LightDecoder``: ``log2(stride)`` UNet blocks halving the width (768 -> 384 -> ... -> 24 for
    ResNet-50), the densified maps added (not concatenated) before the first blocks, a 1x1 conv to pixels."""

    def __init__(self, config: SparKConfig):
        super().__init__()
        self.width = config.decoder_width
        channels = [self.width // 2**i for i in range(config.num_decoder_blocks + 1)]
        self.dec = nn.ModuleList([SparKUNetBlock(a, b, config) for a, b in zip(channels[:-1], channels[1:])])
        self.proj = nn.Conv2d(channels[-1], config.num_channels, kernel_size=1, bias=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.spark_init = "decoder"

    def forward(self, to_dec: list[torch.Tensor]) -> torch.Tensor:
        x = 0
        for i, block in enumerate(self.dec):
            if i < len(to_dec) and to_dec[i] is not None:
                x = x + to_dec[i]
            x = block(x)
        return self.proj(x)


class SparKForPreTraining(SparKPreTrainedModel):
    """Sparse encoder + densify (sparse norm, mask tokens, projection) + light UNet decoder + masked norm-pixel
    loss (official ``SparK``)."""

    def __init__(self, config: SparKConfig):
        super().__init__(config)
        self.encoder = SparKModel(config)
        self.mask_tokens = nn.ParameterList()
        self.mask_tokens.spark_mask_tokens = True  # initialised in ``_init_weights`` (not called on the root)
        self.densify_norms = nn.ModuleList()
        self.densify_projs = nn.ModuleList()
        decoder_width = config.decoder_width
        for i, width in enumerate(reversed(config.hidden_sizes)):  # coarsest map first
            self.mask_tokens.append(nn.Parameter(torch.zeros(1, width, 1, 1)))
            if config.densify_norm == "bn":
                norm = _batch_norm(config, width)
            elif config.densify_norm == "ln":
                norm = SparseLayerNorm(width, eps=config.layer_norm_eps, data_format="channels_first")
            else:
                norm = nn.Identity()
            self.densify_norms.append(norm)
            if i == 0 and width == decoder_width:
                proj = nn.Identity()
            else:
                kernel = 1 if i == 0 else 3
                proj = nn.Conv2d(width, decoder_width, kernel_size=kernel, padding=kernel // 2, bias=True)
            self.densify_projs.append(proj)
            decoder_width //= 2
        self.decoder = SparKDecoder(config)
        self.post_init()

    def target(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Per-patch normalised pixels (always on in SparK), patches of the total stride."""
        return normalize_patches(patchify(pixel_values, self.config.patch_size))[0]

    def logits_to_pixels(self, logits: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Undo the per-patch normalisation with the input's statistics (official ``vis`` branch)."""
        _, mean, var = normalize_patches(patchify(pixel_values, self.config.patch_size))
        grid = self.patch_grid(pixel_values)
        return unpatchify(logits * (var + 1e-6) ** 0.5 + mean, self.config.patch_size, grid, self.config.num_channels)

    def densify(self, feature_maps: tuple[torch.Tensor, ...], active: torch.Tensor) -> list[torch.Tensor]:
        """Coarsest map first: sparse norm, mask tokens at inactive sites, projection to the decoder width."""
        to_dec = []
        for i, fmap in enumerate(reversed(feature_maps)):
            norm = self.densify_norms[i]
            fmap = fmap if isinstance(norm, nn.Identity) else norm(fmap, active)
            visible = active_at(active, fmap.shape[-2:]).expand_as(fmap)
            fmap = torch.where(visible, fmap, self.mask_tokens[i].to(fmap.dtype).expand_as(fmap))
            to_dec.append(self.densify_projs[i](fmap))
        return to_dec

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, cells)`, *optional*): fixes the random mask (the
            `round(cells * (1 - ratio))` lowest-noise cells stay visible). bool_masked_pos (`torch.BoolTensor` of
            shape `(batch, cells)`, *optional*): explicit mask, True = masked (any count per row).
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio` for this call.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        stride = self.config.patch_size
        grid = (pixel_values.shape[-2] // stride, pixel_values.shape[-1] // stride)
        noise = self.noise_or_draw(
            noise, bool_masked_pos, ratio, pixel_values.shape[0], grid[0] * grid[1], pixel_values.device
        )
        encoded = self.encoder(
            pixel_values, noise=noise, bool_masked_pos=bool_masked_pos, mask_ratio=ratio,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        mask = check_mask(encoded.mask)  # the encoder takes an all-visible mask; the masked loss cannot
        active = active_from_mask(mask, grid)
        reconstruction = self.decoder(self.densify(encoded.feature_maps, active))
        logits = patchify(reconstruction, stride)
        per_patch = (logits.float() - self.target(pixel_values).float()).pow(2).mean(dim=-1)
        masked = mask.to(per_patch.dtype)
        loss = (per_patch * masked).sum() / (masked.sum() + 1e-8)
        output = MIMPreTrainingOutput(loss=loss, logits=logits, mask=mask, hidden_states=encoded.hidden_states)
        return output if return_dict else output.to_tuple()


class SparKForImageClassification(SparKPreTrainedModel):
    """Dense ResNet encoder + global average pooling + linear head (the official fine-tuning uses the plain timm
    model; the head starts near zero as in MAE fine-tuning, see :class:`ClassificationHead`)."""

    _keys_to_ignore_on_load_unexpected = [r"^(?!encoder\.)"]

    def __init__(self, config: SparKConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = SparKModel(config)
        width = config.hidden_sizes[-1]
        self.classifier = classification_head(width, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.encoder(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(encoded.pooler_output)
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        output = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)
        return output if return_dict else output.to_tuple()
