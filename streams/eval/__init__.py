"""The replay evaluation (issue 6): does the stream-kept memory rank better, at what cost?

``run_eval(dataset, json_path, results_dir, limit, variants, split=...)`` replays a
dataset's training split through the real broker and worker once per tiered
variant, reads each memory through the ranker API, and ranks every catalogue
item for each evaluated user with one reference scorer; popularity, the raw
events (``flat``, ``recent``), EASE and three SASRec rankers (200 events, 50, and
50 plus the memory as tokens) are measured on the same users.

Modules: ``split`` (leave-last-out, the default, or a global time split),
``ranking`` (HR, NDCG), ``scorer`` (item vectors and the reference memory score),
``collab`` (item2vec and the codebook candidate pool), ``tuning`` (the score's
weights, on validation interactions), ``ablation`` (the score with parts off),
``memory_read`` (the ranker API read, as of each target), ``ease`` (the item-item
EASE reference ranker), ``retention`` (the guard on what the memory lost),
``pipeline`` and ``watch`` (a worker run and when it has settled), ``sasrec`` (the
model), ``sasrec_train`` (windows, early stopping), ``sasrec_cache`` (by data
hash), ``sasrec_variants`` (the three SASRec rankers and what they read),
``variants`` (scores and ranks per variant), ``cold`` (cold items through the
item codebook), ``report``, ``plots`` (the output, matplotlib), ``runner``
(``run_eval``).
"""

from streams.eval.runner import TIERED, VARIANTS, run_eval

__all__ = ["TIERED", "VARIANTS", "run_eval"]
