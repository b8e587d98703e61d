"""Metrics as ``evaluate.Metric`` objects defined here, so evaluation runs offline (``evaluate.load("accuracy")``
would fetch its script from the Hub)."""

import datasets
import evaluate


class Accuracy(evaluate.Metric):
    """Top-1 accuracy: the fraction of predictions equal to the references."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Top-1 accuracy",
            citation="",
            inputs_description="predictions: predicted class ids; references: true class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        if len(references) == 0:
            raise ValueError("accuracy of an empty set is undefined")
        correct = sum(int(p) == int(r) for p, r in zip(predictions, references))
        return {"accuracy": correct / len(references)}


def accuracy(predictions, references) -> float:
    return Accuracy().compute(predictions=list(map(int, predictions)), references=list(map(int, references)))["accuracy"]


def compute_classification_metrics(eval_prediction) -> dict:
    """``compute_metrics`` for ``transformers.Trainer`` on classification logits."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    return {"accuracy": accuracy(logits.argmax(-1).tolist(), labels.tolist())}
