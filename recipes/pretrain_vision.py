"""Stage 0 vision, DINOv2-style self-supervised pretraining of the BabyLLaVA-V2 ViT on image frames: the launch
script.

    accelerate launch recipes/pretrain_vision.py --config recipes/babyllava_v2/stage0_vision.yaml

The recipe itself, its options, checkpoints and export are `babyvlm.training.pretrain_vision` (`babyvlm train
vision` runs the same function in one process); this script only hands it the command line.
"""

from babyvlm.training.pretrain_vision import main

if __name__ == "__main__":
    raise SystemExit(main())
