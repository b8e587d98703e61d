from transformers import ResNetConfig


class LayerMaskConfig(ResNetConfig):
    """A transformers ``ResNetConfig`` plus the layer-masking settings, so any ResNet checkpoint loads unchanged.

    fill_iterations: the official ``it``. > 0: before every convolution the masked border is filled by neighbour
    averaging, one iteration per kernel column (the paper's "layer masking" uses 1000); 0: no fill, the hidden
    input is zero; < 0: partial-convolution renormalisation instead of the fill (as in the official code, this mode
    does not zero the hidden pixels before the first convolution, so they are not fully removed there).
    mask_block_size: side of the square cells that evaluation masks remove (8 for 32 px CIFAR, 16 for 224 px).
    """

    model_type = "layermask"

    def __init__(self, fill_iterations: int = 1000, mask_block_size: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.fill_iterations = fill_iterations
        self.mask_block_size = mask_block_size
