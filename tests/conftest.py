"""Shared fixtures: tiny configs and real images from the bundled demo data (no network, CPU only)."""

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

import hf_mim  # noqa: E402
from hf_mim.data import load_image_dataset, prepare_dataset  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def tiny_config(method: str, **overrides):
    return hf_mim.get_method(method).make_config("tiny", **overrides)


@pytest.fixture(scope="session")
def demo_test_raw():
    return load_image_dataset(None, split="test")


def real_images(count: int = 8, image_size: int = 32, num_channels: int = 3, split: str = "test") -> torch.Tensor:
    """``count`` real demo images (Fashion-MNIST), resized and normalised by an hf_mim processor."""
    config = hf_mim.get_method("mae").make_config("tiny", image_size=image_size, num_channels=num_channels)
    processor = hf_mim.processor_for_config(config)
    dataset = prepare_dataset(load_image_dataset(None, split=split), processor, train=False)
    step = max(1, len(dataset) // count)
    return torch.stack([dataset[i * step]["pixel_values"] for i in range(count)])


@pytest.fixture(scope="session")
def images_rgb32():
    return real_images(8, 32, 3)


@pytest.fixture(scope="session")
def images_gray32():
    return real_images(8, 32, 1)


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread is faster than two, and far faster on a loaded machine (OpenMP barriers); use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pixels_for(spec, config, images: torch.Tensor):
    """``images`` [B, C, H, W] in the layout ``spec``'s models take: video methods get clips [B, T, C, H, W] of
    ``config.num_frames`` frames (each image drifting by a pixel per frame); graph methods get, instead of images,
    a batch of ``len(images)`` generated graphs (grid methods: radiance grids; tabular methods: standardised rows
    of scikit-learn's digits, the first ``config.feature_size`` features; point-cloud methods ``{"points": ...}``
    of as many generated shapes; text methods ``input_ids`` / ``attention_mask`` of random tokens; activation
    methods seeded activation / gradient vectors; audio-visual methods clips and filter banks of tone patterns) as
    a dict of inputs (``model_inputs`` passes either to a model), so generic tests run on every modality."""
    if spec.modality == "graph":
        return demo_graph_batch(len(images), config.feature_size)
    if spec.modality == "grid":
        return demo_grid_batch(len(images), config.grid_size)
    if spec.modality == "tabular":
        return demo_tabular_batch(len(images), config.feature_size)
    if spec.modality == "activations":
        return demo_activation_batch(len(images), config.d_in)
    if spec.modality == "points":
        return {"points": demo_point_batch(len(images), config.num_points)}
    if spec.modality == "text":
        return demo_token_batch(len(images), config.vocab_size)
    if spec.modality not in ("video", "audio-visual"):
        return images
    clips = torch.stack([images.roll(t, dims=-1) for t in range(config.num_frames)], dim=1)
    if spec.modality == "video":
        return clips
    return {"pixel_values": clips, "input_values": demo_filter_banks(len(images), config.audio_length, config.num_mel_bins)}


def demo_filter_banks(count: int, frames: int, mel_bins: int) -> torch.Tensor:
    """``[count, frames, mel_bins]`` filter banks of generated tone patterns (one class after another)."""
    import numpy as np

    from hf_mim.data.audio import SAMPLING_RATE, TONE_CLASSES, audio_feature_extractor, tone_pattern

    rng = np.random.default_rng(0)
    kinds = list(TONE_CLASSES)
    waves = [tone_pattern(kinds[i % len(kinds)], frames / 100, SAMPLING_RATE, rng) for i in range(count)]
    extractor = audio_feature_extractor(num_mel_bins=mel_bins, max_length=frames)
    return extractor(waves, sampling_rate=SAMPLING_RATE, return_tensors="pt")["input_values"]


def processor_for(spec, config):
    """``spec``'s processor for ``config``; text methods get a small BPE tokenizer trained on the generated
    key-value corpus (their processor is the tokenizer trained on the data)."""
    if spec.modality == "text":
        return spec.make_processor(config, tokenizer=demo_tokenizer())
    return spec.make_processor(config)


@functools.lru_cache(maxsize=1)
def demo_tokenizer():
    from hf_mim.data.text import make_key_value_corpus, train_tokenizer

    return train_tokenizer(make_key_value_corpus(60, seed=0)["text"], vocab_size=300, model_max_length=64)


def model_inputs(pixels) -> dict:
    """An encoder's keyword inputs from :func:`pixels_for`'s output."""
    return dict(pixels) if isinstance(pixels, dict) else {"pixel_values": pixels}


def demo_graph_batch(num_graphs: int = 4, feature_size: int = 16, num_nodes: int = 24, seed: int = 0) -> dict:
    """``num_graphs`` small stochastic-block-model graphs batched into one (``node_features``, ``edge_index``)."""
    from hf_mim.data.graphs import make_sbm_graphs
    from hf_mim.processing.graph_processing_mim import GraphFeatureExtractor

    graphs = make_sbm_graphs(num_graphs, num_nodes=num_nodes, feature_size=feature_size, seed=seed)
    batch = GraphFeatureExtractor(feature_size)([graphs[i] for i in range(num_graphs)])
    return {"node_features": batch["node_features"], "edge_index": batch["edge_index"]}


def demo_grid_batch(num_grids: int = 2, grid_size: int = 32, seed: int = 0) -> dict:
    """``num_grids`` generated radiance grids (coloured primitives), padded: ``grid_values`` and ``valid_mask``."""
    from hf_mim.data.grids import make_primitive_grids
    from hf_mim.processing.grid_processing_mim import NeRFMAEFeatureExtractor

    grids = make_primitive_grids(num_grids, size=grid_size, seed=seed).with_format("numpy")
    return dict(NeRFMAEFeatureExtractor(grid_size, size_multiple=grid_size)([grids[i]["rgbsigma"] for i in range(num_grids)]))


def demo_tabular_batch(num_rows: int = 8, feature_size: int = 16) -> dict:
    """``{"input_values": [num_rows, feature_size]}``: standardised digits rows, the first ``feature_size`` pixels
    that vary in the training split."""
    from hf_mim.data.tabular import feature_matrix, load_tabular_dataset, tabular_columns
    from hf_mim.processing import TabularFeatureExtractor

    train = load_tabular_dataset("digits", "train")
    features = feature_matrix(train, tabular_columns(train)[0])
    features = features[:, features.std(0) > 0][:, :feature_size]
    return {"input_values": TabularFeatureExtractor.fit(features).standardize(features[:num_rows])}


def demo_activation_batch(count: int = 8, width: int = 32, seed: int = 0) -> dict:
    """``activations`` and ``activation_grads`` ``[count, width]``: seeded Gaussian vectors (the SAE tests that need
    a real language model collect them from a tiny random one)."""
    generator = torch.Generator().manual_seed(seed)
    return {"activations": torch.randn(count, width, generator=generator),
            "activation_grads": torch.randn(count, width, generator=generator) * 0.1}


def demo_point_batch(count: int = 4, num_points: int = 256, seed: int = 0) -> torch.Tensor:
    """``[count, num_points, 3]`` generated shape clouds (one per class in turn), sampled and normalised by the
    point-cloud feature extractor."""
    from hf_mim.data.points import SHAPE_CLASSES, make_shape_clouds
    from hf_mim.processing.point_processing_mim import PointCloudFeatureExtractor

    clouds = make_shape_clouds(-(-count // len(SHAPE_CLASSES)), num_points=num_points, seed=seed)
    return PointCloudFeatureExtractor(num_points)([clouds[i]["points"] for i in range(count)])["points"]


def demo_token_batch(count: int = 4, vocab_size: int = 300, length: int = 16, seed: int = 0) -> dict:
    """``count`` rows of random token ids (id 1 first, as a [CLS]), the second row right-padded (id 0) after 12."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (count, length), generator=generator)
    input_ids[:, 0] = 1
    attention_mask = torch.ones_like(input_ids)
    attention_mask[min(1, count - 1), 12:] = 0
    return {"input_ids": input_ids.masked_fill(attention_mask == 0, 0), "attention_mask": attention_mask}


# an import hook that makes hf_mim unimportable even though it is installed: only files that travel with a
# checkpoint (its remote-code bundle) can be used
BLOCK_HF_MIM = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, *args):\n"
    "        if name == 'hf_mim' or name.startswith('hf_mim.'):\n"
    "            raise ImportError(f'{name} is blocked in this test')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def run_python(script: str, cwd, env: dict | None = None, block_hf_mim: bool = False, timeout: int = 300):
    """Run ``script`` in a fresh isolated interpreter (``-I``) in ``cwd``; returns the CompletedProcess."""
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-I", "-c", (BLOCK_HF_MIM if block_hf_mim else "") + script],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
