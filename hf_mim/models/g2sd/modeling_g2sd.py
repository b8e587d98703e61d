"""G2SD (Huang et al., CVPR 2023): generic-to-specific distillation of a large MAE into a small one.

Generic distillation (pre-training): a small MAE student and a large pre-trained MAE teacher (encoder AND decoder)
see the SAME masked input (one ``noise`` -> one mask). The student's decoder hidden states (after all its blocks,
before the decoder norm) go through an MLP head and regress, with smooth-L1 (beta 2), the affine-free LayerNorm of
the teacher's decoder hidden states after its block ``teacher_decoder_layer`` (4; before its decoder norm), over
every token (cls, visible and masked; ``supervise_all``). An encoder-feature term (MLP(student encoder output) vs
LN(teacher encoder output before its final norm), cls + visible tokens) is computed but weighted 0, and there is no
pixel loss: pengzhiliang/G2SD ``models_mae.py`` (``forward_decoder`` stops the teacher at ``suplayer``; the student
``encoderfeature_pred`` / ``decoderfeature_pred`` heads) and ``engine_distill.py`` (``loss = 0*loss_feature +
loss_feature_decoder``). Here the student draws the mask and the teacher gets the same ``ids_keep``; the teacher
decoder is read by a forward hook (transformers' ViTMAEDecoder returns only logits), so its later blocks still run.

Specific distillation (fine-tuning): DeiT-style. A distillation token is appended after the position embeddings
(no position of its own); loss = (CE(cls head, labels) + CE(distillation head, argmax of a fine-tuned teacher's
logits)) / 2; the prediction is the mean of both heads (``engine_finetune_dis.py``, ``models_vit.py``).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from hf_mim.layers.decoder import MAEDecoder
from hf_mim.masking.core import restore_sequence
from hf_mim.modeling_utils import (
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTModel,
    PixelTargetMixin,
    classification_head,
    classification_loss,
)
from hf_mim.models.g2sd.configuration_g2sd import G2SDConfig
from hf_mim.models.mae.modeling_mae import masked_mse
from hf_mim.teacher import FrozenTeacher, TeacherHolderMixin, _config_from_dict, build_teacher


class G2SDMlp(nn.Module):
    """timm ``Mlp`` (Linear -> GELU -> Linear, dropout 0): the official feature-prediction heads."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class G2SDDistillationHead(nn.Module):
    """The fine-tuning heads: ``head`` on the cls (or pooled) feature, ``head_dist`` on the distillation token
    ``dist_token``. One module named ``classifier`` so that every fresh fine-tuning weight lives under it."""

    def __init__(self, dim: int, num_labels: int):
        super().__init__()
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.head = classification_head(dim, num_labels)
        self.head_dist = classification_head(dim, num_labels)


class G2SDPreTrainedModel(MIMPreTrainedModel):
    config_class = G2SDConfig

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, G2SDDistillationHead):
            self._trunc_normal(module.dist_token, 0.02)  # DeiT / models_vit.py: trunc_normal_(std=.02)


class G2SDModel(G2SDPreTrainedModel, MIMViTModel):
    """The G2SD student encoder (a plain ViT)."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^decoder_feature_head\.", r"^encoder_feature_head\.", r"^frozen_"]


def decoder_hidden_states(decoder: MAEDecoder, latent: torch.Tensor, ids_restore: torch.Tensor, grid) -> torch.Tensor:
    """The MAE decoder's residual stream after all its blocks, BEFORE ``decoder.norm``: ``[B, (cls) + L, D]`` in
    raster order (``MAEDecoder.forward`` only returns the pixel predictions)."""
    x = decoder.embed(latent)
    if decoder.has_cls_token:
        x = torch.cat([x[:, :1], restore_sequence(x[:, 1:], decoder.mask_token, ids_restore)], dim=1)
    else:
        x = restore_sequence(x, decoder.mask_token, ids_restore)
    x = x + decoder.position_embeddings(grid)
    for block in decoder.blocks:
        x = block(x)[0]
    return x


def _random_model(auto_class, values: dict, seed: int) -> nn.Module:
    config = _config_from_dict(values)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return auto_class.from_config(config)


def load_mae_teacher(source, seed: int = 0) -> nn.Module:
    """A whole pre-trained MAE with its decoder: a module, a Hub id / path (``AutoModelForPreTraining``, so a
    ``vit_mae`` checkpoint keeps its decoder, unlike ``AutoModel``) or a config dict (random, seeded)."""
    from transformers import AutoModelForPreTraining

    if isinstance(source, FrozenTeacher):
        return source.model
    if isinstance(source, nn.Module):
        return source
    if isinstance(source, str):
        return AutoModelForPreTraining.from_pretrained(source)
    if isinstance(source, dict):
        return _random_model(AutoModelForPreTraining, source, seed)
    raise TypeError(f"the G2SD teacher must be an nn.Module, a path / Hub id or a config dict, got {type(source)}")


def decoder_block_name(model: nn.Module, layer: int) -> str:
    """Submodule name of decoder block ``layer`` (1-based) of a transformers ``ViTMAEForPreTraining``
    (``decoder.decoder_layers``) or an hf_mim MAE-style pre-training model (``decoder.blocks``)."""
    decoder = getattr(model, "decoder", None)
    for attribute in ("decoder_layers", "blocks"):
        blocks = getattr(decoder, attribute, None)
        if isinstance(blocks, nn.ModuleList):
            if not 1 <= layer <= len(blocks):
                raise ValueError(f"teacher_decoder_layer must be in [1, {len(blocks)}] (the teacher's decoder depth), got {layer}")
            return f"decoder.{attribute}.{layer - 1}"
    raise ValueError(
        f"the G2SD teacher needs its MAE decoder, but {type(model).__name__} has none: give a transformers "
        "ViTMAEForPreTraining or an hf_mim MAEForPreTraining (e.g. 'facebook/vit-mae-base'), not an encoder"
    )


class FrozenClassifier(nn.Module):
    """The fine-tuned teacher of specific distillation: frozen, always in eval mode, run without gradients;
    returns its logits. Source: a module, a Hub id / path (``AutoModelForImageClassification``) or a config dict."""

    def __init__(self, source, seed: int = 0):
        super().__init__()
        from transformers import AutoModelForImageClassification

        if isinstance(source, nn.Module):
            model = source
        elif isinstance(source, str):
            model = AutoModelForImageClassification.from_pretrained(source)
        elif isinstance(source, dict):
            model = _random_model(AutoModelForImageClassification, source, seed)
        else:
            raise TypeError(f"a classifier teacher must be an nn.Module, a path / Hub id or a config dict, got {type(source)}")
        self.model = model
        self.model.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenClassifier":
        return super().train(False)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        parameter = next(self.model.parameters(), None)
        if parameter is not None and parameter.device != pixel_values.device:
            self.to(pixel_values.device)
        if parameter is not None and not torch.is_autocast_enabled(pixel_values.device.type):
            pixel_values = pixel_values.to(parameter.dtype)
        out = self.model(pixel_values=pixel_values)
        return out.logits if hasattr(out, "logits") else out[0]


class G2SDForPreTraining(TeacherHolderMixin, PixelTargetMixin, G2SDPreTrainedModel):
    """Generic distillation. Optional ``teacher`` (module / path / config dict) overrides the config's teacher for
    this instance (not saved). The teacher is a whole MAE (kept out of ``state_dict`` unless ``save_teacher``)."""

    teacher_names = ("teacher",)

    def __init__(self, config: G2SDConfig, teacher=None):
        super().__init__(config)
        self.encoder = G2SDModel(config)
        self.decoder = MAEDecoder.from_config(config)
        # official: encoderfeature_pred = Mlp(D_s, D_t, D_t), decoderfeature_pred = Mlp(D_dec_s, D_dec_t, D_dec_t)
        self.encoder_feature_head = G2SDMlp(config.hidden_size, config.teacher_hidden_size, config.teacher_hidden_size)
        self.decoder_feature_head = G2SDMlp(
            config.decoder_hidden_size, config.teacher_decoder_hidden_size, config.teacher_decoder_hidden_size
        )
        self.post_init()
        # the mixin's builder would load the teacher with AutoModel (no decoder): G2SD builds its own
        self.__dict__["_teacher_sources"] = {"teacher": teacher} if teacher is not None else {}
        self.__dict__["_teachers"] = {}
        if config.save_teacher:
            self.add_module("frozen_teacher", self._build_mae_teacher(teacher))

    # ------------------------------------------------------------------ teacher
    def _build_mae_teacher(self, source=None) -> FrozenTeacher:
        source = source if source is not None else self.config.teacher_name_or_path
        model = load_mae_teacher(source, self.config.teacher_seed)
        hook = decoder_block_name(model, self.config.teacher_decoder_layer)
        teacher = build_teacher(self.config, model, "teacher", reduce_to_base=False, hook_modules=[hook])
        teacher.__dict__["decoder_target_name"] = hook
        return teacher

    def get_teacher(self, name: str = "teacher") -> FrozenTeacher:
        registered = self._modules.get(f"frozen_{name}")
        if registered is not None:
            return registered
        cache = self.__dict__.setdefault("_teachers", {})
        if cache.get(name) is None:
            cache[name] = self._build_mae_teacher(self.__dict__.get("_teacher_sources", {}).get(name))
        return cache[name]

    def set_teacher(self, source, name: str = "teacher") -> None:
        """Replace the MAE teacher (a module, path / Hub id or config dict) without touching the student."""
        self.__dict__.setdefault("_teacher_sources", {})[name] = source
        self.__dict__.setdefault("_teachers", {})[name] = None
        if f"frozen_{name}" in self._modules:
            self.add_module(f"frozen_{name}", self._build_mae_teacher(source))

    # ------------------------------------------------------------------ pixels (optional term, visualisation)
    def feature_target(self, features: torch.Tensor) -> torch.Tensor:
        """Official target: ``nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)`` of the teacher feature."""
        features = features.detach().float()
        return nn.functional.layer_norm(features, (features.shape[-1],), eps=self.config.target_layer_norm_eps)

    def smooth_l1(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.smooth_l1_loss(prediction.float(), target, beta=self.config.smooth_l1_beta)

    def decoder_distillation_loss(self, student_hidden, teacher_hidden, mask) -> torch.Tensor:
        """smooth-L1(MLP(student decoder hidden), LN(teacher decoder hidden)) over all tokens (``supervise_all``)
        or over the masked patch tokens only."""
        prediction = self.decoder_feature_head(student_hidden)
        if teacher_hidden.shape[:2] != prediction.shape[:2]:
            raise ValueError(
                f"teacher decoder tokens {tuple(teacher_hidden.shape[:2])} do not match the student's "
                f"{tuple(prediction.shape[:2])}: the teacher needs one cls token and the student's patch grid"
            )
        if teacher_hidden.shape[-1] != prediction.shape[-1]:
            raise ValueError(
                f"teacher decoder features have {teacher_hidden.shape[-1]} channels, the head outputs "
                f"{prediction.shape[-1]}: set teacher_decoder_hidden_size={teacher_hidden.shape[-1]}"
            )
        target = self.feature_target(teacher_hidden)
        if not self.config.supervise_all:
            prefix = self.encoder.num_prefix_tokens
            prediction, target = prediction[:, prefix:][mask], target[:, prefix:][mask]
        return self.smooth_l1(prediction, target)

    def encoder_distillation_loss(self, student_latent, teacher_hidden) -> torch.Tensor:
        """smooth-L1(MLP(student encoder output after its norm), LN(teacher encoder output before its norm)) over
        cls + visible tokens (official ``loss_feature``)."""
        prediction = self.encoder_feature_head(student_latent)
        if teacher_hidden.shape[-1] != prediction.shape[-1]:
            raise ValueError(
                f"teacher encoder features have {teacher_hidden.shape[-1]} channels, the head outputs "
                f"{prediction.shape[-1]}: set teacher_hidden_size={teacher_hidden.shape[-1]}"
            )
        return self.smooth_l1(prediction, self.feature_target(teacher_hidden))

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes the random mask (MAE
            semantics); student and teacher see the same mask. bool_masked_pos (`torch.BoolTensor`, *optional*):
            explicit mask, True = masked. mask_ratio (`float`, *optional*): overrides `config.mask_ratio`.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        if not self.config.use_cls_token:
            raise ValueError("G2SD distils MAE decoders with a cls token: set use_cls_token=True")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        grid = self.patch_grid(pixel_values)
        noise = self.noise_or_draw(
            noise, bool_masked_pos, ratio, pixel_values.shape[0], grid[0] * grid[1], pixel_values.device
        )
        encoded = self.encoder(
            pixel_values,
            noise=noise,
            bool_masked_pos=bool_masked_pos,
            mask_ratio=ratio,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        teacher = self.teacher
        teacher_out = teacher(pixel_values, ids_keep=encoded.ids_keep)
        hidden = decoder_hidden_states(self.decoder, encoded.last_hidden_state, encoded.ids_restore, grid)
        decoder_term = self.decoder_distillation_loss(hidden, teacher_out.features[teacher.decoder_target_name], encoded.mask)
        encoder_term = self.encoder_distillation_loss(encoded.last_hidden_state, teacher_out.hidden_states[-1])
        logits = self.decoder.pred(self.decoder.norm(hidden))[:, self.encoder.num_prefix_tokens :]
        pixel_term = masked_mse(logits, self.target(pixel_values), encoded.mask)
        # every term is computed (weight 0 included, as the official 0*loss_feature) so all heads are in the graph
        loss = (
            self.config.decoder_feature_loss_weight * decoder_term
            + self.config.encoder_feature_loss_weight * encoder_term
            + self.config.pixel_loss_weight * pixel_term
        )
        output = MIMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=encoded.mask,
            ids_restore=encoded.ids_restore,
            loss_terms={
                "decoder_feature": decoder_term.detach(),
                "encoder_feature": encoder_term.detach(),
                "pixel": pixel_term.detach(),
            },
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


@dataclass
class G2SDImageClassifierOutput(ImageClassifierOutput):
    """``logits`` = mean of ``cls_logits`` and ``distillation_logits`` (the official inference rule)."""

    cls_logits: torch.Tensor | None = None
    distillation_logits: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None


class G2SDForImageClassification(G2SDPreTrainedModel):
    """Specific distillation: a ViT with a DeiT distillation token and two heads. ``teacher`` (a module, path /
    Hub id or config dict; default ``config.classifier_teacher_name_or_path``) is a fine-tuned classifier with the
    same labels, kept out of the checkpoint. Loss with labels: (CE(head, labels) + CE(head_dist, argmax teacher
    logits)) / 2 as ``engine_finetune_dis.py``; without a teacher both heads are trained on the labels (CE only).

    Pooling ``"cls"`` (official default): both tokens after the encoder norm. ``"mean"``: ``fc_norm`` of the mean
    patch token (the official code also averages in the distillation token; here it is left out) and the
    distillation token before any norm (the official code deletes the norm with global pooling).
    """

    _keys_to_ignore_on_load_unexpected = [r"^(?!encoder\.)", r"^encoder\.mask_token$"]

    def __init__(self, config: G2SDConfig, teacher=None):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = G2SDModel(config)
        dim = config.hidden_size
        if config.pooling == "mean":
            self.fc_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
            self.encoder.norm.requires_grad_(False)
        else:
            self.fc_norm = nn.Identity()
        self.classifier = G2SDDistillationHead(dim, config.num_labels)
        self.post_init()
        self.__dict__["_classifier_teacher_source"] = teacher
        self.__dict__["_classifier_teacher"] = None

    @property
    def has_classifier_teacher(self) -> bool:
        return self.__dict__.get("_classifier_teacher_source") is not None or self.config.classifier_teacher_name_or_path is not None

    @property
    def classifier_teacher(self) -> FrozenClassifier | None:
        if not self.has_classifier_teacher:
            return None
        if self.__dict__.get("_classifier_teacher") is None:
            source = self.__dict__.get("_classifier_teacher_source")
            source = source if source is not None else self.config.classifier_teacher_name_or_path
            self.__dict__["_classifier_teacher"] = FrozenClassifier(source, self.config.teacher_seed)
        return self.__dict__["_classifier_teacher"]

    def set_classifier_teacher(self, source) -> None:
        """Replace (or, with None, remove) the fine-tuned teacher of this instance; nothing is saved."""
        self.__dict__["_classifier_teacher_source"] = source
        self.__dict__["_classifier_teacher"] = None

    def features(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False, output_attentions=None):
        """(class feature, distillation-token feature, all hidden states, attentions). The distillation token is
        appended after the position embeddings and has no position embedding of its own (``models_vit.py``)."""
        encoder = self.encoder
        if encoder.rel_pos_bias is not None:
            raise ValueError("the G2SD distillation token does not support use_shared_relative_position_bias")
        tokens, cls, grid = encoder.embed(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
        dist = self.classifier.dist_token.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        hidden = torch.cat([t for t in (cls, tokens, dist) if t is not None], dim=1)
        normed, all_hidden, all_attn = encoder.run_blocks(hidden, None, True, bool(output_attentions))
        prefix = encoder.num_prefix_tokens
        if self.config.pooling == "cls":
            return normed[:, 0], normed[:, -1], all_hidden, all_attn
        last = all_hidden[-1]
        return self.fc_norm(last[:, prefix:-1].mean(dim=1)), last[:, -1], all_hidden, all_attn

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> G2SDImageClassifierOutput | tuple:
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        want_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        cls_feature, dist_feature, all_hidden, all_attn = self.features(pixel_values, interpolate_pos_encoding, output_attentions)
        cls_logits = self.classifier.head(cls_feature)
        dist_logits = self.classifier.head_dist(dist_feature)
        logits = (cls_logits + dist_logits) / 2
        loss, teacher_logits = None, None
        if labels is not None:
            gt_loss = classification_loss(cls_logits, labels, self.config)
            teacher = self.classifier_teacher
            if teacher is not None:
                teacher_logits = teacher(pixel_values)
                if teacher_logits.shape != dist_logits.shape:
                    raise ValueError(
                        f"the classifier teacher returns logits of shape {tuple(teacher_logits.shape)}, the student "
                        f"{tuple(dist_logits.shape)}: the teacher must be fine-tuned on the same labels"
                    )
                dist_loss = nn.functional.cross_entropy(dist_logits.float(), teacher_logits.argmax(dim=-1))
            else:
                dist_loss = classification_loss(dist_logits, labels, self.config)
            loss = (gt_loss + dist_loss) / 2
        output = G2SDImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=all_hidden if want_hidden else None,
            attentions=all_attn,
            cls_logits=cls_logits,
            distillation_logits=dist_logits,
            teacher_logits=teacher_logits,
        )
        return output if return_dict else output.to_tuple()
