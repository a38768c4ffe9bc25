"""The accuracy matrix of a continual run and what is read from it.

R[i][j] is the accuracy on experience j's evaluation set after training experience i (T experiences); b[j] that of
the model before any training. With T ≥ 2:

- average accuracy (Lopez-Paz & Ranzato 2017): ACC = (1/T) Σ_j R[T−1][j];
- backward transfer (ibid.): BWT = 1/(T−1) Σ_{j<T−1} (R[T−1][j] − R[j][j]) (negative: forgetting);
- forward transfer (ibid.): FWT = 1/(T−1) Σ_{j≥1} (R[j−1][j] − b[j]);
- forgetting (Chaudhry et al. 2018, "Riemannian Walk"): F = 1/(T−1) Σ_{j<T−1} (max_{j≤l<T−1} R[l][j] − R[T−1][j]):
  the drop from the best accuracy on j once it was learned.

A joint run (every experience at once) has one row: ACC only.
"""

import os


def continual_metrics(matrix: list[list[float]], initial: list[float] | None = None) -> dict[str, float | None]:
    """`average_accuracy`, `backward_transfer`, `forgetting` and `forward_transfer` (`None` where undefined: a
    single row, or no `initial` accuracies for the forward transfer)."""
    final = matrix[-1]
    metrics = {"average_accuracy": sum(final) / len(final)}
    steps = len(matrix)
    if steps < 2 or len(final) != steps:
        return {**metrics, "backward_transfer": None, "forgetting": None, "forward_transfer": None}
    earlier = range(steps - 1)
    metrics["backward_transfer"] = sum(final[j] - matrix[j][j] for j in earlier) / (steps - 1)
    metrics["forgetting"] = sum(max(matrix[i][j] for i in range(j, steps - 1)) - final[j] for j in earlier) / (
        steps - 1
    )
    if initial is None:
        metrics["forward_transfer"] = None
    else:
        metrics["forward_transfer"] = sum(matrix[j - 1][j] - initial[j] for j in range(1, steps)) / (steps - 1)
    return metrics


def matrix_table(matrix: list[list[float]], names: list[str], row_names: list[str] | None = None) -> str:
    """The matrix as a Markdown table: a row per training experience, a column per evaluation set (percent)."""
    row_names = row_names or [f"after {name}" for name in names]
    lines = ["| trained \\ evaluated | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row_name, row in zip(row_names, matrix):
        lines.append(f"| {row_name} | " + " | ".join(f"{100 * value:.2f}" for value in row) + " |")
    return "\n".join(lines)


def plot_matrix(matrix: list[list[float]], names: list[str], path: str, row_names: list[str] | None = None) -> str:
    """A heatmap of the matrix (accuracy in percent, written in each cell) saved as a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row_names = row_names or [f"after {name}" for name in names]
    figure, axes = plt.subplots(figsize=(1.2 * len(names) + 2.5, 0.6 * len(matrix) + 1.6))
    image = axes.imshow([[100 * v for v in row] for row in matrix], vmin=0, vmax=100, cmap="viridis")
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axes.set_yticks(range(len(row_names)), row_names)
    axes.set_xlabel("evaluated on")
    axes.set_ylabel("trained up to")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, f"{100 * value:.1f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    figure.colorbar(image, ax=axes, label="accuracy (%)")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
