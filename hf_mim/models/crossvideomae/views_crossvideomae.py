"""The two views CrossVideoMAE trains on, cut from the same sampled frames of a clip."""

from hf_mim.data.video import build_video_transform

# brightness/contrast jitter of the augmented view (hf_mim's choice: the paper names colour jitter, not its strength)
AUGMENTED_VIEW_JITTER = 0.4


class CrossVideoViews:
    """uint8 frames ``[T, C, H, W]`` -> ``{"pixel_values", "augmented_pixel_values"}``: the clip as VideoMAE
    crops it, and a second, independently cropped and colour-jittered view of the same frames. At evaluation both
    are the resized clip."""

    def __init__(self, processor, train: bool = True, scale=(0.2, 1.0)):
        self.clip = build_video_transform(processor, train=train, scale=scale)
        self.augmented = build_video_transform(processor, train=train, scale=scale, jitter=AUGMENTED_VIEW_JITTER)

    def __call__(self, frames):
        return {"pixel_values": self.clip(frames), "augmented_pixel_values": self.augmented(frames)}
