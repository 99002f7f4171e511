"""A Grounded-SAM small enough for CPU tests: the real transformers GroundingDINO and SAM classes at
tiny widths and depths (one Swin block per stage, a 1-layer BERT over the stand-in vocabulary,
20 queries, a 2-layer SAM ViT at 256 px)."""

from __future__ import annotations

from model.grounded_sam.configs import GroundedSAMConfig
from model.grounded_sam.tokenizer import STANDIN_SIZE

TINY = GroundedSAMConfig(
    "grounded-sam-tiny", "tiny test config", "vit_b",
    backbone=dict(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                  out_indices=[2, 3, 4]),
    text=dict(vocab_size=STANDIN_SIZE, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
              max_position_embeddings=512),
    # Two decoder layers: transformers ties the box heads of layers 1.. to layer 0, so it needs two.
    detector=dict(d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                  encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20),
    sam_vision=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, global_attn_indexes=[1],
                    output_channels=32, image_size=256, window_size=4, mlp_dim=64, num_pos_feats=16),
    sam_prompt=dict(hidden_size=32, image_size=256),
    sam_decoder=dict(hidden_size=32, mlp_dim=64, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=32),
)
