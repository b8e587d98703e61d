from hf_mim.models.nerfmae.configuration_nerfmae import NeRFMAEConfig
from hf_mim.models.nerfmae.modeling_nerfmae import NeRFMAEForPreTraining, NeRFMAEModel
from hf_mim.processing.grid_processing_mim import NeRFMAEFeatureExtractor
from hf_mim.registry import MethodSpec

# grid 32 = 8^3 tokens of 4^3 voxels; stages at 8, 4, 2, 1 tokens a side; masked blocks of 2^3 tokens (64 blocks)
TINY = dict(grid_size=32, embed_dim=12, depths=[2, 1, 1, 1], num_heads=[2, 2, 2, 2], window_size=2, mask_block_size=2)
DEMO = dict(grid_size=32, embed_dim=24, depths=[2, 2, 2, 2], num_heads=[2, 4, 4, 8], window_size=2, mask_block_size=2)


def example_inputs(model, grids: dict, generator) -> dict:
    """Grids (``grid_values``, ``valid_mask``) plus a fixed block mask, one for the whole batch (as official)."""
    return {**grids, "bool_masked_pos": model.mask_generator(grids["grid_values"].shape[0], generator)}


METHOD = MethodSpec(
    name="nerfmae",
    config_class=NeRFMAEConfig,
    model_class=NeRFMAEModel,
    pretraining_class=NeRFMAEForPreTraining,
    paper="NeRF-MAE: Masked AutoEncoders for Self-Supervised 3D Representation Learning for Neural Radiance Fields "
          "(Irshad et al., ECCV 2024)",
    paper_url="https://arxiv.org/abs/2404.01300",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=NeRFMAEFeatureExtractor,
    modality="grid",
    # train_mae3d.sh / run_swin_mae3d.py: AdamW lr 1e-4, weight decay 1e-3, OneCycle schedule, clip grad norm 0.1
    training_defaults=dict(learning_rate=1e-4, weight_decay=1e-3, max_grad_norm=0.1),
)

__all__ = ["METHOD", "NeRFMAEConfig", "NeRFMAEFeatureExtractor", "NeRFMAEForPreTraining", "NeRFMAEModel"]
