"""An OCR view of page images, so text-only encoders can run on ViDoRe pages (as ViDoRe's text
baselines do). Engines: RapidOCR (PP-OCR models in ONNX, `pip install 'metaembed-harness[ocr]'`)
or Tesseract (Debian's `tesseract-ocr`). Text is cached by image content hash, in memory and on
disk, so a page is read once."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.constants import harness_home
from harness.errors import HarnessError, UsageError
from harness.protocol import Item

ENGINES = ("rapidocr", "tesseract")


def available_engine() -> str | None:
    try:
        import rapidocr_onnxruntime  # noqa: F401

        return "rapidocr"
    except ImportError:
        pass
    return "tesseract" if shutil.which("tesseract") else None


class OCRReader:
    def __init__(self, engine: str, cache_dir: str | os.PathLike | None = None):
        if engine not in ENGINES:
            raise UsageError(
                f"unknown OCR engine {engine!r}; use one of {', '.join(ENGINES)} or none"
            )
        self.engine = engine
        self._rapid = None
        self._memory: dict[str, str] = {}
        root = cache_dir or harness_home() / "ocr"
        self.cache_dir = Path(root) / engine

    def _run(self, data: bytes) -> str:
        if self.engine == "rapidocr":
            if self._rapid is None:
                from rapidocr_onnxruntime import RapidOCR

                self._rapid = RapidOCR()
            import numpy as np
            from PIL import Image

            image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[
                :, :, ::-1
            ]  # BGR, as OpenCV reads
            result, _ = self._rapid(image)
            return "\n".join(line[1] for line in (result or []))
        with tempfile.NamedTemporaryFile(suffix=".img") as handle:
            handle.write(data)
            handle.flush()
            try:
                out = subprocess.run(
                    ["tesseract", handle.name, "-", "--psm", "3"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            except (OSError, subprocess.CalledProcessError) as exc:
                raise HarnessError(f"tesseract failed on an image: {exc}") from exc
        return " ".join(out.stdout.split())

    def read(self, item: Item) -> str:
        data = item.image_bytes()
        if data is None:
            return ""
        key = hashlib.sha256(data).hexdigest()
        if key in self._memory:
            return self._memory[key]
        path = self.cache_dir / key[:2] / f"{key}.txt"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
        else:
            try:
                text = self._run(data)
            except Exception as exc:  # PIL and the engines raise several types on bad images
                where = (
                    "<bytes>"
                    if isinstance(item.image, bytes | bytearray)
                    else os.fspath(item.image)
                )
                raise HarnessError(
                    f"item {item.id!r}: image {where!r} cannot be read by OCR ({self.engine}): "
                    f"{exc}".splitlines()[0]
                ) from exc
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        self._memory[key] = text
        return text


def make_ocr(option: str | None) -> OCRReader | None:
    """`auto` (default): the first engine installed, or none; `none`: refuse OCR; or an engine name."""
    if option in (None, "auto"):
        engine = available_engine()
        return OCRReader(engine) if engine else None
    if option == "none":
        return None
    return OCRReader(option)
