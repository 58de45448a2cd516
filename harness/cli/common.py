"""What the verbs share: printing to stdout or a file, and quieting the libraries."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from harness.errors import HarnessError


def emit(text: str, output: str | None) -> None:
    """Print, or write to --output with one clear error when that place is not writable."""
    if not output:
        print(text, end="")
        return
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(
            f"cannot write {output} ({exc.strerror or exc}); choose another --output"
        ) from exc


def quiet_warnings() -> None:
    """Without -v, the libraries' own warnings stay off stderr: deprecation notices between
    libraries (peft calling transformers), peft's and transformers' user warnings (a config
    file not found beside a local model, keys it did not use) and transformers' load reports.
    They ask nothing of a user of the harness; -v shows them all."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for library in ("peft", "transformers", "torch", "huggingface_hub", "datasets", "matplotlib"):
        warnings.filterwarnings("ignore", category=UserWarning, module=rf"{library}(\.|$)")
    # matplotlib attributes a missing glyph (CJK names in a plot) to the caller's module
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()


def quiet_libraries(verbose: bool) -> None:
    """--no-progress: the hub's, transformers' and datasets' progress bars off too, and (unless
    -v) transformers' warnings and the libraries' deprecation notices; errors still show."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # Deprecation notices between libraries (peft calling transformers) ask nothing of a user.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        if not verbose:
            transformers_logging.set_verbosity_error()
