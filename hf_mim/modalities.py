"""What differs between input modalities, one :class:`Modality` per kind of data.

A method's :class:`~hf_mim.registry.MethodSpec` names its modality ("image", "video", ...); the CLI, the Trainer
path, the evaluation commands, the model cards, the push and the remote-code export ask the modality (through the
spec) how to load and prepare data, which transformers Auto class loads the saved processor and which Hub pipeline
tags describe the model, so none of them switches on method names. Data modules are imported lazily, so a
modality whose optional dependency is missing (PyAV for video) costs nothing until it is used.
"""

import importlib
from dataclasses import dataclass


def _lazy(path: str):
    """``"module:function"`` -> a callable that imports the function on first use."""
    module_name, name = path.split(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module_name), name)(*args, **kwargs)

    call.__name__ = name
    return call


@dataclass(frozen=True)
class Modality:
    """name: "image", "video", ...

    load_dataset: ``(source, split, streaming=False) -> datasets.Dataset`` (None/"demo" = the generated or bundled
    demo set). prepare_dataset: ``(dataset, processor, train, column=None, label_column=None, with_labels=False,
    transform=None) -> dataset`` yielding ``pixel_values`` (and ``labels``). build_transform: ``(processor, train,
    scale) -> callable`` the default per-sample transform. config_from_data: optional ``(dataset, column,
    overrides, estimate_stats) -> (config overrides,
    processor overrides)`` read from the data (e.g. grayscale images -> one
    channel and their statistics). auto_processor / auto_classification: the transformers Auto classes for the
    saved processor and the classification head. processor_file: the processor's JSON file name.
    feature_pipeline / classification_pipeline: Hub pipeline tags. tags: Hub tags added to every card.
    reconstruction_images: whether ``hf-mim push`` can render a reconstruction grid for this modality.
    collator: ``() -> collate_fn`` batching prepared samples (None: ``MIMCollator``, which stacks tensors; graphs
    are concatenated instead). usage_example: ``(imports, inputs name, line making the inputs)`` for the cards'
    usage snippet.
    """

    name: str
    load_dataset: object
    prepare_dataset: object
    build_transform: object
    config_from_data: object = None
    auto_processor: str = "AutoImageProcessor"
    auto_classification: str = "AutoModelForImageClassification"
    processor_file: str = "preprocessor_config.json"
    feature_pipeline: str = "image-feature-extraction"
    classification_pipeline: str = "image-classification"
    tags: tuple[str, ...] = ("masked-image-modeling", "vision")
    reconstruction_images: bool = True
    collator: object = None
    usage_example: tuple[str, str, str] = (
        "from PIL import Image\n", "images", 'images = [Image.open("image.jpg")]  # your images\n'
    )

    def auto_class(self, kind: str):
        """The transformers Auto class for ``kind`` ("processor" or "classification")."""
        import transformers

        return getattr(transformers, self.auto_processor if kind == "processor" else self.auto_classification)


def _image_config_from_data(dataset, column, overrides, estimate_stats=True):
    from hf_mim.data import IMAGE_COLUMN_CANDIDATES, find_column
    from hf_mim.training.pretrain import detect_num_channels, estimate_channel_stats

    column = find_column(dataset, IMAGE_COLUMN_CANDIDATES, "image", explicit=column)
    config_overrides, processor_overrides = {}, {}
    channels = overrides.get("num_channels") or detect_num_channels(dataset, column)
    config_overrides["num_channels"] = channels
    if channels != 3 and estimate_stats:
        mean, std = estimate_channel_stats(dataset, column, channels)
        processor_overrides = {"image_mean": mean, "image_std": std}
    return config_overrides, processor_overrides


def _image_prepare(dataset, processor, train=True, column=None, label_column=None, with_labels=False, transform=None, scale=(0.2, 1.0)):
    from hf_mim.data import prepare_dataset

    return prepare_dataset(dataset, processor, train=train, image_column=column, label_column=label_column,
                           with_labels=with_labels, scale=scale, transform=transform)


MODALITIES = {
    "image": Modality(
        name="image",
        load_dataset=_lazy("hf_mim.data:load_image_dataset"),
        prepare_dataset=_image_prepare,
        build_transform=_lazy("hf_mim.data:build_transform"),
        config_from_data=_image_config_from_data,
    ),
    "video": Modality(
        name="video",
        load_dataset=_lazy("hf_mim.data.video:load_video_dataset"),
        prepare_dataset=_lazy("hf_mim.data.video:prepare_video_dataset"),
        build_transform=_lazy("hf_mim.data.video:build_video_transform"),
        auto_processor="AutoVideoProcessor",
        auto_classification="AutoModelForVideoClassification",
        processor_file="video_preprocessor_config.json",
        feature_pipeline="video-classification",
        classification_pipeline="video-classification",
        tags=("masked-video-modeling", "video"),
        reconstruction_images=False,
        usage_example=(
            "import numpy as np\n", "videos",
            "videos = [np.zeros((16, 224, 224, 3), dtype=np.uint8)]  # your clips: [frames, height, width, rgb]\n",
        ),
    ),
    "audio-visual": Modality(
        name="audio-visual",
        load_dataset=_lazy("hf_mim.data.audio_visual:load_audio_visual_dataset"),
        prepare_dataset=_lazy("hf_mim.data.audio_visual:prepare_audio_visual_dataset"),
        build_transform=_lazy("hf_mim.data.audio_visual:build_audio_visual_transform"),
        auto_processor="AutoProcessor",
        auto_classification="AutoModelForVideoClassification",
        processor_file="processor_config.json",
        feature_pipeline="video-classification",
        classification_pipeline="video-classification",
        tags=("masked-audio-visual-modeling", "video", "audio"),
        reconstruction_images=False,
        usage_example=(
            "import numpy as np\n", "**clips",
            "clips = dict(videos=[np.zeros((16, 160, 160, 3), dtype=np.uint8)], audio=[np.zeros(41000, dtype=np.float32)])"
            "  # your clips: [frames, height, width, rgb] and 16 kHz sound\n",
        ),
    ),
    "graph": Modality(
        name="graph",
        load_dataset=_lazy("hf_mim.data.graphs:load_graph_dataset"),
        prepare_dataset=_lazy("hf_mim.data.graphs:prepare_graph_dataset"),
        build_transform=_lazy("hf_mim.data.graphs:build_graph_transform"),
        config_from_data=_lazy("hf_mim.data.graphs:graph_config_from_data"),
        auto_processor="AutoFeatureExtractor",
        # per-node classification: transformers' per-element head class (a node is to a graph what a token is to
        # a sequence); there is no AutoModelForNodeClassification
        auto_classification="AutoModelForTokenClassification",
        feature_pipeline="graph-ml",
        classification_pipeline="graph-ml",
        tags=("masked-graph-modeling", "graph"),
        reconstruction_images=False,
        collator=_lazy("hf_mim.data.graphs:GraphCollator"),
        usage_example=(
            "import torch\n", "graph",
            "graph = {\"node_features\": torch.randn(5, processor.feature_size), \"edge_index\": [[0, 1, 2, 3], [1, 2, 3, 4]]}"
            "  # your graph: [nodes, features], (sources, targets)\n",
        ),
    ),
    "text": Modality(
        name="text",
        load_dataset=_lazy("hf_mim.data.text:load_text_dataset"),
        prepare_dataset=_lazy("hf_mim.data.text:prepare_text_dataset"),
        build_transform=_lazy("hf_mim.data.text:build_text_transform"),
        config_from_data=_lazy("hf_mim.data.text:text_config_from_data"),
        auto_processor="AutoTokenizer",
        auto_classification="AutoModelForSequenceClassification",
        processor_file="tokenizer_config.json",
        feature_pipeline="text-generation",
        classification_pipeline="text-classification",
        tags=("masked-language-modeling", "text"),
        reconstruction_images=False,
        usage_example=("", "text", 'text = ["the door code of amber is"]  # your text\n'),
    ),
    "grid": Modality(
        name="grid",
        load_dataset=_lazy("hf_mim.data.grids:load_grid_dataset"),
        prepare_dataset=_lazy("hf_mim.data.grids:prepare_grid_dataset"),
        build_transform=_lazy("hf_mim.data.grids:build_grid_transform"),
        auto_processor="AutoFeatureExtractor",
        # no Hub task for radiance grids; a grid-level classifier (none registered yet) is sequence-level
        auto_classification="AutoModelForSequenceClassification",
        feature_pipeline="feature-extraction",
        classification_pipeline="feature-extraction",
        tags=("masked-volume-modeling", "nerf", "3d"),
        reconstruction_images=False,
        usage_example=(
            "import numpy as np\n", "grids",
            "grids = [np.zeros((32, 32, 32, 4), dtype=np.float32)]  # your radiance grids: [x, y, z, rgb + density]\n",
        ),
    ),
    "tabular": Modality(
        name="tabular",
        load_dataset=_lazy("hf_mim.data.tabular:load_tabular_dataset"),
        prepare_dataset=_lazy("hf_mim.data.tabular:prepare_tabular_dataset"),
        build_transform=_lazy("hf_mim.data.tabular:build_tabular_transform"),
        config_from_data=_lazy("hf_mim.data.tabular:tabular_config_from_data"),
        auto_processor="AutoFeatureExtractor",
        # transformers has no tabular head class; a tabular method's evaluation is a classifier on its outputs
        auto_classification="AutoModel",
        feature_pipeline="feature-extraction",
        classification_pipeline="tabular-classification",
        tags=("feature-selection", "tabular"),
        reconstruction_images=False,
        usage_example=(
            "import numpy as np\n", "rows",
            "rows = np.random.rand(4, processor.feature_size)  # your rows: [samples, features], unstandardised\n",
        ),
    ),
    "points": Modality(
        name="points",
        load_dataset=_lazy("hf_mim.data.points:load_point_dataset"),
        prepare_dataset=_lazy("hf_mim.data.points:prepare_point_dataset"),
        build_transform=_lazy("hf_mim.data.points:build_point_transform"),
        auto_processor="AutoFeatureExtractor",
        # one label per cloud, a cloud being a set of point tokens: transformers' per-sequence head class (there is
        # no AutoModelForPointCloudClassification)
        auto_classification="AutoModelForSequenceClassification",
        feature_pipeline="feature-extraction",
        classification_pipeline="other",
        tags=("masked-point-modeling", "point-cloud"),
        reconstruction_images=False,
        usage_example=(
            "import numpy as np\n", "clouds",
            "clouds = [np.random.randn(4096, 3)]  # your point clouds: [points, xyz]\n",
        ),
    ),
    "activations": Modality(
        name="activations",
        load_dataset=_lazy("hf_mim.data.activations:load_activation_dataset"),
        prepare_dataset=_lazy("hf_mim.data.activations:prepare_activation_dataset"),
        build_transform=_lazy("hf_mim.data.activations:build_activation_transform"),
        config_from_data=_lazy("hf_mim.data.activations:activation_config_from_data"),
        auto_processor="AutoFeatureExtractor",
        # no head: an SAE's evaluation is its reconstruction and the language model's loss with it spliced in
        auto_classification="AutoModel",
        feature_pipeline="feature-extraction",
        classification_pipeline="feature-extraction",
        tags=("sparse-autoencoder", "interpretability"),
        reconstruction_images=False,
        usage_example=(
            "import torch\n", "activations",
            "activations = torch.randn(4, processor.feature_size)  # your residual-stream vectors of the source layer\n",
        ),
    ),
}


def get_modality(name: str) -> Modality:
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; available: {', '.join(sorted(MODALITIES))}")
    return MODALITIES[name]


def modality_for_config(config) -> Modality:
    """The modality of an hf_mim config; image for anything else (e.g. a transformers ViT used as a baseline)."""
    from hf_mim.registry import discover, method_for_config

    discover()
    try:
        return method_for_config(config).data
    except ValueError:
        return MODALITIES["video"] if "video" in str(getattr(config, "model_type", "")) else MODALITIES["image"]
