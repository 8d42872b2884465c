"""Supervised training of every text stage with TRL's SFTTrainer (BabyLLaVA-V2's stages, and instruction tuning of
any image-text-to-text model, fully or with LoRA/QLoRA): the launch script.

    accelerate launch recipes/sft.py --config recipes/<family>/<recipe>.yaml [--any_field value ...]

The recipe itself, its options and the stages it trains are `babyvlm.training.sft` (`babyvlm train sft` runs the
same function in one process); this script only hands it the command line.
"""

from babyvlm.training.sft import main

if __name__ == "__main__":
    raise SystemExit(main())
