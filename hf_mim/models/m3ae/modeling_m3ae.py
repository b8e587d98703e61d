"""M3AE (Chen et al., MICCAI 2022): masked image + masked text + image-text matching on a dual-stream
vision-language transformer (CLIP vision tower, RoBERTa text tower, co-attention fusion).

One pre-training step runs the three passes of the official ``compute_mlm`` / ``compute_mim`` / ``compute_itm``
(zhjohnchan/M3AE ``m3ae/modules/objectives.py``): masked text with the full image (MLM on the last fusion
layer), full text with 75% of the patches dropped before the CLIP blocks (pixels regressed from the image stream
entering fusion layer ``mim_layer``), and unmasked pairs where half the images are swapped (ITM). Maths follow the
official ``infer`` (``m3ae/modules/m3ae_module.py``), rebuilt on transformers 5 modules: HF CLIP has no masking
hook, so the visible patches take our own path through its embedding weights; CLIP's ``ln_post`` normalises every
token (as the official ``forward_trans``; HF only normalises the pooled token).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig
from transformers import initialization as init
from transformers.models.bert.modeling_bert import (
    BertAttention,
    BertIntermediate,
    BertOutput,
    BertPredictionHeadTransform,
)
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings, CLIPVisionModel
from transformers.models.roberta.modeling_roberta import RobertaModel
from transformers.utils import ModelOutput

from hf_mim.layers.decoder import MAEDecoder
from hf_mim.masking.core import gather_tokens
from hf_mim.modeling_utils import MIMPreTrainedModel, PixelTargetMixin
from hf_mim.models.m3ae.configuration_m3ae import M3AEConfig

TEXT, IMAGE = 0, 1  # modality-type embedding ids (official: text 0, image ``image_token_type_idx`` = 1)


@dataclass
class M3AEModelOutput(ModelOutput):
    """text_hidden_state / image_hidden_state: the last fusion layer's streams; pooler_output: ``[text cls; image
    cls]`` after the two poolers (what the ITM head reads); mim_hidden_state: the image stream read by the pixel
    decoder (entering fusion layer ``mim_layer``); mask / ids_restore: the image mask (True = hidden) when one was
    applied."""

    text_hidden_state: torch.Tensor | None = None
    image_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    mim_hidden_state: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    ids_restore: torch.Tensor | None = None


@dataclass
class M3AEPreTrainingOutput(ModelOutput):
    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    mim_loss: torch.Tensor | None = None
    itm_loss: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # MIM pixel predictions [B, L, p*p*3]
    itm_logits: torch.Tensor | None = None
    itm_labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None


def fusion_bert_config(config: M3AEConfig) -> BertConfig:
    """The BERT layer config of the fusion layers and the MLM head (official ``bert_config``)."""
    return BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        hidden_act=config.text_config.hidden_act,
        layer_norm_eps=config.text_config.layer_norm_eps,
        attn_implementation="eager",
    )


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, K]`` 1/0 keep mask -> ``[B, 1, 1, K]`` additive attention bias (official ``(1 - m) * -10000``)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class M3AEFusionLayer(nn.Module):
    """Self-attention, cross-attention to the other stream, feed-forward; post-norm BERT sublayers (official
    ``BertCrossLayer``)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.crossattention = BertAttention(config, is_cross_attention=True)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states, other_states, attention_bias, other_bias):
        hidden_states = self.attention(hidden_states, attention_mask=attention_bias)[0]
        hidden_states = self.crossattention(
            hidden_states, encoder_hidden_states=other_states, encoder_attention_mask=other_bias
        )[0]
        return self.output(self.intermediate(hidden_states), hidden_states)


class M3AEPooler(nn.Module):
    """tanh(dense(first token)), official ``Pooler``."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))


class M3AEMLMHead(nn.Module):
    """Official ``MLMHead``: dense + activation + LayerNorm, then a bias-free projection to the vocabulary plus one
    bias vector."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states)) + self.bias


class M3AEPreTrainedModel(MIMPreTrainedModel):
    config_class = M3AEConfig
    base_model_prefix = "m3ae"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    _no_split_modules = ["M3AEFusionLayer", "CLIPEncoderLayer", "RobertaLayer", "TransformerBlock"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Official ``init_weights`` (normal(0.02) Linear/Embedding, zero bias, unit LayerNorm) for every part;
        the towers are normally loaded from pre-trained CLIP / RoBERTa checkpoints."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, CLIPVisionEmbeddings):
            init.normal_(module.class_embedding, std=std)
            init.normal_(module.patch_embedding.weight, std=std)
            init.copy_(module.position_ids, torch.arange(module.num_positions).expand((1, -1)))
        elif isinstance(module, M3AEMLMHead):
            init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm) or isinstance(module, MAEDecoder):
            super()._init_weights(module)
        elif hasattr(module, "position_ids") and hasattr(module, "token_type_ids"):  # RoBERTa embeddings buffers
            length = module.position_ids.shape[-1]
            init.copy_(module.position_ids, torch.arange(length).expand((1, -1)))
            init.zeros_(module.token_type_ids)


class M3AEModel(M3AEPreTrainedModel):
    """The two towers, their projections to the fusion width, modality-type embeddings and the co-attention
    fusion; ``forward`` with an image mask runs the MIM pass's encoder (visible patches only)."""

    def __init__(self, config: M3AEConfig):
        super().__init__(config)
        self.vision_model = CLIPVisionModel(config.vision_config)
        self.text_model = RobertaModel(config.text_config, add_pooling_layer=False)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.hidden_size)
        self.vision_projection = nn.Linear(config.vision_config.hidden_size, config.hidden_size)
        self.modality_type_embeddings = nn.Embedding(2, config.hidden_size)
        layer_config = fusion_bert_config(config)
        self.text_fusion_layers = nn.ModuleList([M3AEFusionLayer(layer_config) for _ in range(config.num_fusion_layers)])
        self.vision_fusion_layers = nn.ModuleList(
            [M3AEFusionLayer(layer_config) for _ in range(config.num_fusion_layers)]
        )
        self.text_pooler = M3AEPooler(config.hidden_size)
        self.vision_pooler = M3AEPooler(config.hidden_size)
        self.post_init()

    @property
    def num_patches(self) -> int:
        return (self.config.image_size // self.config.patch_size) ** 2

    def check_inputs(self, input_ids, pixel_values) -> None:
        if input_ids is None or pixel_values is None:
            missing = "input_ids (captions)" if input_ids is None else "pixel_values (images)"
            raise ValueError(f"M3AE needs image-caption pairs but the batch has no {missing}: pass both modalities")
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"{input_ids.shape[0]} captions but {pixel_values.shape[0]} images: M3AE needs one caption per image"
            )
        if input_ids.shape[1] > self.config.max_text_length:
            raise ValueError(
                f"captions of {input_ids.shape[1]} tokens are longer than the text model allows "
                f"({self.config.max_text_length}): tokenize with truncation=True, max_length={self.config.max_text_length}"
            )
        size = self.config.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[-2:]) != (size, size):
            raise ValueError(f"pixel_values must be [batch, channels, {size}, {size}], got {tuple(pixel_values.shape)}")

    def encode_image(self, pixel_values: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """CLIP ViT on all patches or only ``ids_keep``; position embeddings are added before dropping patches
        (official ``random_masking``), ``ln_post`` on every token."""
        vision = self.vision_model
        embeddings = vision.embeddings
        weight = embeddings.patch_embedding.weight
        patches = embeddings.patch_embedding(pixel_values.to(weight.dtype)).flatten(2).transpose(1, 2)
        positions = embeddings.position_embedding.weight
        patches = patches + positions[1:]
        if ids_keep is not None:
            patches = gather_tokens(patches, ids_keep)
        cls = (embeddings.class_embedding + positions[0]).expand(patches.shape[0], 1, -1)
        hidden = vision.pre_layrnorm(torch.cat([cls, patches], dim=1))
        for layer in vision.encoder.layers:
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return vision.post_layernorm(hidden)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_image: bool = False,
        **kwargs,
    ) -> M3AEModelOutput:
        """``mask_image`` (or an explicit ``noise`` / ``bool_masked_pos``) drops ``mask_ratio`` of the patches."""
        self.check_inputs(input_ids, pixel_values)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask_info = None
        if mask_image or noise is not None or bool_masked_pos is not None:
            mask_info = self.compute_mask(
                input_ids.shape[0], self.num_patches, pixel_values.device, noise, bool_masked_pos,
                self.config.mask_ratio,
            )
        text = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        text = self.text_projection(text)
        image = self.vision_projection(self.encode_image(pixel_values, mask_info.ids_keep if mask_info else None))
        type_ids = torch.tensor([TEXT, IMAGE], device=text.device)
        types = self.modality_type_embeddings(type_ids)
        x, y = text + types[0], image + types[1]
        text_bias = additive_mask(attention_mask, x.dtype)
        image_bias = additive_mask(torch.ones(y.shape[:2], device=y.device), y.dtype)
        mim_hidden = None
        for index, (text_layer, image_layer) in enumerate(zip(self.text_fusion_layers, self.vision_fusion_layers)):
            if index == self.config.mim_layer:
                mim_hidden = y
            x, y = text_layer(x, y, text_bias, image_bias), image_layer(y, x, image_bias, text_bias)
        if mim_hidden is None:
            mim_hidden = y
        pooled = torch.cat([self.text_pooler(x), self.vision_pooler(y)], dim=-1)
        return M3AEModelOutput(
            text_hidden_state=x,
            image_hidden_state=y,
            pooler_output=pooled,
            mim_hidden_state=mim_hidden,
            mask=mask_info.mask if mask_info else None,
            ids_restore=mask_info.ids_restore if mask_info else None,
        )


class M3AEForPreTraining(PixelTargetMixin, M3AEPreTrainedModel):
    """MLM + MIM + ITM, equal weights, three passes per step (official ``compute_mlm/mim/itm``)."""

    def __init__(self, config: M3AEConfig):
        super().__init__(config)
        self.m3ae = M3AEModel(config)
        head_config = fusion_bert_config(config)
        self.mlm_head = M3AEMLMHead(head_config)
        grid = config.image_size // config.patch_size
        # official MIMHead: CLIP blocks (QuickGELU, LayerNorm eps 1e-5, 4x MLP), sin-cos positions with a cls slot
        self.decoder = MAEDecoder(
            config,
            encoder_dim=config.hidden_size,
            dim=config.decoder_hidden_size,
            depth=config.decoder_num_hidden_layers,
            num_heads=config.decoder_num_attention_heads,
            intermediate_size=4 * config.decoder_hidden_size,
            grid_size=(grid, grid),
            output_dim=config.patch_size**2 * config.num_channels,
            layer_norm_eps=1e-5,
            hidden_act="quick_gelu",
        )
        self.itm_head = nn.Linear(2 * config.hidden_size, 2)
        self.post_init()

    def draw_itm_labels(self, batch_size: int, device) -> torch.Tensor:
        """Official ``compute_itm``: half the pairs matched (1), half swapped (0), in random order."""
        positives = batch_size // 2
        labels = torch.cat([torch.ones(positives), torch.zeros(batch_size - positives)]).long()
        order = torch.randperm(batch_size, generator=self.mask_rng) if self.mask_rng else torch.randperm(batch_size)
        return labels[order].to(device)

    @staticmethod
    def swapped_images(pixel_values: torch.Tensor, itm_labels: torch.Tensor) -> torch.Tensor:
        """Pairs labelled 0 get the next sample's image. The official loader draws a random other image of the
        dataset (``false_image_0``); the batch's neighbour is such an image without a second data read."""
        if pixel_values.shape[0] < 2:
            raise ValueError("image-text matching needs a batch of at least 2 pairs to swap images between them")
        keep = itm_labels.bool().view(-1, 1, 1, 1)
        return torch.where(keep, pixel_values, pixel_values.roll(1, dims=0))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        itm_labels: torch.Tensor | None = None,
        **kwargs,
    ) -> M3AEPreTrainingOutput:
        """``mlm_input_ids`` / ``mlm_labels``: the whole-word-masked captions and their targets (-100 = not masked;
        see :func:`hf_mim.models.m3ae.whole_word_mask`); ``noise`` / ``bool_masked_pos``: the image mask (drawn
        when absent); ``itm_labels``: 1 = matched, 0 = swapped image (drawn 50/50 when absent)."""
        self.m3ae.check_inputs(input_ids, pixel_values)
        if (mlm_input_ids is None) != (mlm_labels is None):
            raise ValueError("pass mlm_input_ids and mlm_labels together (the masked captions and their targets)")
        if mlm_input_ids is None:
            raise ValueError(
                "M3AE's MLM pass needs masked captions: pass mlm_input_ids and mlm_labels (hf_mim's M3AE collator "
                "makes them with whole-word masking)"
            )
        if mlm_input_ids.shape != input_ids.shape or mlm_labels.shape != input_ids.shape:
            raise ValueError("mlm_input_ids and mlm_labels must have the shape of input_ids")
        # MLM pass: masked text, full image, last fusion layer
        mlm = self.m3ae(mlm_input_ids, attention_mask, pixel_values)
        mlm_logits = self.mlm_head(mlm.text_hidden_state)
        mlm_loss = F.cross_entropy(mlm_logits.flatten(0, 1).float(), mlm_labels.flatten(), ignore_index=-100)
        # MIM pass: full text, masked image, pixels from the image stream entering fusion layer mim_layer
        mim = self.m3ae(input_ids, attention_mask, pixel_values, noise=noise, bool_masked_pos=bool_masked_pos,
                        mask_image=True)
        logits = self.decoder(mim.mim_hidden_state, mim.ids_restore)
        per_patch = (logits.float() - self.target(pixel_values).float()).square().mean(-1)
        mask = mim.mask.to(per_patch.dtype)
        mim_loss = (per_patch * mask).sum() / mask.sum()
        # ITM pass: no masking, half the images swapped
        if itm_labels is None:
            itm_labels = self.draw_itm_labels(input_ids.shape[0], input_ids.device)
        itm = self.m3ae(input_ids, attention_mask, self.swapped_images(pixel_values, itm_labels))
        itm_logits = self.itm_head(itm.pooler_output)
        itm_loss = F.cross_entropy(itm_logits.float(), itm_labels.long())
        return M3AEPreTrainingOutput(
            loss=mlm_loss + mim_loss + itm_loss,
            mlm_loss=mlm_loss,
            mim_loss=mim_loss,
            itm_loss=itm_loss,
            mlm_logits=mlm_logits,
            logits=logits,
            itm_logits=itm_logits,
            itm_labels=itm_labels,
            mask=mim.mask,
        )

    @torch.no_grad()
    def matching_scores(self, input_ids, attention_mask, pixel_values) -> torch.Tensor:
        """P(matched) of each (caption, image) pair from the ITM head: the retrieval score the paper ranks with."""
        pooled = self.m3ae(input_ids, attention_mask, pixel_values).pooler_output
        return self.itm_head(pooled).softmax(-1)[:, 1]


def whole_word_mask(
    input_ids: torch.Tensor,
    word_starts: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    probability: float,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT whole-word masking as ``DataCollatorForWholeWordMask`` (the official text collator): each word
    (a ``word_starts`` token and the continuation tokens after it) is chosen with ``probability``; chosen tokens
    become [MASK] 80%, a random token 10%, unchanged 10%. Returns ``(masked_ids, labels)``, labels -100 elsewhere.
    Per-word Bernoulli draws replace the collator's shuffle-and-take-15% (same expected rate)."""
    special = special_tokens_mask.bool()
    starts = word_starts.bool() & ~special
    word_index = starts.long().cumsum(1)  # word k of a row: tokens from its start up to the next start
    draws = torch.rand(word_index.shape, generator=generator) < probability
    chosen = torch.gather(draws, 1, word_index.clamp(max=draws.shape[1] - 1)) & (word_index > 0) & ~special
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=generator)
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator)
    masked = torch.where(chosen & (roll < 0.8), torch.full_like(input_ids, mask_token_id), input_ids)
    masked = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_tokens, masked)
    return masked, labels
