"""Official GroundingDINO and SAM checkpoints -> transformers `GroundingDinoForObjectDetection` / `SamModel` keys.

An explicit rename table per model (regular expressions, tried in order, the first match wins),
plus the fused projections split in three (Swin's `attn.qkv`, `nn.MultiheadAttention`'s
`in_proj_*`). `convert_*` then checks the result against the transformers model: every key and
shape present and nothing else, naming what does not fit, so a wrong file or a wrong variant is
refused instead of loaded half-way. Keys the official model has and transformers has not are
listed with their reason (`DROPPED_*`); keys transformers has and the official file has not are
filled as listed (`FILLED_*`). The official key lists at full size are in
tests/data/grounded_sam/official_keys/ (from the official model code, built without weights).
Reference for the mapping: transformers' own conversion scripts (convert_grounding_dino_to_hf.py,
convert_sam_to_hf.py); written here from the two models' module trees.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from model.common.state_dicts import fit_problems, listed

_SWIN = "model.backbone.conv_encoder.model."
GDINO_RENAMES: tuple[tuple[str, str], ...] = (
    # Swin-B backbone (official `backbone.0.`; its three output norms are transformers' stage norms)
    (r"^backbone\.0\.patch_embed\.proj\.", _SWIN + "swin.embeddings.patch_embeddings.projection."),
    (r"^backbone\.0\.patch_embed\.norm\.", _SWIN + "swin.embeddings.norm."),
    (r"^backbone\.0\.norm([123])\.", lambda m: f"{_SWIN}hidden_states_norms.stage{int(m.group(1)) + 1}."),
    (r"^backbone\.0\.layers\.(\d+)\.downsample\.", _SWIN + r"swin.encoder.layers.\1.downsample."),
    (r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.norm1\.", _SWIN + r"swin.encoder.layers.\1.blocks.\2.layernorm_before."),
    (r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.norm2\.", _SWIN + r"swin.encoder.layers.\1.blocks.\2.layernorm_after."),
    (r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.", _SWIN + r"swin.encoder.layers.\1.blocks.\2.mlp."),
    (r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.", _SWIN + r"swin.encoder.layers.\1.blocks.\2.attention.o_proj."),
    (r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.", _SWIN + r"swin.encoder.layers.\1.blocks.\2.attention.{q,k,v}_proj."),
    (r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$",
     _SWIN + r"swin.encoder.layers.\1.blocks.\2.attention.relative_position_bias.relative_position_bias_table"),
    # BERT and its projection
    (r"^bert\.", "model.text_backbone."),
    (r"^feat_map\.", "model.text_projection."),
    (r"^input_proj\.", "model.input_proj_vision."),
    # encoder: deformable image layers, text enhancer layers, fusion layers -> one layer each
    (r"^transformer\.encoder\.layers\.(\d+)\.self_attn\.", r"model.encoder.layers.\1.deformable_layer.self_attn."),
    (r"^transformer\.encoder\.layers\.(\d+)\.norm1\.", r"model.encoder.layers.\1.deformable_layer.self_attn_layer_norm."),
    (r"^transformer\.encoder\.layers\.(\d+)\.linear1\.", r"model.encoder.layers.\1.deformable_layer.fc1."),
    (r"^transformer\.encoder\.layers\.(\d+)\.linear2\.", r"model.encoder.layers.\1.deformable_layer.fc2."),
    (r"^transformer\.encoder\.layers\.(\d+)\.norm2\.", r"model.encoder.layers.\1.deformable_layer.final_layer_norm."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$",
     r"model.encoder.layers.\1.text_enhancer_layer.self_attn.{query,key,value}.\2"),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.self_attn\.out_proj\.", r"model.encoder.layers.\1.text_enhancer_layer.self_attn.out_proj."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.linear1\.", r"model.encoder.layers.\1.text_enhancer_layer.fc1."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.linear2\.", r"model.encoder.layers.\1.text_enhancer_layer.fc2."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.norm1\.", r"model.encoder.layers.\1.text_enhancer_layer.layer_norm_before."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.norm2\.", r"model.encoder.layers.\1.text_enhancer_layer.layer_norm_after."),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.gamma_v$", r"model.encoder.layers.\1.fusion_layer.vision_param"),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.gamma_l$", r"model.encoder.layers.\1.fusion_layer.text_param"),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.layer_norm_v\.", r"model.encoder.layers.\1.fusion_layer.layer_norm_vision."),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.layer_norm_l\.", r"model.encoder.layers.\1.fusion_layer.layer_norm_text."),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.attn\.(out_|values_)?v_proj\.",
     r"model.encoder.layers.\1.fusion_layer.attn.\2vision_proj."),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.attn\.(out_|values_)?l_proj\.",
     r"model.encoder.layers.\1.fusion_layer.attn.\2text_proj."),
    # decoder: self-attention -> norm2, text cross-attention -> catext_norm, image cross-attention -> norm1, FFN -> norm3
    (r"^transformer\.decoder\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$", r"model.decoder.layers.\1.self_attn.{query,key,value}.\2"),
    (r"^transformer\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"model.decoder.layers.\1.self_attn.out_proj."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm2\.", r"model.decoder.layers.\1.self_attn_layer_norm."),
    (r"^transformer\.decoder\.layers\.(\d+)\.ca_text\.in_proj_(weight|bias)$", r"model.decoder.layers.\1.encoder_attn_text.{query,key,value}.\2"),
    (r"^transformer\.decoder\.layers\.(\d+)\.ca_text\.out_proj\.", r"model.decoder.layers.\1.encoder_attn_text.out_proj."),
    (r"^transformer\.decoder\.layers\.(\d+)\.catext_norm\.", r"model.decoder.layers.\1.encoder_attn_text_layer_norm."),
    (r"^transformer\.decoder\.layers\.(\d+)\.cross_attn\.", r"model.decoder.layers.\1.encoder_attn."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm1\.", r"model.decoder.layers.\1.encoder_attn_layer_norm."),
    (r"^transformer\.decoder\.layers\.(\d+)\.linear1\.", r"model.decoder.layers.\1.fc1."),
    (r"^transformer\.decoder\.layers\.(\d+)\.linear2\.", r"model.decoder.layers.\1.fc2."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm3\.", r"model.decoder.layers.\1.final_layer_norm."),
    (r"^transformer\.decoder\.norm\.", "model.decoder.layer_norm."),
    (r"^transformer\.decoder\.ref_point_head\.", "model.decoder.reference_points_head."),
    (r"^transformer\.decoder\.bbox_embed\.", "model.decoder.bbox_embed."),
    (r"^transformer\.enc_out_bbox_embed\.", "model.encoder_output_bbox_embed."),
    (r"^transformer\.enc_output\.", "model.enc_output."),
    (r"^transformer\.enc_output_norm\.", "model.enc_output_norm."),
    (r"^transformer\.level_embed$", "model.level_embed"),
    (r"^transformer\.tgt_embed\.", "model.query_position_embeddings."),
    (r"^bbox_embed\.", "bbox_embed."),
)
# Official keys with no transformers counterpart, and why.
DROPPED_GDINO = {
    r"^bert\.pooler\.": "BERT's pooler: GroundingDINO uses the last hidden state only",
    r"\.attn\.relative_position_index$": "Swin's relative position index: a computed buffer, checked equal instead",
}
# transformers keys with no official counterpart, and how they are filled.
FILLED_GDINO = {
    _SWIN + "swin.layernorm.weight": ("ones", "unused by SwinBackbone (its stage norms are the official norm1-3)"),
    _SWIN + "swin.layernorm.bias": ("zeros", "unused by SwinBackbone"),
}

SAM_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^image_encoder\.blocks\.(\d+)\.norm([12])\.", r"vision_encoder.layers.\1.layer_norm\2."),
    (r"^image_encoder\.blocks\.", "vision_encoder.layers."),
    (r"^image_encoder\.patch_embed\.proj\.", "vision_encoder.patch_embed.projection."),
    (r"^image_encoder\.pos_embed$", "vision_encoder.pos_embed"),
    (r"^image_encoder\.neck\.0\.", "vision_encoder.neck.conv1."),
    (r"^image_encoder\.neck\.1\.", "vision_encoder.neck.layer_norm1."),
    (r"^image_encoder\.neck\.2\.", "vision_encoder.neck.conv2."),
    (r"^image_encoder\.neck\.3\.", "vision_encoder.neck.layer_norm2."),
    (r"^prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix$",
     "[prompt_encoder.shared_embedding|shared_image_embedding].positional_embedding"),
    (r"^prompt_encoder\.point_embeddings\.", "prompt_encoder.point_embed."),
    (r"^prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^prompt_encoder\.", "prompt_encoder."),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    # 3-layer MLPs: layers.0 / 1 / 2 -> proj_in / layers.0 / proj_out
    (r"^mask_decoder\.(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.0\.", r"mask_decoder.\1.proj_in."),
    (r"^mask_decoder\.(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.1\.", r"mask_decoder.\1.layers.0."),
    (r"^mask_decoder\.(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.2\.", r"mask_decoder.\1.proj_out."),
    (r"^mask_decoder\.transformer\.layers\.(\d+)\.norm(\d)\.", r"mask_decoder.transformer.layers.\1.layer_norm\2."),
    (r"^mask_decoder\.transformer\.norm_final_attn\.", "mask_decoder.transformer.layer_norm_final_attn."),
    (r"^mask_decoder\.", "mask_decoder."),
)
DROPPED_SAM: dict[str, str] = {}
FILLED_SAM: dict[str, tuple[str, str]] = {}


class ConversionError(Exception):
    """An official state dict that does not convert to the transformers model; the message says why."""


def _targets(template: str) -> tuple[list[str], bool]:
    """The keys a rule's result names, and whether the tensor is split among them:
    'a.{q,k,v}_proj.w' -> three keys, the tensor split in three along dim 0 (a fused projection);
    '[a|b].w' -> two keys, the same tensor under both (a weight transformers keeps twice)."""
    for pattern, separator, split in ((r"\{([^}]*)\}", ",", True), (r"\[([^\]]*)\]", "|", False)):
        match = re.search(pattern, template)
        if match is not None:
            parts = match.group(1).split(separator)
            return [template[: match.start()] + part + template[match.end():] for part in parts], split
    return [template], False


def rename(state: dict[str, Tensor], renames, dropped: dict[str, str], origin: str) -> dict[str, Tensor]:
    """Official keys -> transformers keys by the first matching rule (see `_targets` for rules that
    name several keys); keys matching `dropped` are left out; a key no rule matches is an error."""
    out: dict[str, Tensor] = {}
    unmatched = []
    for key, value in state.items():
        if any(re.search(pattern, key) for pattern in dropped):
            continue
        for pattern, replacement in renames:
            if re.search(pattern, key):
                targets, split = _targets(re.sub(pattern, replacement, key, count=1))
                parts = value.chunk(len(targets), dim=0) if split else [value] * len(targets)
                out.update(zip(targets, parts))
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise ConversionError(f"{origin}: {len(unmatched)} key(s) of no known official layout: "
                              f"{listed(unmatched)}")
    return out


def check_against(converted: dict[str, Tensor], expected: dict[str, torch.Size], origin: str, what: str) -> None:
    """Every expected key present with its shape, and nothing else."""
    problems = fit_problems({k: tuple(v.shape) for k, v in converted.items()}, expected)
    if problems:
        raise ConversionError(f"{origin} is not an official {what} checkpoint of this model: {'; '.join(problems)}")


def _fill(converted: dict[str, Tensor], expected: dict[str, torch.Size], filled: dict[str, tuple[str, str]]) -> None:
    for key, (how, _) in filled.items():
        if key in expected and key not in converted:
            converted[key] = (torch.ones if how == "ones" else torch.zeros)(expected[key])


def convert_groundingdino(state: dict[str, Tensor], model, origin: str = "checkpoint") -> dict[str, Tensor]:
    """The transformers state dict of an official GroundingDINO state dict (`checkpoint["model"]`,
    keys with or without the DataParallel `module.` prefix)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    _check_relative_position_index(state, model, origin)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    converted = rename(state, GDINO_RENAMES, DROPPED_GDINO, origin)
    _fill(converted, expected, FILLED_GDINO)
    check_against(converted, expected, origin, "GroundingDINO")
    return converted


def convert_sam(state: dict[str, Tensor], model, origin: str = "checkpoint") -> dict[str, Tensor]:
    """The transformers state dict of an official segment_anything state dict."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    converted = rename(state, SAM_RENAMES, DROPPED_SAM, origin)
    check_against(converted, expected, origin, "SAM")
    return converted


def _check_relative_position_index(state: dict[str, Tensor], model, origin: str) -> None:
    """The official file stores Swin's relative position indices; they must be the ones transformers computes."""
    ours = {name: buf for name, buf in model.named_buffers() if name.endswith("relative_position_index")}
    if not ours:
        return
    reference = next(iter(ours.values()))
    if reference.is_meta:  # a model built without memory (the key-list checks): nothing to compare
        return
    for key, value in state.items():
        if key.endswith("attn.relative_position_index") and (
                value.shape != reference.shape or not torch.equal(value.to(reference.device).long(), reference.long())):
            raise ConversionError(f"{origin}: {key} is not Swin's relative position index for window 12")
