"""Class names for a model's outputs: one rule shared by predict, streaming and export."""

from collections.abc import Sequence

from mrrn_keras.text import first_unprintable


def resolve_labels(labels: Sequence | None, model, info, num_classes: int) -> list[str]:
    """The class names to report, in output order.

    Args:
        labels: explicit names, or None to take them from `model.class_names`,
            then from `info.labels` (a zoo `VariantInfo`), else `class_<i>`.
        model: the model whose outputs are named.
        info: a `VariantInfo` or None.
        num_classes: the number of outputs.

    Returns:
        `num_classes` strings, each one printable line (so a `labels.txt`
        of them has one line per class).

    Raises:
        ValueError: explicit or stored names whose count is not
            `num_classes`, or a name holding a control or line-break
            character (a `.keras` file's `class_names` may; entries refuse
            them when parsed).

    Example:

    >>> resolve_labels(None, object(), None, 2)
    ['class_0', 'class_1']
    """
    if labels is None:
        labels = getattr(model, "class_names", None)
    if labels is None and info is not None:
        labels = info.labels
    if labels is None:
        return [f"class_{i}" for i in range(num_classes)]
    labels = [str(label) for label in labels]
    if len(labels) != num_classes:
        raise ValueError(
            f"`labels` must hold one name per class ({num_classes}). "
            f"Received: {len(labels)} labels"
        )
    for i, label in enumerate(labels):
        bad = first_unprintable(label)
        if bad:
            raise ValueError(
                f"`labels[{i}]` must be one line of printable text; it holds the control or "
                f"line-break character {bad}. Received: labels[{i}]={label!r}"
            )
    return labels
