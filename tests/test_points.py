"""Point-cloud core: pure-torch geometry, the generated shape set, the feature extractor and the "points" modality."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor

from hf_mim.data.points import SHAPE_CLASSES, load_point_dataset, make_shape_clouds, prepare_point_dataset
from hf_mim.layers.points import (
    back_project,
    chamfer_l2,
    depth_projection,
    farthest_point_sample,
    group_points,
    interpolate_features,
    knn,
)
from hf_mim.processing.point_processing_mim import PointCloudFeatureExtractor


def test_farthest_point_sampling_starts_at_point_0_and_takes_the_farthest_next():
    line = torch.arange(10.0).reshape(1, 10, 1).expand(-1, -1, 3).contiguous()
    # from 0 the farthest is 9; then 4 and 5 are both 4 away from {0, 9}: the first (4) is taken
    assert farthest_point_sample(line, 3).tolist() == [[0, 9, 4]]
    with pytest.raises(ValueError, match="at least 11 points"):
        farthest_point_sample(line, 11)


def test_knn_is_nearest_first_and_groups_are_around_their_centres():
    torch.manual_seed(0)
    points = torch.randn(2, 50, 3)
    queries = points[:, :5]
    expected = torch.cdist(queries, points).argsort(dim=-1)[..., :4]
    assert torch.equal(knn(queries, points, 4), expected)
    centres, indices, members = group_points(points, 8, 4)
    assert centres.shape == (2, 8, 3) and indices.shape == (2, 8, 4) and members.shape == (2, 8, 4, 3)
    assert torch.equal(members[:, :, 0], centres)  # a centre is its own nearest neighbour


def test_chamfer_l2_is_the_sum_of_both_directed_mean_squared_distances():
    prediction = torch.tensor([[[0.0, 0, 0]]])
    target = torch.tensor([[[1.0, 0, 0], [2.0, 0, 0]]])
    assert chamfer_l2(prediction, target).item() == pytest.approx(1.0 + (1.0 + 4.0) / 2)
    shuffled = target[:, [1, 0]]
    assert chamfer_l2(target, shuffled).item() == 0.0


def test_depth_projection_sums_splatted_depths_and_back_projection_reads_them():
    # four points far apart (no overlapping splats), depth 1: every covered pixel is sigmoid(1), the rest sigmoid(0)
    points = torch.tensor([[[0.0, 0, 1], [1.0, 0, 1], [0.0, 1, 1], [1.0, 1, 1]]])
    images, geometry = depth_projection(points, image_size=32, splat_radius=1)
    assert images.shape == (1, 1, 32, 32)
    covered = images != 0.5
    assert int(covered.sum()) == 4 * 9 and torch.allclose(images[covered], torch.sigmoid(torch.tensor(1.0)))
    rows, cols = covered[0, 0].nonzero().T.float()
    assert abs((rows.min() + rows.max()) / 2 - 15.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 15.5) <= 1  # centred
    assert torch.allclose(back_project(points, images, geometry, 32), torch.sigmoid(torch.tensor(1.0)))
    # two points on one pixel: their depths add up before the sigmoid
    stacked = torch.tensor([[[0.0, 0, 1], [0.0, 0, 2], [1.0, 1, 0]]])
    images, geometry = depth_projection(stacked, image_size=32, splat_radius=0)
    assert torch.allclose(back_project(stacked, images, geometry, 32)[0, :2, 0], torch.sigmoid(torch.tensor(3.0)))


def test_feature_propagation_interpolates_by_inverse_squared_distance():
    sources = torch.tensor([[[0.0, 0, 0], [2.0, 0, 0], [10.0, 0, 0]]])
    features = torch.tensor([[[1.0], [3.0], [100.0]]])
    at_source = interpolate_features(sources[:, :1], sources, features)
    assert at_source.item() == pytest.approx(1.0)
    middle = interpolate_features(torch.tensor([[[1.0, 0, 0]]]), sources, features)
    w = torch.tensor([1 / 1, 1 / 1, 1 / 81])
    assert middle.item() == pytest.approx(float((w * torch.tensor([1.0, 3.0, 100.0])).sum() / w.sum()), rel=1e-5)


def test_generated_shapes_are_deterministic_labelled_and_varied():
    first, again = make_shape_clouds(2, num_points=64, seed=4), make_shape_clouds(2, num_points=64, seed=4)
    assert first["points"] == again["points"] and first.features["label"].names == list(SHAPE_CLASSES)
    assert first["label"] == list(range(len(SHAPE_CLASSES))) * 2
    clouds = np.asarray(first["points"], dtype=np.float32)
    assert clouds.shape == (2 * len(SHAPE_CLASSES), 64, 3) and np.isfinite(clouds).all()
    assert not np.allclose(clouds[0], clouds[len(SHAPE_CLASSES)])  # two spheres differ (rotation, scale, noise)
    assert make_shape_clouds(1, num_points=64, seed=5)["points"] != make_shape_clouds(1, num_points=64, seed=4)["points"]
    train, test = load_point_dataset(None, "train"), load_point_dataset("demo", "test")
    assert len(train) == 40 * len(SHAPE_CLASSES) and len(test) == 20 * len(SHAPE_CLASSES)
    with pytest.raises(ValueError, match="splits"):
        load_point_dataset(None, "unlabelled")


def test_feature_extractor_samples_centres_normalises_and_refuses_bad_clouds(tmp_path):
    extractor = PointCloudFeatureExtractor(num_points=32)
    cloud = np.random.default_rng(0).normal(size=(100, 4)) * 5 + 3  # an extra column (e.g. intensity) is dropped
    points = extractor(cloud)["points"]
    assert points.shape == (1, 32, 3)
    assert torch.allclose(points[0].mean(0), torch.zeros(3), atol=1e-5)
    assert points[0].norm(dim=1).max().item() == pytest.approx(1.0)
    # farthest point sampling keeps the extremes of the cloud
    line = np.stack([np.linspace(-1, 1, 100)] * 3, axis=1)
    kept = extractor(line)["points"][0]
    assert torch.allclose(kept.norm(dim=1).max(), torch.tensor(1.0)) and kept.shape == (32, 3)
    with pytest.raises(ValueError, match="1 point\\(s\\) with NaN"):
        extractor(np.where(np.arange(300).reshape(100, 3) == 7, np.nan, cloud[:, :3]))
    with pytest.raises(ValueError, match="20 points, fewer than num_points=32"):
        extractor(cloud[:20])
    with pytest.raises(ValueError, match="shape \\[num_points, 3\\]"):
        extractor(np.zeros((40, 2)))
    batch = extractor([cloud, cloud[:50]])["points"]
    assert batch.shape == (2, 32, 3)
    extractor.save_pretrained(tmp_path)
    reloaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(reloaded) is PointCloudFeatureExtractor and reloaded.num_points == 32


def test_prepared_dataset_yields_fixed_size_clouds_and_labels():
    dataset = make_shape_clouds(1, num_points=48, seed=0)
    prepared = prepare_point_dataset(dataset, PointCloudFeatureExtractor(num_points=32), with_labels=True)
    sample = prepared[3]
    assert sample["points"].shape == (32, 3) and sample["labels"] == 3 and len(prepared) == len(SHAPE_CLASSES)
    assert math.isclose(sample["points"].norm(dim=1).max().item(), 1.0, rel_tol=1e-5)
