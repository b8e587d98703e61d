"""``train_sae()``: the Python API behind ``hf-mim sae``.

Collects the activation (and gradient) buffer of one layer of a causal language model over a text source
(:func:`hf_mim.data.activations.collect_activations`), saves it as parquet, then trains the SAE on it through the
ordinary ``pretrain`` path (``Trainer``, checkpoints, exact resume). The buffer is reused when it already exists, so
a resumed run trains on the same rows. The SAE's config records the source model and layer.
"""

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from hf_mim.data import DataError

logger = logging.getLogger(__name__)


@dataclass
class SAEArguments:
    """Which language model, layer and text to read, and the SAE's sparsity (``hf-mim sae --help``)."""

    model: str = field(default=None, metadata={"help": "Causal LM path or Hub id (its tokenizer is loaded with it)."})
    layer: int = field(default=None, metadata={"help": "Decoder block whose output (residual stream) the SAE reads."})
    k: int = field(default=32, metadata={"help": "Latents kept per activation."})
    beta: float = field(default=1.0, metadata={"help": "Gradient weight of the g-SAE selection (0: plain TopK SAE)."})
    expansion: int = field(default=32, metadata={"help": "Dictionary size as a multiple of the model width."})
    max_tokens: int = field(default=100_000, metadata={"help": "Activations to collect."})
    block_size: int = field(default=128, metadata={"help": "Tokens per text block fed to the language model."})
    collect_batch_size: int = field(default=8, metadata={"help": "Blocks per forward/backward while collecting."})
    buffer_dir: str | None = field(default=None, metadata={"help": "Where the buffer goes (default: <output_dir>-activations)."})


def collect_buffer(sae_args: SAEArguments, text_source: str | None, buffer_file: Path) -> None:
    """Run the LM over the text and save the buffer to ``buffer_file``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_mim.data.activations import collect_activations
    from hf_mim.data.text import load_text_dataset, tokenize_into_blocks

    model = AutoModelForCausalLM.from_pretrained(sae_args.model)
    tokenizer = AutoTokenizer.from_pretrained(sae_args.model)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and sae_args.block_size > limit:
        raise DataError(f"--block_size {sae_args.block_size} is longer than {sae_args.model}'s {limit} positions: lower it")
    blocks = tokenize_into_blocks(load_text_dataset(text_source), tokenizer, sae_args.block_size, extra_tokens=0)
    needed = -(-sae_args.max_tokens // (sae_args.block_size - 1))
    ids = torch.tensor(blocks["input_ids"][:needed])
    buffer = collect_activations(model, ids, sae_args.layer, with_grads=sae_args.beta > 0,
                                 batch_size=sae_args.collect_batch_size, max_tokens=sae_args.max_tokens)
    buffer_file.parent.mkdir(parents=True, exist_ok=True)
    buffer.to_parquet(str(buffer_file))
    logger.info("collected %d activations of layer %d of %s into %s", len(buffer), sae_args.layer, sae_args.model, buffer_file)


def train_sae(sae_args: SAEArguments, args, training_args):
    """Collect (or reuse) the buffer, then ``pretrain`` the g-SAE on it; returns ``(trainer, result)``."""
    from hf_mim.training.pretrain import pretrain

    if sae_args.model is None or sae_args.layer is None:
        raise ValueError("give --model <causal LM path or id> and --layer <decoder block index>")
    buffer_dir = Path(sae_args.buffer_dir or f"{str(training_args.output_dir).rstrip('/')}-activations")
    buffer_file = buffer_dir / "train.parquet"
    if not buffer_file.exists():
        collect_buffer(sae_args, args.data, buffer_file)
    else:
        logger.info("reusing the activation buffer %s", buffer_file)
    overrides = {"k": sae_args.k, "beta": sae_args.beta, "source_model": sae_args.model, "source_layer": sae_args.layer}
    overrides.update(json.loads(args.config_overrides) if args.config_overrides else {})
    if "num_latents" not in overrides:
        import pyarrow.parquet as pq

        width = len(pq.read_table(buffer_file, columns=["activations"]).column(0)[0])
        overrides["num_latents"] = sae_args.expansion * width
    args = replace(args, method="gsae", data=str(buffer_dir), config_overrides=json.dumps(overrides))
    return pretrain(args, training_args)
