"""Audio-visual processor (HiCMAE): the video processor for the frames and transformers' ``ASTFeatureExtractor``
(Kaldi filter banks with HiCMAE's settings, see ``hf_mim.data.audio.audio_feature_extractor``) for the sound track,
in one ``ProcessorMixin`` that ``AutoProcessor`` loads."""

import importlib

from transformers import ASTFeatureExtractor, ProcessorMixin

from hf_mim.processing.remote_code_saving import SavesRemoteCode
from hf_mim.processing.video_processing_mim import MIMVideoProcessor


class NoTokenizer:
    """transformers' ``Trainer`` reads the special tokens of ``processor.tokenizer`` for any ``ProcessorMixin``:
    an audio-visual processor has no tokenizer, hence no special tokens to align."""

    eos_token_id = bos_token_id = pad_token_id = None


class MIMAudioVisualProcessor(SavesRemoteCode, ProcessorMixin):
    """``processor(videos=..., audio=..., sampling_rate=16000)`` -> ``pixel_values [B, T, C, H, W]`` and
    ``input_values [B, frames, mel]``. Audio at another rate is refused by the feature extractor (resample it, or
    let ``hf_mim.data.audio.read_audio`` do so when loading files)."""

    attributes = ["video_processor", "feature_extractor"]
    tokenizer = NoTokenizer()
    remote_code_auto_class = "AutoProcessor"
    remote_code_config_file = "processor_config.json"

    def __init__(self, video_processor=None, feature_extractor=None, **kwargs):
        super().__init__(video_processor, feature_extractor, **kwargs)

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "MIMAudioVisualProcessor":
        # imported by name: this file also runs as remote code without hf_mim, where only __call__ is needed (an
        # import statement here would make transformers require hf_mim before loading the processor)
        audio = importlib.import_module("hf_mim.data.audio")
        extractor = audio.audio_feature_extractor(num_mel_bins=config.num_mel_bins, max_length=config.audio_length)
        return cls(MIMVideoProcessor.from_model_config(config, **kwargs), extractor)

    def __call__(self, videos=None, audio=None, sampling_rate: int | None = None, return_tensors="pt", **kwargs):
        if videos is None or audio is None:
            missing = "videos" if videos is None else "audio"
            raise ValueError(f"the audio-visual processor needs both videos and audio; {missing} is missing")
        out = dict(self.video_processor(videos, return_tensors=return_tensors, **kwargs))
        expected = self.feature_extractor.sampling_rate
        rate = sampling_rate if sampling_rate is not None else expected
        if rate != expected:
            raise ValueError(
                f"audio sampled at {rate} Hz but the model's filter banks expect {expected} Hz; resample it first "
                f"(hf_mim.data.audio.read_audio(path, {expected}) resamples while decoding)"
            )
        out.update(self.feature_extractor(audio, sampling_rate=rate, return_tensors=return_tensors))
        return out

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        """Both sub-processors are stored inline in ``processor_config.json``: build them from there, by class,
        because ``AutoVideoProcessor`` does not know hf_mim's video processor where hf_mim is not installed."""
        settings = processor_dict or {}
        if "video_processor" not in settings or "feature_extractor" not in settings:
            raise ValueError(f"{pretrained_model_name_or_path} has no audio-visual processor_config.json (video_processor and feature_extractor)")
        video = {k: v for k, v in settings["video_processor"].items() if k != "video_processor_type"}
        audio = {k: v for k, v in settings["feature_extractor"].items() if k != "feature_extractor_type"}
        return [MIMVideoProcessor(**video), ASTFeatureExtractor(**audio)]

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_values"]
