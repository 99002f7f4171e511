"""The demo (`bench run --demo`, `bench train --demo`): which model it runs, named once."""

DEMO_MODEL = "catseg-tiny"
"""The smallest variant: it runs untrained (`run`) or trains in minutes (`train`) on the CPU."""

TRAIN_DEMO_MODELS = (DEMO_MODEL, "catseg-eva02-tiny", "catseg-siglip-tiny")
"""What `bench train --demo --model` takes: the tiny variants of CAT-Seg on OpenAI CLIP and on the
seed's Table 4 towers (EVA-02-CLIP, SigLIP), whose L models do not train on a CPU in minutes."""
