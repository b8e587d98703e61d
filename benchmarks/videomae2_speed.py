"""Speed row of benchmarks/RESULTS.md: a VideoMAE V2 dual-masked training step against transformers'
VideoMAEForPreTraining on the same config, batch, weights and encoder mask, timed alternately in one process
(hf_mim.bench helpers). Run: OMP_NUM_THREADS=1 python benchmarks/videomae2_speed.py"""

import json

import torch

torch.set_num_threads(1)
from transformers import VideoMAEConfig, VideoMAEForPreTraining

import hf_mim  # noqa: E402
from hf_mim.bench import interleaved_times, saved_activation_bytes, training_step_fn
from hf_mim.models.videomae2 import convert_videomae2 as convert

cfg = dict(image_size=64, patch_size=8, num_frames=16, tubelet_size=2, hidden_size=192, num_hidden_layers=4,
           num_attention_heads=3, intermediate_size=768, decoder_hidden_size=192, decoder_num_hidden_layers=4,
           decoder_num_attention_heads=3, decoder_intermediate_size=768)
torch.manual_seed(0)
spec = hf_mim.get_method("videomae2")
ours = spec.pretraining_class(spec.make_config("base", **cfg, mask_ratio=0.9, decoder_mask_ratio=0.5)).train()
theirs = VideoMAEForPreTraining(VideoMAEConfig(**cfg, use_mean_pooling=False, norm_pix_loss=True, layer_norm_eps=1e-6)).train()
theirs.load_state_dict(convert.to_transformers(ours.state_dict()))
x = torch.randn(8, 16, 3, 64, 64)
inputs = spec.make_inputs(ours, x, torch.Generator().manual_seed(0))
device = torch.device("cpu")
step_ours = training_step_fn(ours, x, {k: v for k, v in inputs.items() if k != "pixel_values"}, "fp32", device)
step_theirs = training_step_fn(theirs, x, {"bool_masked_pos": inputs["bool_masked_pos"]}, "fp32", device)
t_ours, t_theirs, quart = interleaved_times(step_ours, step_theirs, device, warmup=2, repeats=7)
mem_ours, mem_theirs = saved_activation_bytes(step_ours) / 2**20, saved_activation_bytes(step_theirs) / 2**20
tokens = cfg["num_frames"] // 2 * (64 // 8) ** 2
visible = int(inputs["bool_masked_pos"][0].logical_not().sum())
print(json.dumps({"tokens": tokens, "encoder_visible": visible, "decoder_tokens_v2": visible + int((~inputs["decoder_mask"][0]).sum()),
                  "decoder_tokens_videomae": tokens, "step_s_ours": t_ours, "step_s_transformers": t_theirs,
                  "ratio": t_theirs / t_ours, "pair_quartiles": quart, "saved_MB_ours": mem_ours, "saved_MB_transformers": mem_theirs}))
