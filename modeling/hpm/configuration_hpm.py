# Generated from hf_mim.models.hpm.configuration_hpm by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""HPM configuration (Wang et al., CVPR 2023, "Hard Patches Mining for Masked Image Modeling")."""

from .configuration_mae import MAEConfig


class HPMConfig(MAEConfig):
    r"""
    MAE (see [`MAEConfig`]: ViT-B/16 encoder, 8-block 512-d decoder, 75% masking) plus HPM's loss predictor, EMA
    teacher and easy-to-hard mask schedule. Defaults follow Haochen-Wang409/HPM ``scripts/pretrain_base.sh``
    (``--mask_ratio 0.75 --learning_loss --relative``, no ``--norm_pix_loss``), ``models_mae_learn_loss.py`` and
    ``engine_pretrain.py``.

    Args:
        norm_pix_loss (`bool`, defaults to False): the official scripts do not pass ``--norm_pix_loss``, so the
            target is the (processor-normalised) pixels.
        relative_loss (`bool`, defaults to True): train the loss predictor with the pairwise ranking (BCE) loss
            (``--relative``); False uses the official alternative, MSE against the per-image z-scored losses.
        loss_predictor_weight (`float`, defaults to 1.0): weight of the loss-predictor term (the official code adds
            it with weight 1).
        hard_patch_max_fraction (`float`, defaults to 0.5): fraction of the masked patches chosen by predicted
            difficulty at the end of training (official ``keep_ratio = (epoch + 1) / total_epoch * 0.5``).
        ema_decay (`list[float]`, defaults to [0.999, 0.9999]): EMA decay of the teacher, ramped linearly from the
            first to the second value over the first ``ema_decay_warmup_epochs`` epochs, then constant; set per
            epoch, as officially.
        ema_decay_warmup_epochs (`int`, defaults to 100): length of that ramp in epochs (official: 100, whatever
            the run length).
    """

    model_type = "hpm"

    norm_pix_loss: bool = False
    relative_loss: bool = True
    loss_predictor_weight: float = 1.0
    hard_patch_max_fraction: float = 0.5
    ema_decay: list[float] | tuple[float, float] = (0.999, 0.9999)
    ema_decay_warmup_epochs: int = 100

    def __post_init__(self, **kwargs):
        if not 0.0 <= self.hard_patch_max_fraction <= 1.0:
            raise ValueError(
                f"hard_patch_max_fraction must be in [0, 1] (fraction of masked patches picked by predicted loss), "
                f"got {self.hard_patch_max_fraction}"
            )
        decay = list(self.ema_decay) if isinstance(self.ema_decay, (list, tuple)) else None
        if decay is None or len(decay) != 2 or not all(0.0 <= float(d) <= 1.0 for d in decay):
            raise ValueError(f"ema_decay must be two numbers in [0, 1] (start, end), got {self.ema_decay!r}")
        self.ema_decay = [float(d) for d in decay]
        if self.ema_decay_warmup_epochs < 1:
            raise ValueError(f"ema_decay_warmup_epochs must be >= 1, got {self.ema_decay_warmup_epochs}")
        if self.loss_predictor_weight < 0:
            raise ValueError(f"loss_predictor_weight must be >= 0, got {self.loss_predictor_weight}")
        super().__post_init__(**kwargs)
        if self.mask_ratio <= 0:
            raise ValueError("HPM masks patches: set mask_ratio in (0, 1), e.g. 0.75")
