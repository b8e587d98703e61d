"""CrossVideoMAE configuration (Ahamed et al., 2025, "CrossVideoMAE: Self-Supervised Image-Video Representation
Learning with Masked Autoencoders", arXiv 2502.07811)."""

from hf_mim.models.videomae2.configuration_videomae2 import Videomae2Config

CROSS_VIDEO_TARGETS = ("mean", "original")


class CrossVideoMAEConfig(Videomae2Config):
    r"""
    The video branch is a VideoMAE (every field of [`Videomae2Config`]; decoder masking off by default, as the
    paper's SpatioTemporalMAE branch has none); the image branch is a ViT of the same width, depth and patch size
    (both ViT-B/16 in the paper) on one frame sampled from each clip. Defaults marked *hf_mim* are choices the
    paper leaves open (no official code): each is a switch here.

    Args:
        mask_ratio (`float`, defaults to 0.9): tube masking ratio of both video views (paper: 90-95%).
        decoder_mask_ratio (`float`, defaults to 0.0): running-cell decoder masking (0 = VideoMAE decoder).
        image_mask_ratio (`float`, defaults to 0.75): random patch masking of the sampled frame (paper: 75-90%).
        projection_dim (`int`, defaults to 256): output width of the projection heads (*hf_mim*).
        temperature (`float`, defaults to 0.1): NT-Xent temperature of the three contrastive terms (*hf_mim*).
        reconstruction_weight, intra_video_weight, cross_video_weight, cross_frame_weight (`float`, default 1.0):
            weights of the loss terms; the paper sums them (*hf_mim*: equal weights).
        reconstruct_augmented_view (`bool`, defaults to True): the augmented clip is reconstructed too (its loss
            is averaged with the original's); False reconstructs the original clip only (*hf_mim*).
        cross_video_target (`str`, defaults to "mean"): the video embedding the frame is contrasted with at video
            level: "mean" of the original and augmented clips' embeddings (CrossPoint's cross-modal term, which
            the paper follows) or the "original" clip's only (*hf_mim*).
        freeze_image_encoder (`bool`, defaults to False): keep the image branch fixed (e.g. after loading a
            pre-trained image MAE into ``image_encoder``); False trains both branches end to end (*hf_mim*).
    """

    model_type = "crossvideomae"

    decoder_mask_ratio: float = 0.0
    image_mask_ratio: float = 0.75
    projection_dim: int = 256
    temperature: float = 0.1
    reconstruction_weight: float = 1.0
    intra_video_weight: float = 1.0
    cross_video_weight: float = 1.0
    cross_frame_weight: float = 1.0
    reconstruct_augmented_view: bool = True
    cross_video_target: str = "mean"
    freeze_image_encoder: bool = False

    def __post_init__(self, **kwargs):
        if not 0.0 < self.image_mask_ratio < 1.0:
            raise ValueError(f"image_mask_ratio must be in (0, 1), got {self.image_mask_ratio}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.cross_video_target not in CROSS_VIDEO_TARGETS:
            raise ValueError(f"cross_video_target must be one of {CROSS_VIDEO_TARGETS}, got {self.cross_video_target!r}")
        super().__post_init__(**kwargs)
