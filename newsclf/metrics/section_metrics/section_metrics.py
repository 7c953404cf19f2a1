"""Section metrics: accuracy, macro P/R/F1 and per-label P/R/F1/support for single-label classification.

A local `evaluate` metric script, so that ``evaluate.load("<this folder>")`` works offline (the hub-hosted
metric scripts cannot be fetched on our machines). The arithmetic is scikit-learn's.

Keep one import per line: evaluate's dependency scanner reads ``import a, b`` as a package named ``a,``.
"""

import warnings

import datasets
import evaluate
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

_DESCRIPTION = """
Accuracy, macro-averaged precision/recall/F1 and per-label precision/recall/F1/support for single-label
classification. Inputs are integer label ids (positions in the label list). Macro averages run over the
FULL label list: a label that occurs in neither the references nor the predictions scores 0 and a warning
names it, so a model cannot improve its macro-F1 by never meeting a class (scikit-learn's ``labels=`` with
``zero_division=0``).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): true label ids.
    label_names (`list` of `str`, optional): name of each id, in id order; defines the full label list and
        the per-label keys. Defaults to the names given to `evaluate.load(..., label_names=[...])`, else to
        "0", "1", ... up to the largest id seen.
Returns:
    A flat dict: `accuracy`, `macro_f1`, `macro_precision`, `macro_recall`, and for every label name
    `precision/<name>`, `recall/<name>`, `f1/<name>`, `support/<name>` (support = true count, an int).
Examples:
    >>> metric = evaluate.load("newsclf/metrics/section_metrics", label_names=["a", "b"])
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]
    0.6666666666666666
"""

_CITATION = """
@article{scikit-learn, title={Scikit-learn: Machine Learning in {P}ython}, author={Pedregosa, F. and others},
journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SectionMetrics(evaluate.Metric):
    """Accuracy, macro and per-label precision/recall/F1 over a fixed label list."""

    def __init__(self, *args, label_names=None, **kwargs):
        # evaluate.load passes unknown keyword arguments through to the module's constructor, which is
        # the one offline-safe way to give a loaded module its label list once.
        self.label_names = list(label_names) if label_names is not None else None
        super().__init__(*args, **kwargs)

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, label_names=None):
        names = list(label_names) if label_names is not None else self.label_names
        if names is None:
            largest = max([*predictions, *references], default=-1)
            names = [str(i) for i in range(largest + 1)]
        if len(set(names)) != len(names):
            raise ValueError(f"label_names must be unique; found duplicates in {names}")
        if len(references) == 0:
            raise ValueError("no examples to score: expected at least one prediction/reference pair, found 0")
        bad = sorted({int(v) for v in [*predictions, *references] if not 0 <= v < len(names)})
        if bad:
            raise ValueError(
                f"label ids must lie in 0..{len(names) - 1} (the {len(names)} label names {names}); "
                f"found {bad}. Pass the full label list as label_names."
            )
        ids = list(range(len(names)))
        unseen = sorted(set(ids) - set(predictions) - set(references))
        if unseen:
            warnings.warn(
                f"labels {[names[i] for i in unseen]} occur in neither references nor predictions; they "
                f"score F1 0 and still count in the macro averages over all {len(names)} labels",
                UserWarning,
                stacklevel=2,
            )
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=ids, zero_division=0
        )
        result = {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1.mean()),
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),
        }
        for i, name in enumerate(names):
            result[f"precision/{name}"] = float(precision[i])
            result[f"recall/{name}"] = float(recall[i])
            result[f"f1/{name}"] = float(f1[i])
            result[f"support/{name}"] = int(support[i])
        return result
