"""DC-BENCH's k-means selection baseline (Cui et al., NeurIPS 2022 datasets track, arXiv 2207.09639: "kmeans-emb"):
per class, k-means of the class's real training images in a classifier's feature space into as many clusters as the
class has images in the distilled set; the real image nearest to each centre is kept.

DC-BENCH publishes only the selected sets, not the code that chose them; here the features are the teacher's
penultimate layer (the input of its last linear layer), the clustering is scikit-learn's KMeans (k-means++ init
seeded per class, N_INIT restarts, the lowest inertia kept), and "nearest" is Euclidean in that space. Two
centres never keep the same image: centres take their nearest image in cluster order, each among the images not
yet taken (with k-means' centres, each a mean of its own cluster, this is the globally nearest image in practice).
"""

from __future__ import annotations

import numpy as np

N_INIT = 10  # k-means restarts (scikit-learn's default before "auto"); fixed, so a scikit-learn upgrade keeps it


def class_seed(seed: int, label: int) -> int:
    """The class's k-means seed: from [seed, label], so a class's picks depend on no other class."""
    return int(np.random.default_rng([seed, label]).integers(2**31 - 1))


def kmeans_pick(features: np.ndarray, k: int, seed: int) -> dict:
    """k-means of `features` [N, D] into k clusters; the index of the image nearest to each centre.

    Returns {"picked": index per centre (cluster order), "distance": its distance to the centre,
    "cluster_size": images in its cluster, "inertia": k-means' objective}."""
    from sklearn.cluster import KMeans  # deferred: only the baseline's job clusters

    x = np.asarray(features, dtype=np.float64)
    if len(x) < k:
        raise ValueError(f"{len(x)} real training images, fewer than the {k} to keep")
    km = KMeans(n_clusters=k, init="k-means++", n_init=N_INIT, random_state=seed).fit(x)
    centres = km.cluster_centers_
    dist = np.sqrt(((centres[:, None, :] - x[None, :, :]) ** 2).sum(-1))  # [k, N]
    taken = np.zeros(len(x), dtype=bool)
    picked, d_picked = [], []
    for c in range(k):
        d = np.where(taken, np.inf, dist[c])
        i = int(np.argmin(d))  # the first index among ties
        taken[i] = True
        picked.append(i)
        d_picked.append(float(dist[c, i]))
    sizes = np.bincount(km.labels_, minlength=k)
    return {
        "picked": picked,
        "distance": d_picked,
        "cluster_size": [int(s) for s in sizes],
        "inertia": float(km.inertia_),
    }
