"""Layer masking (Balasubramanian & Feizi, ICCV 2023): remove input regions from a ResNet without filling them.

A grey or black fill is out of distribution and its shape leaks information ("missingness bias"). Layer masking
instead carries a binary mask (1 = keep) through every layer, so that the network only processes what is visible:

- before each convolution, the masked border is filled by iterative 3x3 neighbour averaging (no gradient; the
  official ``fast_fmm`` runs one iteration per kernel column), so zero padding at the mask edge adds no artefact;
- the mask is then max-pooled with the convolution's kernel, stride and padding (it dilates) and the output is
  multiplied by it;
- batch norm, max pooling and activations re-apply the mask; a residual add multiplies the two branch masks;
- global average pooling is a masked mean.

Nothing here copies weights into new layer classes: :func:`layer_masked_forward` re-runs the given model's own
modules functionally, so it works on a torchvision ``ResNet`` or a transformers ``ResNetModel`` /
``ResNetForImageClassification`` as they are. Follows the official code (SriramB-98/layer_masking,
``sal_layers.py`` / ``sal_resnet.py``) where it and the paper differ: GELU does not re-mask, the fill is
detached, and a negative ``fill_iterations`` selects partial-convolution renormalisation instead of the fill.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ResNetForImageClassification, ResNetModel
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention, ImageClassifierOutputWithNoAttention
from transformers.models.resnet import modeling_resnet as hf_resnet

from hf_mim.models.layermask.configuration_layermask import LayerMaskConfig

_REMASKED_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Tanh)
_UNMASKED_ACTIVATIONS = (nn.GELU, nn.Identity, nn.Dropout, nn.Flatten)  # official MyGELU / MyIdentity


def neighbour_fill(x: torch.Tensor, mask: torch.Tensor, iterations: int, eps: float = 1e-5) -> torch.Tensor:
    """Grow the visible region by one pixel per iteration, filling each new pixel with the mean of its visible
    3x3 neighbours (the official ``fast_fmm``). The fill carries no gradient: hidden pixels stay without effect."""
    x = x * mask
    channels = x.shape[1]
    box = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        with torch.no_grad():
            total = F.conv2d(x, box.expand(channels, -1, -1, -1), padding="same", groups=channels)
            count = F.conv2d(mask, box, padding="same")
            fill = (1 - mask) * (total / (count + eps))
        x = x + fill.detach()
        mask = (mask + count).clamp(0, 1)
    return x


def _conv(conv: nn.Conv2d, x, mask, fill_iterations: int):
    if fill_iterations >= 0:
        x = neighbour_fill(x, mask, conv.kernel_size[1] if fill_iterations > 0 else 0)
    out = conv(x)
    if fill_iterations < 0:  # partial convolution: rescale by the visible fraction of each window
        box = torch.full((1, 1, *conv.kernel_size), 1.0 / (conv.kernel_size[0] * conv.kernel_size[1]),
                         dtype=x.dtype, device=x.device)
        fraction = F.conv2d(mask, box, stride=conv.stride, padding=conv.padding, dilation=conv.dilation) + 1e-8
        out = out * (1 / fraction)
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1) * (1 - 1 / fraction)
    with torch.no_grad():
        mask = F.max_pool2d(mask, conv.kernel_size, conv.stride, conv.padding)
    return out * mask, mask


def _residual(main, shortcut):
    (x, mask), (identity, identity_mask) = main, shortcut
    mask = mask * identity_mask
    return (x + identity) * mask, mask


def _masked(module: nn.Module, x: torch.Tensor, mask: torch.Tensor, it: int):
    """Run ``module`` on (activation, mask) pairs; the rules of the official ``My*`` layers, per module type."""
    if isinstance(module, nn.Conv2d):
        return _conv(module, x, mask, it)
    if isinstance(module, (nn.BatchNorm2d, *_REMASKED_ACTIVATIONS)):
        return module(x * mask) * mask, mask
    if isinstance(module, _UNMASKED_ACTIVATIONS):
        return module(x), mask
    if isinstance(module, nn.MaxPool2d):
        with torch.no_grad():
            mask = module(mask)
        return module(x) * mask, mask
    if isinstance(module, nn.AvgPool2d):
        with torch.no_grad():
            mask = (module(mask) > 0).to(mask.dtype)
        return module(x) * mask, mask
    if isinstance(module, (hf_resnet.ResNetBottleNeckLayer, hf_resnet.ResNetBasicLayer)):
        main = _masked(module.layer, x, mask, it)
        return _masked(module.activation, *_residual(main, _masked(module.shortcut, x, mask, it)), it)
    if isinstance(module, hf_resnet.ResNetEmbeddings):
        return _masked(module.pooler, *_masked(module.embedder, x, mask, it), it)
    if isinstance(module, hf_resnet.ResNetStage):
        return _masked(module.layers, x, mask, it)
    if isinstance(module, (nn.Sequential, nn.ModuleList, hf_resnet.ResNetConvLayer, hf_resnet.ResNetShortCut,
                           hf_resnet.ResNetEncoder)):
        for child in module.children():
            x, mask = _masked(child, x, mask, it)
        return x, mask
    if _is_torchvision_block(module):
        main = (x, mask)
        bottleneck = ("relu", "conv3", "bn3") if hasattr(module, "conv3") else ()
        for name in ("conv1", "bn1", "relu", "conv2", "bn2", *bottleneck):
            main = _masked(getattr(module, name), *main, it)
        shortcut = (x, mask) if module.downsample is None else _masked(module.downsample, x, mask, it)
        return _masked(module.relu, *_residual(main, shortcut), it)
    raise TypeError(
        f"layer masking has no rule for {type(module).__name__}; it supports ResNets built from Conv2d, BatchNorm2d, "
        "pooling and activation layers (torchvision ResNet, transformers ResNetModel)"
    )


def _is_torchvision_block(module: nn.Module) -> bool:
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck
    except ImportError:
        return False
    return isinstance(module, (BasicBlock, Bottleneck))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Global average over the visible positions only (official ``MyAdaptiveAvgPool2d``)."""
    return F.adaptive_avg_pool2d(x * mask, 1) / (F.adaptive_avg_pool2d(mask, 1) + 1e-8)


def check_pixel_mask(pixel_values: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """Validate a (batch, height, width) or (batch, 1, height, width) keep-mask and return it as (batch, 1, h, w)."""
    if pixel_mask.dim() == 3:
        pixel_mask = pixel_mask.unsqueeze(1)
    batch, _, height, width = pixel_values.shape
    if pixel_mask.shape != (batch, 1, height, width):
        raise ValueError(
            f"pixel_mask has shape {tuple(pixel_mask.shape)} but pixel_values {tuple(pixel_values.shape)} need "
            f"({batch}, {height}, {width}): give one keep-mask per image at the image's resolution"
        )
    pixel_mask = pixel_mask.to(pixel_values.dtype)
    if not torch.all((pixel_mask == 0) | (pixel_mask == 1)):
        raise ValueError("pixel_mask must be binary (1 = keep the pixel, 0 = remove it); threshold it first")
    if not torch.all(pixel_mask.flatten(1).amax(1) > 0):
        raise ValueError("pixel_mask hides every pixel of an image: keep at least one pixel per image")
    return pixel_mask


def layer_masked_features(model: nn.Module, pixel_values, pixel_mask, fill_iterations: int = 1000):
    """Last feature map, its mask and the masked-mean pooled features of a torchvision ``ResNet`` or a transformers
    ``ResNetModel`` / ``ResNetForImageClassification`` with ``pixel_mask`` (1 = keep) removed at every layer."""
    mask = check_pixel_mask(pixel_values, pixel_mask)
    if isinstance(model, ResNetForImageClassification):
        model = model.resnet
    if isinstance(model, ResNetModel):
        x, mask = _masked(model.encoder, *_masked(model.embedder, pixel_values, mask, fill_iterations),
                          fill_iterations)
    elif all(hasattr(model, name) for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer4", "fc")):
        x, mask = pixel_values, mask
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            x, mask = _masked(getattr(model, name), x, mask, fill_iterations)
    else:
        raise TypeError(f"layer masking wraps torchvision ResNets and transformers ResNets, not {type(model).__name__}")
    return x, mask, masked_mean(x, mask)


def layer_masked_forward(model: nn.Module, pixel_values, pixel_mask, fill_iterations: int = 1000):
    """Logits (classifiers) or pooled features (``ResNetModel``) of ``model`` with ``pixel_mask`` layer-masked."""
    _, _, pooled = layer_masked_features(model, pixel_values, pixel_mask, fill_iterations)
    if isinstance(model, ResNetForImageClassification):
        return model.classifier(pooled)
    if isinstance(model, ResNetModel):
        return pooled
    return model.fc(torch.flatten(pooled, 1))


class _SavesRemoteCode:
    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as transformers does, plus the self-contained code and ``auto_map`` (``trust_remote_code=True``)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            try:
                from hf_mim.hub.remote_code import attach_class_code
            except ImportError:  # running from the bundle itself: transformers copies the code
                return
            attach_class_code(save_directory, {
                "AutoConfig": LayerMaskConfig,
                "AutoModel": LayerMaskedResNetModel,
                "AutoModelForImageClassification": LayerMaskedResNetForImageClassification,
            })


class LayerMaskedResNetModel(_SavesRemoteCode, ResNetModel):
    """transformers ``ResNetModel`` whose ``forward`` takes a ``pixel_mask`` (1 = keep) and layer-masks it."""

    config_class = LayerMaskConfig

    def forward(self, pixel_values, pixel_mask=None, output_hidden_states=None, return_dict=None, **kwargs):
        if pixel_mask is None:
            return super().forward(pixel_values, output_hidden_states, return_dict, **kwargs)
        last, _, pooled = layer_masked_features(self, pixel_values, pixel_mask, self.config.fill_iterations)
        output = BaseModelOutputWithPoolingAndNoAttention(last_hidden_state=last, pooler_output=pooled)
        return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()


class LayerMaskedResNetForImageClassification(_SavesRemoteCode, ResNetForImageClassification):
    """transformers ``ResNetForImageClassification`` (same weights and keys) with a layer-masked ``pixel_mask``."""

    config_class = LayerMaskConfig

    def forward(self, pixel_values=None, pixel_mask=None, labels=None, output_hidden_states=None, return_dict=None,
                **kwargs):
        if pixel_mask is None:
            return super().forward(pixel_values, labels, output_hidden_states, return_dict, **kwargs)
        logits = layer_masked_forward(self, pixel_values, pixel_mask, self.config.fill_iterations)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        output = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)
        return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()


def random_block_mask(batch: int, size: int, block_size: int, fraction: float, generator=None) -> torch.Tensor:
    """Keep-masks (batch, size, size) with ``round(fraction * blocks)`` of the block_size x block_size grid cells
    removed in random order (the paper's evaluation masks)."""
    if size % block_size:
        raise ValueError(f"image size {size} is not a multiple of the mask block size {block_size}")
    cells = (size // block_size) ** 2
    removed = round(fraction * cells)
    order = torch.rand(batch, cells, generator=generator).argsort(1)
    keep = (order >= removed).float().view(batch, 1, size // block_size, size // block_size)
    return F.interpolate(keep, scale_factor=block_size, mode="nearest")[:, 0]
