# Generated from hf_mim.models.mp3.configuration_mp3 by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MP3 configuration (Zhai et al., ICML 2022, "Position Prediction as an Effective Pretraining Strategy")."""

from .mim_configuration_utils import MIMViTConfig


class MP3Config(MIMViTConfig):
    r"""
    ViT-B/16 encoder (see [`MIMViTConfig`]) trained to predict the absolute position of every patch from its
    content. There is no official code; defaults follow the paper as summarised in the hf_mim spec (section 8):

    * `position_embedding_type="none"`: pre-training sees no position information at all. For fine-tuning, load
      the checkpoint with `position_embedding_type="learned"` to add fresh learned position embeddings (the paper
      adds position embeddings and removes the attention mask at fine-tune time).
    * `mask_ratio=0.75` (the paper's eta): fraction of patches removed from the keys/values of every attention
      layer; the `int(L * (1 - mask_ratio))` remaining "context" patches are the only keys/values, every patch is
      a query.

    Args:
        mask_ratio (`float`, defaults to 0.75): eta, fraction of patches that are *not* context (masked from the
            keys / values). 0 disables the attention mask.
        loss_on_context (`bool`, defaults to True): also classify the positions of the context patches (loss over
            all L patches). False: loss over the non-context patches only. The paper's choice is unverified.
        label_smoothing (`float`, defaults to 0.0): label smoothing of the position cross-entropy [unverified].
    """

    model_type = "mp3"

    position_embedding_type: str = "none"
    mask_ratio: float = 0.75
    loss_on_context: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self, **kwargs):
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(
                f"mask_ratio (eta) must be in [0, 1) so that at least one context patch remains, got {self.mask_ratio}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.use_shared_relative_position_bias:
            raise ValueError(
                "MP3 cannot use a relative position bias: it gives the encoder the positions it must predict; "
                "set use_shared_relative_position_bias=False"
            )
        super().__post_init__(**kwargs)
