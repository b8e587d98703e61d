# Generated from hf_mim.models.hicmae.configuration_hicmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""HiCMAE configuration (Sun et al., Information Fusion 2024, "HiCMAE: Hierarchical Contrastive Masked Autoencoder
for Self-Supervised Audio-Visual Emotion Recognition")."""

from .mim_configuration_utils import MIMViTConfig, TubeletGridMixin, check_positive


class HiCMAEConfig(TubeletGridMixin, MIMViTConfig):
    r"""
    Two towers and a fusion encoder, one flat config with prefixed fields: the video encoder uses the
    [`MIMViTConfig`] fields (``image_size``, ``patch_size``, ``hidden_size``, ...) over ``tubelet_size x patch x
    patch`` tubelets; the audio encoder the ``audio_*`` fields over ``audio_patch_size`` squares of a
    ``[audio_length, num_mel_bins]`` Kaldi filter bank; the fusion encoder the ``fusion_*`` fields. Defaults are
    the official base model (``pretrain_hicmae_dim512_patch16_160_a256`` with the settings of
    ``scripts/voxceleb2/.../pretrain_base.sh``: 10 + 10 encoder blocks, 2 fusion blocks, 4-block 384-d decoders,
    tube mask 0.9, audio mask 0.8, frame-difference targets, InfoNCE weight 0.0025 at tau 0.07 on layers 3, 6, 9).
    The 384-d variant is ``hidden_size=audio_hidden_size=384``, heads 6, decoder 192-d with 3 heads.

    Args:
        num_frames (`int`, defaults to 16), tubelet_size (`int`, defaults to 2): video clip length and frames per
            token. (The official patch embedding hard-wires 16 frames; here it follows ``num_frames``.)
        audio_length (`int`, defaults to 256), num_mel_bins (`int`, defaults to 128): filter-bank frames x bins.
        audio_patch_size (`int`, defaults to 16), audio_hidden_size (`int`, defaults to 512),
        audio_num_hidden_layers (`int`, defaults to 10), audio_num_attention_heads (`int`, defaults to 8),
        audio_intermediate_size (`int`, defaults to 2048): audio encoder.
        fusion_num_hidden_layers (`int`, defaults to 2), fusion_num_attention_heads (`int`, defaults to 8): the
            cross-modal fusion encoder (each block: cross-attention to the other modality, self-attention, MLP).
        decoder_hidden_size (`int`, defaults to 384), decoder_num_hidden_layers (`int`, defaults to 4),
        decoder_num_attention_heads (`int`, defaults to 6), decoder_intermediate_size (`int`, defaults to 1536):
            both decoders (the official presets give the video and audio decoders the same shape).
        skip_connection_layers (`list[int]`, defaults to `[3, 6, 9]`): 0-based encoder blocks whose (normed)
            outputs feed the hierarchical InfoNCE and the decoders' cross-attention (decoder block ``i > 0`` reads
            ``skip_connection_layers[-i]``); exactly ``decoder_num_hidden_layers - 1`` of them.
        mask_ratio (`float`, defaults to 0.9): video tube masking. audio_mask_ratio (`float`, defaults to 0.8).
        norm_pix_loss (`bool`, defaults to True): per-patch normalised targets (both modalities).
        use_frame_diff_as_target (`bool`, defaults to True): the second frame of every tubelet is predicted as
            its difference to the first (official ``--use_frame_diff_as_target``, group size = tubelet size).
        contrastive_weight (`float`, defaults to 0.0025), contrastive_temperature (`float`, defaults to 0.07).
    """

    model_type = "hicmae"

    image_size: int | list[int] | tuple[int, int] = 160
    num_frames: int = 16
    tubelet_size: int = 2
    hidden_size: int = 512
    num_hidden_layers: int = 10
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    qkv_bias: bool | str = "qv"
    use_cls_token: bool = False
    audio_length: int = 256
    num_mel_bins: int = 128
    audio_patch_size: int = 16
    audio_hidden_size: int = 512
    audio_num_hidden_layers: int = 10
    audio_num_attention_heads: int = 8
    audio_intermediate_size: int = 2048
    fusion_num_hidden_layers: int = 2
    fusion_num_attention_heads: int = 8
    decoder_hidden_size: int = 384
    decoder_num_hidden_layers: int = 4
    decoder_num_attention_heads: int = 6
    decoder_intermediate_size: int = 1536
    skip_connection_layers: list[int] | tuple[int, ...] = (3, 6, 9)
    mask_ratio: float = 0.9
    audio_mask_ratio: float = 0.8
    norm_pix_loss: bool = True
    use_frame_diff_as_target: bool = True
    contrastive_weight: float = 0.0025
    contrastive_temperature: float = 0.07

    def __post_init__(self, **kwargs):
        self.skip_connection_layers = [int(layer) for layer in self.skip_connection_layers]
        check_positive(
            self, "num_frames", "tubelet_size", "audio_length", "num_mel_bins", "audio_patch_size", "audio_hidden_size",
            "audio_num_hidden_layers", "audio_num_attention_heads", "fusion_num_attention_heads", "decoder_hidden_size",
            "decoder_num_hidden_layers", "decoder_num_attention_heads",
        )
        if self.num_frames % self.tubelet_size:
            raise ValueError(f"num_frames {self.num_frames} is not divisible by tubelet_size {self.tubelet_size}")
        if self.audio_length % self.audio_patch_size or self.num_mel_bins % self.audio_patch_size:
            raise ValueError(
                f"the {self.audio_length}x{self.num_mel_bins} filter bank is not divisible by audio_patch_size "
                f"{self.audio_patch_size}"
            )
        for name, dim, heads in (
            ("audio", self.audio_hidden_size, self.audio_num_attention_heads),
            ("decoder", self.decoder_hidden_size, self.decoder_num_attention_heads),
            ("fusion (video)", self.hidden_size, self.fusion_num_attention_heads),
            ("fusion (audio)", self.audio_hidden_size, self.fusion_num_attention_heads),
        ):
            if dim % heads:
                raise ValueError(f"{name} width {dim} is not divisible by its {heads} attention heads")
        if len(self.skip_connection_layers) != self.decoder_num_hidden_layers - 1:
            raise ValueError(
                f"skip_connection_layers {self.skip_connection_layers} must name decoder_num_hidden_layers - 1 = "
                f"{self.decoder_num_hidden_layers - 1} encoder layers (decoder block i > 0 cross-attends to one each); "
                "change one of the two"
            )
        depth = min(self.num_hidden_layers, self.audio_num_hidden_layers)
        if any(not 0 <= layer < depth for layer in self.skip_connection_layers):
            raise ValueError(f"skip_connection_layers {self.skip_connection_layers} must be block indices in [0, {depth})")
        for name in ("mask_ratio", "audio_mask_ratio"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.contrastive_temperature <= 0:
            raise ValueError(f"contrastive_temperature must be positive, got {self.contrastive_temperature}")
        if self.use_cls_token:
            raise ValueError("HiCMAE has no cls token (use_cls_token=False)")
        super().__post_init__(**kwargs)

    @property
    def audio_grid_size(self) -> tuple[int, int]:
        return self.audio_length // self.audio_patch_size, self.num_mel_bins // self.audio_patch_size

    @property
    def audio_num_patches(self) -> int:
        rows, cols = self.audio_grid_size
        return rows * cols
