# Generated from hf_mim.models.nerfmae.configuration_nerfmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""NeRF-MAE configuration (Irshad et al., ECCV 2024, "NeRF-MAE: Masked AutoEncoders for Self-Supervised 3D
Representation Learning for Neural Radiance Fields")."""

from transformers import PreTrainedConfig

from .mim_configuration_utils import check_positive


class NeRFMAEConfig(PreTrainedConfig):
    r"""
    A 3-D Swin Transformer on ``[B, 4, S, S, S]`` radiance grids (RGB + alpha), SimMIM-style (a learnable mask token
    replaces the masked patch tokens, the whole grid is encoded), and the official UNETR-style convolutional
    decoder back to every voxel. Defaults: the official training script (`train_mae3d.sh`, `--backbone_type swin_s`,
    `SwinTransformer_MAE3D_New` in `nerf_mae/model/mae/swin_mae3d.py`).

    Args:
        grid_size (`int`, defaults to 160): side of the cubic grid the model takes (`--resolution`; 200 for
            Hypersim). Must be divisible by `patch_size * 2 ** (stages - 1)` (the patch merging halvings) and
            the token grid by `mask_block_size`.
        num_channels (`int`, defaults to 4): RGB + alpha; the losses read channels 0-2 as colour and 3 as alpha.
        patch_size (`int`, defaults to 4): side of the cubic patch (3-D patch partition, a strided `Conv3d`).
        embed_dim (`int`, defaults to 96): width of the first stage; stage `i` has `embed_dim * 2**i`. Must be
            divisible by 6 (the fixed 3-D sin-cos table splits it in three sin/cos halves).
        depths (`list[int]`, defaults to `[2, 2, 18, 2]`), num_heads (`list[int]`, defaults to `[3, 6, 12, 24]`):
            Swin-S blocks and heads per stage (4 stages: the decoder reads all four).
        window_size (`int`, defaults to 4): cubic attention window (tokens a side); odd blocks shift by half.
        mlp_ratio (`float`, defaults to 4.0): MLP width / block width.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth, rising linearly over all blocks.
        hidden_dropout_prob (`float`, defaults to 0.0), attention_probs_dropout_prob (`float`, defaults to 0.0).
        mask_ratio (`float`, defaults to 0.75): probability that a block of tokens is masked (`--masking_prob`;
            an independent draw per block, so the masked fraction varies around it).
        mask_block_size (`int`, defaults to 4): side of a masked block, in tokens (4 tokens = 16 voxels).
        alpha_threshold (`float`, defaults to 0.01): voxels with target alpha above it count in the RGB loss.
        layer_norm_eps (`float`, defaults to 1e-5), initializer_range (`float`, defaults to 0.02).
    """

    model_type = "nerfmae"

    grid_size: int = 160
    num_channels: int = 4
    patch_size: int = 4
    embed_dim: int = 96
    depths: list[int] | tuple[int, ...] = (2, 2, 18, 2)
    num_heads: list[int] | tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 4
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    mask_ratio: float = 0.75
    mask_block_size: int = 4
    alpha_threshold: float = 0.01
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self.depths, self.num_heads = list(self.depths), list(self.num_heads)
        check_positive(self, "grid_size", "patch_size", "embed_dim", "window_size", "mask_block_size")
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ValueError(f"NeRF-MAE has 4 stages (its decoder reads all four): depths {self.depths} and num_heads "
                             f"{self.num_heads} must have 4 entries")
        if self.num_channels != 4:
            raise ValueError(f"num_channels must be 4 (RGB + alpha: the losses read them so), got {self.num_channels}")
        if self.embed_dim % 6:
            raise ValueError(f"embed_dim must be divisible by 6 (3-D sin-cos table), got {self.embed_dim}")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ValueError(f"stage {i} width {self.embed_dim * 2**i} is not divisible by its {heads} heads")
        multiple = self.patch_size * 2 ** (len(self.depths) - 1)
        if self.grid_size % multiple:
            raise ValueError(f"grid_size {self.grid_size} must be divisible by patch_size * 8 = {multiple} (3 patch "
                             f"merging halvings); pad the grids or pick grid_size {multiple * max(1, round(self.grid_size / multiple))}")
        if (self.grid_size // self.patch_size) % self.mask_block_size:
            raise ValueError(f"the token grid ({self.grid_size // self.patch_size} a side) must be divisible by "
                             f"mask_block_size {self.mask_block_size}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        super().__post_init__(**kwargs)

    @property
    def token_grid(self) -> int:
        return self.grid_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.token_grid**3
