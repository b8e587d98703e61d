# Generated from hf_mim.processing.remote_code_saving by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""What every hf_mim processor adds to ``save_pretrained``: its own code and an ``auto_map`` entry, so the saved folder
loads with ``trust_remote_code=True`` where hf_mim is not installed."""


class SavesRemoteCode:
    """Mixin placed before the transformers processor base. ``remote_code_auto_class`` / ``remote_code_config_file``:
    the transformers Auto class that loads the processor and the JSON file that receives its ``auto_map`` entry."""

    remote_code_auto_class = "AutoImageProcessor"
    remote_code_config_file = "preprocessor_config.json"

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save, then add the remote-code file and the ``auto_map`` entry (see ``hf_mim.hub.remote_code``)."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        try:
            from hf_mim.hub.remote_code import attach_processor_code
        except ImportError:  # running from an exported bundle: transformers copies the code itself
            return result
        attach_processor_code(self, save_directory, self.remote_code_auto_class, self.remote_code_config_file)
        return result
