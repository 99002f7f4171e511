"""Data only: one TOML spec per dataset plus `mess.toml`. A package so that the specs ship in the wheel."""
