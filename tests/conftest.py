"""Shared fixtures: everything runs offline on tiny random models."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# datasets 5 caches a local dataset folder by its card and name, not its files: tests that build folders with the
# same names must never read each other's (or an earlier run's) cache.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="babyvlm-datasets-cache-")
# Each test process (xdist worker) owns its cache: removed when that process exits.
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one intra-op thread per xdist worker: two workers with two threads each fight over the two cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

SHARED_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devcv_samples"


@pytest.fixture(scope="session")
def datasets_cache() -> Path:
    """The session's private 🤗 datasets cache (never the shared ~/.cache)."""
    return Path(os.environ["HF_DATASETS_CACHE"])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random BabyLLaVA-V2 checkpoint with its processor (17 tokens per 32x32 image)."""
    from babyvlm.testing.babyllava import build_tiny_babyllava

    directory = tmp_path_factory.mktemp("babyllava-v2-tiny")
    build_tiny_babyllava(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_and_processor(tiny_model_dir):
    """The tiny checkpoint loaded through the Auto classes (fp32, eval mode)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import babyvlm  # noqa: F401  (registers the Auto classes)

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    return model, AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture
def one_thread():
    """torch on one thread, as the tests' training processes run (OMP_NUM_THREADS=1): a run in this process repeats
    their arithmetic bit for bit, and a model this small runs fastest so, especially on cores shared with other jobs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def devcv_samples() -> Path:
    """The real DevCV samples from ../shared; skips when that folder is not beside the checkout."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"DevCV samples not found at {SHARED_SAMPLES}")
    return SHARED_SAMPLES
