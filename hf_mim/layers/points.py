"""Point-cloud geometry in pure torch (CPU and any accelerator; no CUDA extensions).

Replaces what point-cloud MAE code usually takes from compiled packages: farthest point sampling
(``pointnet2_ops``), kNN (``KNN_CUDA``), Chamfer distance (a CUDA extension) and the scatter of points into depth
images (``torch_scatter``). Clouds are ``[B, N, 3]`` float tensors; indices are local to each cloud.
"""

import torch


def farthest_point_sample(points: torch.Tensor, count: int) -> torch.Tensor:
    """``[B, count]`` indices of farthest point sampling, starting from point 0 as ``pointnet2_ops`` does: each
    next point is the one farthest (squared distance) from those already taken."""
    batch, num_points, _ = points.shape
    if count > num_points:
        raise ValueError(f"cannot sample {count} centres from {num_points} points: give clouds of at least {count} points")
    coords = points.transpose(1, 2).contiguous()  # [B, 3, N]: the per-step distance runs on contiguous rows
    indices = torch.zeros(batch, count, dtype=torch.long, device=points.device)
    nearest = torch.full((batch, num_points), float("inf"), dtype=points.dtype, device=points.device)
    farthest = torch.zeros(batch, 1, dtype=torch.long, device=points.device)
    for i in range(count):
        indices[:, i : i + 1] = farthest
        offset = coords - torch.gather(coords, 2, farthest.unsqueeze(1).expand(-1, 3, -1))
        nearest = torch.minimum(nearest, offset.mul_(offset).sum(dim=1))
        farthest = nearest.argmax(dim=1, keepdim=True)
    return indices


def knn(queries: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, Q, k]`` indices of the ``k`` nearest ``points`` of each query, nearest first (``KNN_CUDA``'s order)."""
    if k > points.shape[1]:
        raise ValueError(f"cannot take {k} neighbours among {points.shape[1]} points: give clouds of at least {k} points")
    return torch.cdist(queries, points).topk(k, dim=-1, largest=False).indices


def gather_points(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``values [B, N, C]`` at ``indices [B, ...]`` -> ``[B, ..., C]``."""
    batch = values.shape[0]
    flat = indices.reshape(batch, -1)
    out = torch.gather(values, 1, flat.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
    return out.reshape(*indices.shape, values.shape[-1])


def group_points(points: torch.Tensor, num_groups: int, group_size: int):
    """FPS + kNN grouping: ``(centres [B, G, 3], neighbour indices [B, G, K], neighbourhoods [B, G, K, 3])``,
    the neighbourhoods in absolute coordinates (subtract the centres for the local shape)."""
    centres = gather_points(points, farthest_point_sample(points, num_groups))
    indices = knn(centres, points, group_size)
    return centres, indices, gather_points(points, indices)


def chamfer_l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Chamfer-L2 of point sets ``[L, K, 3]``: mean squared distance to the nearest target point plus the same
    from the target side (the ``ChamferDistanceL2`` CUDA extension of Point-MAE / I2P-MAE)."""
    distances = (prediction.unsqueeze(2) - target.unsqueeze(1)).pow(2).sum(-1)
    return distances.min(dim=2).values.mean() + distances.min(dim=1).values.mean()


# (row axis, column axis, depth axis) of the three views: the cloud as is, then (z, x, y) and (y, z, x)
VIEW_AXES = ((0, 1, 2), (2, 0, 1), (1, 2, 0))


def splat_offsets(radius: int, device=None) -> torch.Tensor:
    """``[(2r + 1)^2, 2]`` pixel offsets of a square splat, row offset outer."""
    steps = torch.arange(-radius, radius + 1, device=device)
    return torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).reshape(-1, 2)


def depth_projection(points: torch.Tensor, image_size: int, splat_radius: int = 2):
    """Project clouds along their third coordinate into one-channel depth images, I2P-MAE's ``proj2img``.

    The first two coordinates pick the pixel (a grid spanning the cloud's larger side over ``image_size - 3``
    pixels), every point is splatted onto a ``(2r + 1)^2`` square, the depths falling on a pixel are SUMMED
    (``scatter(reduce="sum")``), the object is centred, and the image is passed through a sigmoid (empty pixels
    are sigmoid(0) = 0.5). Returns ``(images [B, 1, S, S], geometry)``; ``geometry`` maps points of the same
    cloud to pixels again (:func:`back_project`).
    """
    batch, num_points, _ = points.shape
    low = points.min(dim=1).values
    cell = (points.max(dim=1).values - low)[:, :2].max(dim=-1).values / (image_size - 3)
    pixel = torch.floor((points[..., :2] - low[:, None, :2]) / cell[:, None, None])
    offsets = splat_offsets(splat_radius, points.device).to(points.dtype)
    dense = (pixel.unsqueeze(2) + offsets + 1).reshape(batch, -1, 2)
    centre = torch.floor((dense.max(dim=1).values + dense.min(dim=1).values) / 2)
    shift = image_size / 2 - centre - 1
    dense = (dense + shift.unsqueeze(1)).clamp(0, image_size - 1)
    flat = (dense[..., 0] * image_size + dense[..., 1]).long()
    depth = points[..., 2:3].expand(-1, -1, offsets.shape[0]).reshape(batch, -1)
    canvas = torch.zeros(batch, image_size * image_size, dtype=points.dtype, device=points.device)
    canvas = canvas.scatter_add(1, flat, depth)
    images = torch.sigmoid(canvas).reshape(batch, 1, image_size, image_size)
    return images, (low[:, :2], cell, shift)


def back_project(points: torch.Tensor, feature_maps: torch.Tensor, geometry, image_size: int) -> torch.Tensor:
    """``[B, N, C]``: the value of ``feature_maps [B, C, h, w]`` (bicubically upsampled to the image) at the pixel
    of each point of the cloud that :func:`depth_projection` made ``geometry`` from (I2P-MAE's ``I2P``)."""
    low, cell, shift = geometry
    pixel = torch.floor((points[..., :2] - low.unsqueeze(1)) / cell[:, None, None]) + 1 + shift.unsqueeze(1)
    flat = (pixel[..., 0] * image_size + pixel[..., 1]).long().clamp(0, image_size * image_size - 1)
    channels = feature_maps.shape[1]
    dense = torch.nn.functional.interpolate(feature_maps, size=(image_size, image_size), mode="bicubic")
    dense = dense.reshape(feature_maps.shape[0], channels, -1).transpose(1, 2)
    return torch.gather(dense, 1, flat.unsqueeze(-1).expand(-1, -1, channels))


def view(points: torch.Tensor, index: int) -> torch.Tensor:
    """The cloud with its axes permuted for view ``index`` (see :data:`VIEW_AXES`)."""
    return points[..., list(VIEW_AXES[index])]


def interpolate_features(queries: torch.Tensor, sources: torch.Tensor, features: torch.Tensor, k: int = 3) -> torch.Tensor:
    """PointNet++ feature propagation: ``features [B, S, C]`` at ``sources [B, S, 3]`` interpolated to
    ``queries [B, Q, 3]`` with inverse squared-distance weights over the ``k`` nearest sources."""
    if sources.shape[1] == 1:
        return features.expand(-1, queries.shape[1], -1)
    distances = torch.cdist(queries, sources).pow(2)
    distances, indices = distances.topk(min(k, sources.shape[1]), dim=-1, largest=False)
    weights = 1.0 / (distances + 1e-8)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return (gather_points(features, indices) * weights.unsqueeze(-1)).sum(dim=2)
