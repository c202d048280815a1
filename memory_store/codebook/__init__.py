"""Multifaceted learned item index (MFLI): residual-quantized codebooks trained with the
item embeddings, and a code-path index that serves candidates without ANN search.

The modules exported here are pure torch and know nothing of Kafka, the planner or
LanceDB. ``store`` keeps codes and models in LanceDB and ``item_codebook.ItemCodebook``
ties it all together for the worker and the reader; import them from there (they
are left out of this package's namespace so importing the core stays light).
"""

from memory_store.codebook.index import Address, CodeIndex, LeafStats, Path, as_paths
from memory_store.codebook.item2vec import Item2VecConfig, ItemVectors, train_item2vec
from memory_store.codebook.model import FacetSpec, MultiFacetIndexModel
from memory_store.codebook.quantizer import EMAQuantizer
from memory_store.codebook.refresh import (
    RefreshPlan,
    apply_refresh,
    bounded_moves,
    churn,
    plan_refresh,
)
from memory_store.codebook.residual import ResidualVQ, utilisation
from memory_store.codebook.train import TrainConfig, TrainReport, train

__all__ = [
    "Address",
    "CodeIndex",
    "EMAQuantizer",
    "FacetSpec",
    "Item2VecConfig",
    "ItemVectors",
    "LeafStats",
    "MultiFacetIndexModel",
    "Path",
    "RefreshPlan",
    "ResidualVQ",
    "TrainConfig",
    "TrainReport",
    "apply_refresh",
    "as_paths",
    "bounded_moves",
    "churn",
    "plan_refresh",
    "train",
    "train_item2vec",
    "utilisation",
]
