"""Small helpers shared by `model/` and `catseg_bench/`: files, downloads, devices, torchrun processes.

`files` and `download` use the standard library only; `device` and `world` need torch.
"""
