"""M3AE configuration (Chen et al., MICCAI 2022, "Multi-Modal Masked Autoencoders for Medical Vision-and-Language
Pre-Training")."""

from transformers import CLIPVisionConfig, PreTrainedConfig, RobertaConfig

from hf_mim.configuration_utils import check_positive


class M3AEConfig(PreTrainedConfig):
    r"""
    A CLIP vision tower and a RoBERTa text tower, `num_fusion_layers` co-attention layers per stream, an MAE-style
    pixel decoder on an intermediate fusion layer, an MLM head and an image-text matching head. Defaults are the
    official pre-training recipe (zhjohnchan/M3AE `config.py` `task_pretrain_m3ae` + `clip16` + `text_roberta`,
    `run_scripts/pretrain_m3ae.sh`), image size 224.

    Args:
        vision_config (`dict` or `CLIPVisionConfig`): the image tower (ViT-B/16: 768 wide, heads = width // 64).
            Its `num_hidden_layers` counts the blocks that run: the official CLIP `Transformer` builds
            `layers - 1` blocks, so ViT-B/16's 12 becomes 11.
        text_config (`dict` or `RobertaConfig`): the text tower (roberta-base; `max_position_embeddings` bounds the
            caption length: 64 tokens + RoBERTa's 2 offset positions).
        hidden_size (`int`, defaults to 768), num_fusion_layers (`int`, defaults to 6), num_attention_heads (`int`,
            defaults to 12), intermediate_size (`int`, defaults to 3072), hidden_dropout_prob /
            attention_probs_dropout_prob (`float`, defaults to 0.1): the co-attention fusion layers
            (`num_top_layer`, `hidden_size`, `num_heads`, `mlp_ratio`, `drop_rate`).
        mim_layer (`int`, defaults to 3): the pixel decoder reads the image stream *entering* fusion layer
            `mim_layer` (official `infer` stores the features before that layer runs); -1 = the last output.
        mask_ratio (`float`, defaults to 0.75): fraction of image patches hidden in the MIM pass (`mim_prob`).
        mlm_probability (`float`, defaults to 0.15): whole-word masking rate of the MLM pass (`mlm_prob`).
        decoder_hidden_size (`int`, defaults to 384), decoder_num_hidden_layers (`int`, defaults to 4),
            decoder_num_attention_heads (`int`, defaults to 6): the MIM head. The official `MIMHead` asks for
            `mim_decoder_num_layers + 1` = 5 layers of the CLIP `Transformer`, which builds one fewer: 4 blocks run.
        norm_pix_loss (`bool`, defaults to True): MSE on per-patch normalised pixels.
        initializer_range (`float`, defaults to 0.02): normal init std of fusion layers and heads (`init_weights`).
    """

    model_type = "m3ae"
    sub_configs = {"vision_config": CLIPVisionConfig, "text_config": RobertaConfig}

    vision_config: dict | CLIPVisionConfig | None = None
    text_config: dict | RobertaConfig | None = None
    hidden_size: int = 768
    num_fusion_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    mim_layer: int = 3
    mask_ratio: float = 0.75
    mlm_probability: float = 0.15
    decoder_hidden_size: int = 384
    decoder_num_hidden_layers: int = 4
    decoder_num_attention_heads: int = 6
    norm_pix_loss: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        vision = self.vision_config if self.vision_config is not None else {}
        if isinstance(vision, dict):
            vision = CLIPVisionConfig(**{
                "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 11, "num_attention_heads": 12,
                "image_size": 224, "patch_size": 16, **vision,
            })
        text = self.text_config if self.text_config is not None else {}
        if isinstance(text, dict):
            text = RobertaConfig(**{"max_position_embeddings": 66, **text})
        self.vision_config, self.text_config = vision, text
        check_positive(self, "hidden_size", "num_fusion_layers", "num_attention_heads", "intermediate_size",
                       "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads")
        for width, heads, what in ((self.hidden_size, self.num_attention_heads, "hidden_size"),
                                   (self.decoder_hidden_size, self.decoder_num_attention_heads, "decoder_hidden_size")):
            if width % heads:
                raise ValueError(f"{what} {width} must be divisible by its number of attention heads {heads}")
        if not -1 <= self.mim_layer < self.num_fusion_layers:
            raise ValueError(f"mim_layer must be -1 (last) or in [0, {self.num_fusion_layers}), got {self.mim_layer}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        super().__post_init__(**kwargs)

    # the shared image tooling (processor, patchify) reads these from the top-level config
    @property
    def image_size(self) -> int:
        return self.vision_config.image_size

    @property
    def patch_size(self) -> int:
        return self.vision_config.patch_size

    @property
    def num_channels(self) -> int:
        return self.vision_config.num_channels

    @property
    def vocab_size(self) -> int:
        return self.text_config.vocab_size

    @property
    def max_text_length(self) -> int:
        """Longest caption (tokens incl. specials) the text tower can embed: RoBERTa's positions start after
        `pad_token_id`."""
        offset = (self.text_config.pad_token_id + 1) if self.text_config.model_type == "roberta" else 0
        return self.text_config.max_position_embeddings - offset
