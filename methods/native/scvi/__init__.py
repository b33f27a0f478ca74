"""Native scVI and scANVI in PyTorch (Xu et al., Online Methods and Supplementary Notes)."""
from .model import SCANVI, SCVI, default_n_epochs

__all__ = ["SCVI", "SCANVI", "default_n_epochs"]
