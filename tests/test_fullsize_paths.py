"""What broke (or would have) with the full-size architectures and never with the tiny pipelines, each kept by a
small test (make check-fullsize runs the full-size ones: BENCHMARKS.md section 8)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gendistill.provenance import model_identity


def test_local_weights_hashed_without_reading_a_file_whole(tmp_path, monkeypatch):
    """The provenance's sha256 of a local model read each weight file whole into memory: the package job of a run
    on PixArt-Sigma (a 9.5 GB T5-XXL file in bfloat16) would have held it all, and FLUX's 24 GB transformer more
    than a 24 GB machine has. It streams them now, to the same hash."""
    (tmp_path / "unet").mkdir()
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(bytes(range(256)) * 5000)
    (tmp_path / "model_index.json").write_text("{}")
    expected = hashlib.sha256()
    for f in (tmp_path / "model_index.json", weights):  # each file's name and the sha256 of its contents
        expected.update(f"{f.relative_to(tmp_path)}\0{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())

    def whole(self):
        raise AssertionError(f"{self} read whole")

    monkeypatch.setattr(Path, "read_bytes", whole)
    assert model_identity(str(tmp_path), None) == {"source": str(tmp_path), "local_sha256": expected.hexdigest()}
