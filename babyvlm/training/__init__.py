"""Training components shared by the recipes: collators, packing, DINO-style self-supervision, checkpoint assembly."""
