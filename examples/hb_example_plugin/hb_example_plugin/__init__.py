"""Example plug-in for harmonization-bench.

Registers ``example_svd``: log-normalise the counts, centre, and keep the top singular
vectors. It does no batch correction, so it scores like an unintegrated baseline.
"""
import numpy as np

from methods.registry import register

__version__ = "0.1.0"


@register(
    name="example_svd",
    capabilities=("embed",),
    requires=("sklearn",),
    defaults={"target_sum": 1e4},
    citation="Example plug-in (harmonization-bench docs)",
    url="https://example.org/hb-example-plugin",
    version=f"hb-example-plugin {__version__}",
)
def example_svd(adata, task):
    """Truncated SVD of log-normalised counts (no correction)."""
    from sklearn.decomposition import TruncatedSVD

    X = adata.X.tocsr().astype(np.float64)
    lib = np.asarray(X.sum(axis=1)).ravel()
    lib[lib == 0] = 1.0
    X = X.multiply(task.params["target_sum"] / lib[:, None]).tocsr()
    X.data = np.log1p(X.data)
    n = min(task.n_latent, min(X.shape) - 1)
    svd = TruncatedSVD(n_components=n, random_state=task.seed)
    return {"embedding": svd.fit_transform(X)}
