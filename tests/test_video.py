"""Video core: PyAV loading and clip sampling, the generated demo set, the video processor, tube and
running-cell masks, tubelet embedding and the VideoMAE position table."""

import numpy as np
import pytest
import torch

from hf_mim.data import MIMCollator
from hf_mim.data.video import (
    ClipTooShortError,
    DataError,
    clip_indices,
    load_video_dataset,
    make_demo_videos,
    prepare_video_dataset,
    read_video,
)
from hf_mim.layers import TubeletEmbed, sinusoid_table
from hf_mim.masking import RunningCellMaskGenerator, TubeMaskGenerator
from hf_mim.processing import MIMVideoProcessor

pytest.importorskip("av")


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    return make_demo_videos(tmp_path_factory.mktemp("videos"), clips_per_class=(2, 1), num_frames=8)


def test_demo_set_is_a_labelled_video_folder(demo_folder):
    train, test = load_video_dataset(str(demo_folder), "train"), load_video_dataset(str(demo_folder), "test")
    assert (len(train), len(test)) == (20, 10)
    assert train.features["label"].num_classes == 10
    frames = read_video(train[0]["video"])
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    # the object moves: consecutive frames differ, and it is not blank
    assert frames.max() > 100 and np.abs(frames[1:].astype(int) - frames[:-1]).mean() > 1
    with pytest.raises(DataError, match="splits"):
        load_video_dataset(str(demo_folder), "validation")


def test_clips_are_sampled_with_stride_and_seeded_offset():
    assert clip_indices(10, 4, 2, train=False) == [1, 3, 5, 7]
    first = clip_indices(100, 4, 3, generator=torch.Generator().manual_seed(5))
    assert first == clip_indices(100, 4, 3, generator=torch.Generator().manual_seed(5))
    assert np.diff(first).tolist() == [3, 3, 3]
    offsets = {clip_indices(100, 4, 3, generator=torch.Generator().manual_seed(s))[0] for s in range(10)}
    assert len(offsets) > 1
    with pytest.raises(ClipTooShortError, match="has 6 frames, but a clip of 4 frames every 2 frame\\(s\\) spans 7"):
        clip_indices(6, 4, 2, name="short.mp4")


def test_prepared_dataset_yields_processed_clips_and_skips_undecodable_files(demo_folder, tmp_path):
    processor = MIMVideoProcessor(size={"height": 16, "width": 16}, num_frames=4, frame_stride=2)
    dataset = prepare_video_dataset(load_video_dataset(str(demo_folder), "test"), processor, train=False, with_labels=True)
    sample = dataset[0]
    assert sample["pixel_values"].shape == (4, 3, 16, 16) and sample["labels"] == 0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(DataError, match="cannot decode video .*broken.mp4"):
        read_video(str(broken))
    from datasets import Dataset

    mixed = Dataset.from_dict({"video": [load_video_dataset(str(demo_folder), "test")[0]["video"], str(broken)]})
    mixed = prepare_video_dataset(mixed, processor, train=True)
    collator = MIMCollator()
    batch = collator([mixed[0], mixed[1]])
    assert batch["pixel_values"].shape == (1, 4, 3, 16, 16) and collator.skipped == 1
    short = prepare_video_dataset(load_video_dataset(str(demo_folder), "test"),
                                  MIMVideoProcessor(size={"height": 16, "width": 16}, num_frames=8, frame_stride=2))
    with pytest.raises(ClipTooShortError, match="lower num_frames or frame_stride"):
        short[0]


def test_video_processor_matches_the_training_transform_and_round_trips(tmp_path):
    processor = MIMVideoProcessor(size={"height": 16, "width": 16}, num_frames=4, frame_stride=3)
    video = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    pixel_values = processor([video], return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 4, 3, 16, 16)
    expected = (torch.from_numpy(video).permute(0, 3, 1, 2) / 255 - torch.tensor(processor.image_mean).reshape(3, 1, 1)) / torch.tensor(
        processor.image_std).reshape(3, 1, 1)
    torch.testing.assert_close(pixel_values[0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(processor.unnormalize(pixel_values[0]), torch.from_numpy(video).permute(0, 3, 1, 2) / 255, atol=1e-5, rtol=0)
    processor.save_pretrained(tmp_path)
    loaded = MIMVideoProcessor.from_pretrained(tmp_path)
    assert (loaded.frame_stride, loaded.num_frames, loaded.size["height"]) == (3, 4, 16)
    assert (tmp_path / "video_processing_mim.py").exists()


def test_tube_mask_hides_the_same_patches_in_every_slice():
    masks = TubeMaskGenerator((4, 4, 6), 0.75)(3, torch.Generator().manual_seed(0))
    assert masks.shape == (3, 96) and masks.dtype == torch.bool
    slices = masks.reshape(3, 4, 24)
    assert (slices == slices[:, :1]).all()
    assert (masks.sum(1) == 4 * 18).all()
    assert not torch.equal(masks[0], masks[1])
    assert torch.equal(masks, TubeMaskGenerator((4, 4, 6), 0.75)(3, torch.Generator().manual_seed(0)))


def test_running_cell_mask_follows_the_official_cell_schedule():
    generator = RunningCellMaskGenerator((3, 2, 4), 0.5)
    # official Cell: queue [1, 1, 0, 0], the pointer advances before each slice; phase 0 starts at pointer 1
    cells = [[1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 0]]
    expected = torch.tensor(np.array([np.tile(np.array(c).reshape(2, 2), (1, 2)).flatten() for c in cells]), dtype=torch.bool)
    assert torch.equal(generator.maps[0].reshape(3, 8), expected.reshape(3, 8))
    masks = generator(16, torch.Generator().manual_seed(0))
    assert (masks.sum(1) == 12).all()
    assert len({tuple(m.tolist()) for m in masks}) > 1
    with pytest.raises(ValueError, match="grid is 3x4; choose image_size / patch_size"):
        RunningCellMaskGenerator((2, 3, 4), 0.5)
    with pytest.raises(ValueError, match="masks 0 of the 4 slots"):
        RunningCellMaskGenerator((2, 4, 4), 0.1)


def test_tubelet_embedding_and_position_table():
    embed = TubeletEmbed(16, 8, num_frames=4, tubelet_size=2, num_channels=3, hidden_size=12)
    clip = torch.randn(2, 4, 3, 16, 16)
    tokens = embed(clip)
    assert tokens.shape == (2, 2 * 2 * 2, 12) and embed.check_input(clip) == (2, 2, 2)
    # token 1 is tubelet (t=0, row=0, col=1): the conv of frames 0-1, pixels [0:8, 8:16]
    by_hand = (embed.proj.weight * clip[0, :2, :, :8, 8:].transpose(0, 1)).flatten(1).sum(1) + embed.proj.bias
    torch.testing.assert_close(tokens[0, 1], by_hand, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="5 frames are not divisible by the tubelet size 2"):
        embed.check_input(torch.randn(1, 5, 3, 16, 16))
    with pytest.raises(ValueError, match="num_frames 5 is not divisible by tubelet_size 2"):
        TubeletEmbed(16, 8, num_frames=5, tubelet_size=2, num_channels=3, hidden_size=12)
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    torch.testing.assert_close(sinusoid_table(20, 12).unsqueeze(0), get_sinusoid_encoding_table(20, 12), atol=1e-6, rtol=0)
