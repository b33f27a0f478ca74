"""Hierarchical classifier q(y, y^g | z) of scANVI (paper, Supplementary Note 4).

Two networks f (fine cell types) and f^g (groups) with softmax outputs; the fine posterior is

    q(y_i | z) = f_i(z) / sum_{j in children(pi(i))} f_j(z) * f^g_{pi(i)}(z)

so the fine probabilities within each group renormalise among siblings and the group
probability multiplies them: probabilities sum to one at every level.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from methods.base import MethodInputError


def parent_index(fine_classes: Sequence[str], hierarchy: Mapping) -> tuple[np.ndarray, list]:
    """Index of each fine class's parent and the sorted list of parent (coarse) classes.

    Raises MethodInputError naming the labels that the hierarchy does not place.
    """
    hierarchy = {str(k): str(v) for k, v in dict(hierarchy).items()}
    missing = [c for c in fine_classes if str(c) not in hierarchy]
    if missing:
        raise MethodInputError(
            f"labels {missing} are not in the hierarchy (task.hierarchy / uns['hierarchy']); "
            "add a fine -> coarse entry for every label"
        )
    coarse = sorted({hierarchy[str(c)] for c in fine_classes})
    lookup = {c: i for i, c in enumerate(coarse)}
    return np.array([lookup[hierarchy[str(c)]] for c in fine_classes], dtype=np.int64), coarse


def hierarchical_log_probs(fine_logits: torch.Tensor, coarse_logits: torch.Tensor,
                           parent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log q(y | z) over fine classes, log q(y^g | z) over groups), Supplementary Note 4.

    ``fine_logits`` (n, C), ``coarse_logits`` (n, K), ``parent`` (C,) long in [0, K).
    log f_i - log sum_{siblings} f_j equals a log-softmax of the logits within the group.
    """
    n_groups = coarse_logits.shape[-1]
    member = parent.unsqueeze(0) == torch.arange(n_groups, device=parent.device).unsqueeze(1)  # (K, C)
    masked = fine_logits.unsqueeze(-2).masked_fill(~member, float("-inf"))  # (n, K, C)
    group_lse = torch.logsumexp(masked, dim=-1)  # (n, K)
    log_coarse = torch.log_softmax(coarse_logits, dim=-1)
    # index_select, not [..., parent]: a fixed-order backward under several threads
    log_fine = fine_logits - group_lse.index_select(-1, parent) + log_coarse.index_select(-1, parent)
    return log_fine, log_coarse
