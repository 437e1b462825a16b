"""A run's ``config.yaml``: the resolved `Config`, written atomically; `Config.from_yaml` reads
it back with every key given, so a resumed run changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

from multiq.config import Config
from multiq.runio.files import atomic_write_text
from multiq.runio.layout import CONFIG_FILE


def save_config(cfg: Config, path: str | os.PathLike[str]) -> Path:
    """Writes `cfg` as YAML (temp file in the same folder, then rename; missing folders are
    created).

    Args:
        cfg: the config.
        path: a run folder (the file is its `CONFIG_FILE`) or the file to write.

    Returns:
        The path written.

    Raises:
        RunDirError: the disk is full or the folder not writable (a previous file stays).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    atomic_write_text(path, cfg.yaml_text())
    return path
