"""Tirosh et al. 2016 cell-cycle marker genes (Science 352:189, the "regev_lab_cell_cycle_genes"
list): 43 S-phase and 54 G2/M-phase human symbols, identical to Seurat 4.3's ``cc.genes`` and to
scib 1.1's ``cell_cycle_genes_homo_sapiens.tsv``. scib's mouse list is the same symbols in title
case (``MCM5`` -> ``Mcm5``), which :func:`cell_cycle_genes` derives.
"""
from __future__ import annotations

from ._checks import MetricInputError

S_GENES = (
    "MCM5", "PCNA", "TYMS", "FEN1", "MCM2", "MCM4", "RRM1", "UNG", "GINS2", "MCM6", "CDCA7", "DTL", "PRIM1",
    "UHRF1", "MLF1IP", "HELLS", "RFC2", "RPA2", "NASP", "RAD51AP1", "GMNN", "WDR76", "SLBP", "CCNE2", "UBR7",
    "POLD3", "MSH2", "ATAD2", "RAD51", "RRM2", "CDC45", "CDC6", "EXO1", "TIPIN", "DSCC1", "BLM", "CASP8AP2",
    "USP1", "CLSPN", "POLA1", "CHAF1B", "BRIP1", "E2F8",
)
G2M_GENES = (
    "HMGB2", "CDK1", "NUSAP1", "UBE2C", "BIRC5", "TPX2", "TOP2A", "NDC80", "CKS2", "NUF2", "CKS1B", "MKI67",
    "TMPO", "CENPF", "TACC3", "FAM64A", "SMC4", "CCNB2", "CKAP2L", "CKAP2", "AURKB", "BUB1", "KIF11", "ANP32E",
    "TUBB4B", "GTSE1", "KIF20B", "HJURP", "CDCA3", "HN1", "CDC20", "TTK", "CDC25C", "KIF2C", "RANGAP1", "NCAPD2",
    "DLGAP5", "CDCA2", "CDCA8", "ECT2", "KIF23", "HMMR", "AURKA", "PSRC1", "ANLN", "LBR", "CKAP5", "CENPE",
    "CTCF", "NEK2", "G2E3", "GAS2L3", "CBX5", "CENPA",
)
ORGANISMS = ("human", "mouse")
#: fewest genes of each phase present before the suite scores the cell cycle (a score from a
#: handful of genes is mostly noise; scib only requires one)
MIN_GENES_PER_PHASE = 10


def cell_cycle_genes(organism: str = "human") -> tuple[tuple, tuple]:
    """(S-phase genes, G2/M genes) as symbols of ``organism`` ("human" or "mouse")."""
    if organism not in ORGANISMS:
        raise MetricInputError(f"`organism` must be one of {ORGANISMS}, got {organism!r}")
    if organism == "mouse":
        return tuple(g.capitalize() for g in S_GENES), tuple(g.capitalize() for g in G2M_GENES)
    return S_GENES, G2M_GENES


def present_cell_cycle_genes(gene_names, organism: str = "auto") -> tuple[str, list, list]:
    """(organism, S genes present, G2/M genes present) in ``gene_names``, in list order.

    ``organism="auto"`` picks the organism whose symbols match more of ``gene_names``.
    """
    names = set(map(str, gene_names))
    candidates = ORGANISMS if organism == "auto" else (organism,)
    found = []
    for org in candidates:
        s, g2m = cell_cycle_genes(org)
        found.append((org, [g for g in s if g in names], [g for g in g2m if g in names]))
    return max(found, key=lambda f: len(f[1]) + len(f[2]))
