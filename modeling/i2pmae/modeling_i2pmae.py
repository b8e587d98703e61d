# Generated from hf_mim.models.i2pmae.modeling_i2pmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""I2P-MAE: a hierarchical point-cloud MAE guided by a frozen 2-D model.

The cloud is tokenised at 3 scales (FPS + kNN groups of the points, then of the previous scale's centres). It is
also projected along each axis into 3 depth images; a frozen image teacher gives, per image, its last block's
cls -> patch attention (averaged over heads) and its patch features, both back-projected onto 3-D points.
2-D-guided masking: the top-scale order is drawn by ``multinomial(softmax(saliency), replacement=False)``, the
first ``G - int(ratio * G)`` are visible (salient tokens tend to stay visible), and a finer token is visible iff it
is a neighbour of a visible coarser token. Each scale's transformer sees its visible tokens only (ragged counts:
padded, with a key mask). The decoder (coarse to fine, PointNet++ feature propagation between stages) predicts,
for masked tokens of the reconstruction scale, their group's coordinates (Chamfer-L2) and, for visible tokens,
the teacher features of their group's points in all 3 views (MSE); loss = sum of both (1:1, as official).

Follows ZrrSkywalker/I2P-MAE (``models/I2P_MAE.py``: ``proj2img``, ``I2P``, ``mask_2D_guided``, ``H_Encoder``,
``forward``; ``models/modules.py``: ``Group_v2``, ``Token_Embed``, ``PointNetFeaturePropagation``, blocks), with:

* the CUDA ops (``pointnet2_ops`` FPS, ``KNN_CUDA``, ``torch_scatter``, the Chamfer extension) replaced by the
  pure-torch ones of :mod:`hf_mim.layers.points` (same results; FPS ties may differ);
* the teacher: any ``from_pretrained`` vision model with attentions instead of the patched OpenAI CLIP. Its
  features are its final patch tokens (CLIP's ``post_layernorm`` applied); the official CLIP also applies its
  512-d visual projection, which ``CLIPVisionModel`` does not have (use the projected width by loading
  ``CLIPVisionModelWithProjection``-style weights into an encoder of that width if you need it);
* mask propagation: the official code writes the neighbour indices of masked coarse tokens as 0 into a
  batch-flattened index, so token 0 of the FIRST cloud in a batch is always visible at the finer scales (a
  batch-indexing slip); here every cloud is treated alike;
* padded encoder tokens are masked as keys (the official masks whole rows and columns; rows of padding are
  discarded either way, so visible tokens get the same values).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput

from .mim_layers_block import TransformerBlock, drop_path_rates
from .mim_layers_points import back_project, chamfer_l2, depth_projection, gather_points, group_points, interpolate_features, view
from .mim_modeling_utils import MIMPreTrainedModel, classification_head, classification_loss, torch_default_init_
from .configuration_i2pmae import I2PMAEConfig
from .mim_teacher import IMAGENET_MEAN, IMAGENET_STD, TeacherHolderMixin, cls_attention_importance, guided_permutation


@dataclass
class I2PMAEModelOutput(ModelOutput):
    """``last_hidden_state [B, L, D]``: the top scale's (visible) tokens, normalised; ``pooler_output [B, D]``:
    their max (the official linear-SVM feature); ``hidden_states``: every scale's normalised tokens."""

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class I2PMAEPreTrainingOutput(ModelOutput):
    """``loss`` = ``coordinate_loss`` (Chamfer-L2 of masked groups) + ``feature_loss`` (MSE of visible tokens'
    2-D features). ``logits [L, K, 3]``: predicted groups of the masked tokens of the reconstruction scale.
    ``bool_masked_pos [B, G]``: the top-scale mask (True = masked); ``saliency [B, G]``: its 2-D saliency."""

    loss: torch.Tensor | None = None
    coordinate_loss: torch.Tensor | None = None
    feature_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    bool_masked_pos: torch.Tensor | None = None
    saliency: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class PointScale:
    """One tokenisation scale: ``centres [B, G, 3]``, ``indices [B, G, K]`` of each group's members in the finer
    scale, ``members [B, G, K, 3]`` their absolute coordinates."""

    centres: torch.Tensor
    indices: torch.Tensor
    members: torch.Tensor

    @property
    def local(self) -> torch.Tensor:
        return self.members - self.centres.unsqueeze(2)


def guided_mask(saliency: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """I2P-MAE's 2-D-guided mask ``[B, G]`` (True = masked): a keep order drawn from ``softmax(saliency)``
    without replacement; the first ``G - int(ratio * G)`` tokens of it stay visible."""
    order = guided_permutation(saliency.float().softmax(dim=1), "sample", generator)
    keep = saliency.shape[1] - int(ratio * saliency.shape[1])
    mask = torch.ones_like(saliency, dtype=torch.bool)
    return mask.scatter(1, order[:, :keep], False)


def propagate_mask(top_mask: torch.Tensor, scales: list[PointScale]) -> list[torch.Tensor]:
    """Masks of every scale, finest first: a token of scale ``i - 1`` is visible iff it belongs to the group of a
    visible token of scale ``i``."""
    masks = [top_mask]
    for i in range(len(scales) - 1, 0, -1):
        indices = scales[i].indices
        visible_members = (~masks[0]).unsqueeze(-1).expand_as(indices)
        visible = torch.zeros(indices.shape[0], scales[i - 1].centres.shape[1], dtype=torch.bool, device=indices.device)
        visible = visible.scatter_reduce(1, indices.flatten(1), visible_members.flatten(1), "amax")
        masks.insert(0, ~visible)
    return masks


def pack_visible(values: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``values [B, G, C]`` -> ``([B, L, C], valid [B, L])``: each cloud's visible tokens first, in their order,
    padded with zeros to the batch's largest visible count ``L``."""
    counts = visible.sum(dim=1)
    order = torch.argsort((~visible).to(torch.int8), dim=1, stable=True)[:, : int(counts.max())]
    valid = torch.arange(order.shape[1], device=values.device) < counts.unsqueeze(1)
    return gather_points(values, order) * valid.unsqueeze(-1), valid


def unpack_visible(packed: torch.Tensor, valid: torch.Tensor, visible: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_visible`: ``base [B, G, C]`` with its visible rows replaced by ``packed``."""
    out = base.clone()
    out[visible] = packed[valid].to(out.dtype)
    return out


def linear_bn(in_dim: int, out_dim: int, activation: nn.Module | None) -> list[nn.Module]:
    """A shared per-point 1x1 conv + BatchNorm (+ activation) on channel-last tensors: the official ``Conv1d(k=1)``
    + ``BatchNorm1d`` on ``[B, C, N]`` as Linear + BatchNorm over all points (the same maths; CPU conv1d is slow)."""
    return [nn.Linear(in_dim, out_dim), ChannelLastBatchNorm(out_dim)] + ([activation] if activation is not None else [])


class ChannelLastBatchNorm(nn.BatchNorm1d):
    """BatchNorm over every position of ``[..., C]`` (statistics per channel, as ``BatchNorm1d`` on ``[B, C, N]``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class PointTokenEmbed(nn.Module):
    """Mini-PointNet over a group ``[B, G, K, C] -> [B, G, D]``: shared per-point layers, a max-pooled global
    feature concatenated to every member, more layers, max pooling (official ``Token_Embed``; BatchNorm in train
    mode)."""

    def __init__(self, in_dim: int, hidden: int, width: int, out_dim: int, mid: int):
        super().__init__()
        self.first_conv = nn.Sequential(*linear_bn(in_dim, hidden, nn.ReLU()), nn.Linear(hidden, width))
        self.second_conv = nn.Sequential(*linear_bn(2 * width, mid, nn.ReLU()), nn.Linear(mid, out_dim))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        features = self.first_conv(groups)
        pooled = features.max(dim=2, keepdim=True).values
        features = self.second_conv(torch.cat([pooled.expand_as(features), features], dim=-1))
        return features.max(dim=2).values


def centre_embedding(dim: int) -> nn.Sequential:
    """MLP positional embedding of token centres (``Linear(3, D) - GELU - Linear(D, D)``)."""
    return nn.Sequential(nn.Linear(3, dim), nn.GELU(), nn.Linear(dim, dim))


class PointStage(nn.Module):
    """Pre-norm transformer blocks; the positional embedding is added before EVERY block (official
    ``Encoder_Block`` / ``Decoder_Block``)."""

    def __init__(self, config: I2PMAEConfig, dim: int, rates: list[float]):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(config, dim, config.num_attention_heads, int(dim * config.mlp_ratio), qkv_bias=False,
                             layer_norm_eps=config.layer_norm_eps, drop_path_rate=rate)
            for rate in rates
        )

    def forward(self, x, pos, attention_bias=None, output_attentions=False):
        attentions = []
        for block in self.blocks:
            x, weights = block(x + pos, attention_bias, output_attentions=output_attentions)
            attentions.append(weights)
        return x, attentions


class ResidualConvBlock(nn.Module):
    """``GELU(BN(lin(GELU(BN(lin(x))))) + x)`` per point (official ``ConvBNReLURes1D``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net1 = nn.Sequential(*linear_bn(dim, dim, nn.GELU()))
        self.net2 = nn.Sequential(*linear_bn(dim, dim, None))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.net2(self.net1(x)) + x)


class FeaturePropagation(nn.Module):
    """PointNet++ up-sampling: coarse features interpolated to the fine centres (3-NN, inverse squared distance),
    concatenated after the fine tokens' own features, fused by linear-BN-GELU and residual blocks."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int):
        super().__init__()
        self.fuse = nn.Sequential(*linear_bn(in_dim, out_dim, nn.GELU()))
        self.extraction = nn.Sequential(*[ResidualConvBlock(out_dim) for _ in range(blocks)])

    def forward(self, fine_centres, coarse_centres, fine_features, coarse_features):
        x = torch.cat([fine_features, interpolate_features(fine_centres, coarse_centres, coarse_features)], dim=-1)
        return self.extraction(self.fuse(x))


class I2PMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = I2PMAEConfig
    main_input_name = "points"
    input_modalities = ("points",)
    _no_split_modules = ["TransformerBlock"]
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Official init: encoder Linear (and 1x1 conv) truncated-normal(0.02) with zero bias (``H_Encoder``), decoder
        blocks Xavier-uniform (``Decoder_Block``), PyTorch's default elsewhere (decoder position MLPs, feature
        propagation, heads), LayerNorm / BatchNorm 1 / 0, mask token truncated-normal(0.02)."""
        kind = getattr(module, "_i2p_init", None)
        if isinstance(module, nn.Linear) and kind == "trunc_normal":
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and kind is None:
            torch_default_init_(module)
        elif isinstance(module, I2PMAEForPreTraining):
            init.trunc_normal_(module.mask_token, std=self.config.initializer_range)
        else:  # decoder-block Linear (Xavier), norms, classification head
            super()._init_weights(module)

    def check_points(self, points: torch.Tensor | None) -> torch.Tensor:
        if points is None or points.dim() != 3 or points.shape[-1] != 3:
            shape = None if points is None else tuple(points.shape)
            raise ValueError(f"points must be a float tensor [batch, num_points, 3], got {shape}")
        config = self.config
        if points.shape[1] < max(config.num_groups[0], config.group_sizes[0]):
            raise ValueError(
                f"clouds have {points.shape[1]} points, fewer than the {config.num_groups[0]} groups (of "
                f"{config.group_sizes[0]}) of the first scale: sample clouds to config.num_points={config.num_points} "
                "with the model's feature extractor"
            )
        if points.device.type != "meta" and not bool(torch.isfinite(points).all()):
            raise ValueError("points contain NaN or infinite coordinates: drop those points (the feature extractor refuses them)")
        return points


def tag_init(module: nn.Module, kind: str) -> nn.Module:
    for child in module.modules():
        child._i2p_init = kind
    return module


class I2PMAEModel(I2PMAEPreTrainedModel):
    """Hierarchical encoder: per scale, group tokens of the finer scale (points at scale 0) with a mini-PointNet,
    add the centre embedding, run that scale's transformer on the visible tokens. Without a mask every token is
    visible (features for probes, as the official ``eval=True`` path)."""

    _keys_to_ignore_on_load_unexpected = [r"^(?!encoder\.)"]  # the pre-training decoder and heads

    def __init__(self, config: I2PMAEConfig):
        super().__init__(config)
        widths = config.encoder_hidden_sizes
        hidden, width = config.token_embed_sizes
        self.token_embeds = nn.ModuleList(
            PointTokenEmbed(3, hidden, width, widths[0], 2 * width) if i == 0
            else PointTokenEmbed(widths[i - 1], widths[i - 1], widths[i - 1], widths[i], widths[i])
            for i in range(len(widths))
        )
        self.pos_embeds = nn.ModuleList(centre_embedding(dim) for dim in widths)
        rates = drop_path_rates(config.drop_path_rate, sum(config.encoder_depths))
        starts = [sum(config.encoder_depths[:i]) for i in range(len(widths))]
        self.stages = nn.ModuleList(
            PointStage(config, dim, rates[start : start + depth]) for dim, start, depth in zip(widths, starts, config.encoder_depths)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=config.layer_norm_eps) for dim in widths)
        tag_init(self, "trunc_normal")
        self.post_init()

    def group(self, points: torch.Tensor) -> list[PointScale]:
        """Multi-scale FPS + kNN tokenisation, finest scale first."""
        scales, source = [], points
        for num_groups, size in zip(self.config.num_groups, self.config.group_sizes):
            scales.append(PointScale(*group_points(source, num_groups, size)))
            source = scales[-1].centres
        return scales

    def encode(self, scales: list[PointScale], masks: list[torch.Tensor] | None, output_attentions: bool = False):
        """Per scale: ``(normalised visible tokens [B, L, D], valid [B, L])``, and the attention maps."""
        outputs, attentions, tokens = [], [], None
        for i, scale in enumerate(scales):
            groups = scale.local if i == 0 else gather_points(tokens, scale.indices)
            tokens = self.token_embeds[i](groups)
            visible = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device) if masks is None else ~masks[i]
            packed, valid = pack_visible(tokens, visible)
            centres, _ = pack_visible(scale.centres, visible)
            bias = None
            if not bool(valid.all()):
                bias = torch.zeros(valid.shape, dtype=packed.dtype, device=packed.device)
                bias = bias.masked_fill(~valid, torch.finfo(packed.dtype).min)[:, None, None, :]
            encoded, weights = self.stages[i](packed, self.pos_embeds[i](centres), bias, output_attentions)
            attentions.extend(weights)
            outputs.append((self.norms[i](encoded), valid))
            tokens = unpack_visible(encoded, valid, visible, tokens)
        return outputs, attentions

    def forward(
        self,
        points: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> I2PMAEModelOutput | tuple:
        r"""
        points (`torch.FloatTensor` of shape `(batch_size, num_points, 3)`): clouds from
            [`PointCloudFeatureExtractor`] (centred, in the unit sphere).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        scales = self.group(self.check_points(points))
        outputs, attentions = self.encode(scales, None, bool(output_attentions))
        top = outputs[-1][0]
        output = I2PMAEModelOutput(
            last_hidden_state=top, pooler_output=top.max(dim=1).values,
            hidden_states=tuple(tokens for tokens, _ in outputs) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()

    def pooled_features(self, points: torch.Tensor, pooling: str | None = None, **kwargs) -> torch.Tensor:
        """``[B, D]``: max over the top-scale tokens (``pooling="mean"``: their mean)."""
        output = self(points, return_dict=True)
        return output.last_hidden_state.mean(dim=1) if pooling == "mean" else output.pooler_output


class I2PMAEForPreTraining(TeacherHolderMixin, I2PMAEPreTrainedModel):
    """I2P-MAE pre-training: 2-D-guided masking, hierarchical encoding, coarse-to-fine decoding, Chamfer-L2 on
    masked groups + MSE of visible tokens against back-projected teacher features. The frozen teacher is held
    outside the module tree (not saved; see ``hf_mim.teacher.TeacherHolderMixin``); ``teacher`` (module / path /
    config dict) overrides the config's for this instance."""

    teacher_names = ("teacher",)

    def __init__(self, config: I2PMAEConfig, teacher=None):
        super().__init__(config)
        self.encoder = I2PMAEModel(config)
        widths = config.encoder_hidden_sizes[::-1][: len(config.decoder_depths)]
        self.mask_token = nn.Parameter(torch.zeros(1, widths[0]))
        rates = drop_path_rates(config.drop_path_rate, sum(config.decoder_depths))
        starts = [sum(config.decoder_depths[:j]) for j in range(len(widths))]
        self.decoder_stages = tag_init(nn.ModuleList(
            PointStage(config, dim, rates[start : start + depth]) for dim, start, depth in zip(widths, starts, config.decoder_depths)
        ), "xavier")
        self.decoder_pos_embeds = nn.ModuleList(centre_embedding(dim) for dim in widths)
        self.propagations = nn.ModuleList(
            FeaturePropagation(widths[j] + widths[j - 1], widths[j], config.propagation_blocks) for j in range(1, len(widths))
        )
        self.decoder_norm = nn.LayerNorm(widths[-1], eps=config.layer_norm_eps)
        size = config.group_sizes[config.reconstruction_scale]
        self.coordinate_head = nn.Linear(widths[-1], 3 * size)
        self.feature_head = nn.Linear(widths[-1], 3 * config.teacher_hidden_size * size)
        self._setup_teachers(**({"teacher": teacher} if teacher is not None else {}))
        self.post_init()

    def teacher_kwargs(self, name: str) -> dict:
        # depth images are normalised with ImageNet statistics and fed to the teacher unchanged, as official
        return {"need_attentions": True, "teacher_mean": None, "teacher_std": None}

    # ------------------------------------------------------------------ the 2-D teacher on depth projections
    def project(self, points: torch.Tensor):
        """3 depth images per cloud ``[3B, 3, S, S]`` (views stacked view-major, ImageNet-normalised grey) and
        each view's projection geometry."""
        images, geometries = [], []
        for v in range(3):
            image, geometry = depth_projection(view(points, v), self.config.projection_size, self.config.splat_radius)
            images.append(image)
            geometries.append(geometry)
        mean = torch.tensor(IMAGENET_MEAN, dtype=points.dtype, device=points.device).reshape(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=points.dtype, device=points.device).reshape(1, 3, 1, 1)
        return (torch.cat(images).expand(-1, 3, -1, -1) - mean) / std, geometries

    def teacher_maps(self, images: torch.Tensor):
        """Teacher feature maps ``[3B, C, h, w]`` (final patch tokens) and saliency ``[3B, 1, h, w]`` (cls -> patch
        attention of the last block, averaged over heads)."""
        teacher = self.teacher
        output = teacher(images, output_attentions=True)
        prefix = output.num_prefix_tokens
        tokens = output.last_hidden_state if output.last_hidden_state is not None else output.hidden_states[-1]
        post_norm = getattr(teacher.model, "post_layernorm", None)  # CLIP's final norm (its ln_post)
        tokens = post_norm(tokens) if post_norm is not None else tokens
        patches = tokens[:, prefix:]
        side = int(patches.shape[1] ** 0.5)
        if side * side != patches.shape[1] or patches.shape[-1] != self.config.teacher_hidden_size:
            raise ValueError(
                f"the teacher gives {patches.shape[1]} patch tokens of width {patches.shape[-1]}; I2P-MAE needs a square "
                f"patch grid and config.teacher_hidden_size={self.config.teacher_hidden_size}"
            )
        saliency = cls_attention_importance(output.attentions[-1], prefix)
        return patches.transpose(1, 2).reshape(-1, patches.shape[-1], side, side), saliency.reshape(-1, 1, side, side)

    def back_project_views(self, points: torch.Tensor, maps: torch.Tensor, geometries) -> list[torch.Tensor]:
        """``maps`` (view-major ``[3B, C, h, w]``) at ``points [B, N, 3]``: one ``[B, N, C]`` per view."""
        per_view = maps.chunk(3)
        return [back_project(view(points, v), per_view[v], geometries[v], self.config.projection_size) for v in range(3)]

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        points: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> I2PMAEPreTrainingOutput | tuple:
        r"""
        points (`torch.FloatTensor` of shape `(batch_size, num_points, 3)`): clouds from
            [`PointCloudFeatureExtractor`].
        bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, num_groups[-1])`, *optional*): top-scale mask
            (True = masked), the same count per cloud, some but not all; default: 2-D-guided from `mask_rng`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        points = self.check_points(points)
        scales = self.encoder.group(points)
        top_centres = scales[-1].centres
        images, geometries = self.project(points)
        with torch.no_grad():
            feature_maps, saliency_maps = self.teacher_maps(images)
            saliency = torch.stack(self.back_project_views(top_centres, saliency_maps, geometries)).mean(0).squeeze(-1)
        if bool_masked_pos is None:
            bool_masked_pos = guided_mask(saliency, config.mask_ratio, self.mask_rng)
        bool_masked_pos = self.check_mask(bool_masked_pos.to(points.device), top_centres.shape[:2])
        masks = propagate_mask(bool_masked_pos, scales)
        encoded, attentions = self.encoder.encode(scales, masks, bool(output_attentions))

        # decoder, coarse to fine: the top scale with mask tokens at masked places, feature propagation below. The
        # official code decodes [visible, masked] order; blocks and propagation do not depend on token order.
        tokens, valid = encoded[-1]
        x = unpack_visible(tokens, valid, ~masks[-1], self.mask_token.to(tokens.dtype).expand(*masks[-1].shape, -1))
        centres = top_centres
        for j, stage in enumerate(self.decoder_stages):
            if j > 0:
                i = len(scales) - 1 - j
                tokens, valid = encoded[i]
                fine = unpack_visible(tokens, valid, ~masks[i], tokens.new_zeros(*masks[i].shape, tokens.shape[-1]))
                x = self.propagations[j - 1](scales[i].centres, centres, fine, x)
                centres = scales[i].centres
            x, weights = stage(x, self.decoder_pos_embeds[j](centres), None, bool(output_attentions))
            attentions.extend(weights)
        x = self.decoder_norm(x)

        r = config.reconstruction_scale
        mask, scale, size, batch = masks[r], scales[r], config.group_sizes[r], points.shape[0]
        dtype = torch.promote_types(x.dtype, torch.float32)  # half precision upcast, float64 kept
        predicted = self.coordinate_head(x[mask]).reshape(-1, size, 3)
        coordinate_loss = chamfer_l2(predicted.to(dtype), scale.local[mask].to(dtype))
        predicted_features = self.feature_head(x[~mask]).to(dtype)
        targets = torch.cat(self.back_project_views(scale.members.flatten(1, 2), feature_maps, geometries), dim=-1)
        targets = targets.reshape(batch, mask.shape[1], size, -1)[~mask]
        feature_loss = nn.functional.mse_loss(predicted_features.reshape(targets.shape), targets.to(dtype))
        output = I2PMAEPreTrainingOutput(
            loss=coordinate_loss + feature_loss, coordinate_loss=coordinate_loss, feature_loss=feature_loss,
            logits=predicted, bool_masked_pos=bool_masked_pos, saliency=saliency,
            hidden_states=tuple(tokens for tokens, _ in encoded) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()

    def check_mask(self, mask: torch.Tensor, shape) -> torch.Tensor:
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
            raise ValueError(f"bool_masked_pos must be a bool tensor of shape {list(shape)} (top-scale tokens), got "
                             f"{mask.dtype} {tuple(mask.shape)}; pass mask.bool() for a 0/1 mask")
        if mask.device.type == "meta":
            return mask
        counts = mask.sum(dim=1)
        for bad, problem in ((counts == 0, "hides no patch"), (counts == shape[1], "hides every patch")):
            if bool(bad.any()):
                raise ValueError(f"bool_masked_pos {problem} (top-scale token) of a cloud: mask some but not all")
        if not bool((counts == counts[0]).all()):
            raise ValueError(f"bool_masked_pos masks {counts.tolist()} of {shape[1]} tokens per cloud: mask the same number "
                             "in every cloud (the decoder appends one mask token per masked place)")
        return mask

    def mask_generator(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random top-scale mask at ``config.mask_ratio`` (uniform saliency; used by ``MethodSpec.make_inputs``)."""
        return guided_mask(torch.zeros(batch_size, self.config.num_groups[-1]), self.config.mask_ratio, generator)


class I2PMAEForPointCloudClassification(I2PMAEPreTrainedModel):
    """The encoder (every token visible) + a linear head on the max-pooled top-scale tokens."""

    def __init__(self, config: I2PMAEConfig):
        super().__init__(config)
        self.encoder = I2PMAEModel(config)
        self.classifier = classification_head(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.encoder(points, output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True)
        logits = self.classifier(encoded.pooler_output)
        output = SequenceClassifierOutput(
            loss=None if labels is None else classification_loss(logits, labels, self.config), logits=logits,
            hidden_states=encoded.hidden_states, attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()
