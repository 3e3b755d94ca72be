"""The paper's bias protocol: generate → train → evaluate over bias digits, textures and strengths.

A protocol config (``configs/protocol/*.toml``) names the backbones, bias digits, bias textures
and strengths; each combination is one *run*: its TextureMNIST data is generated, a network is
trained on it, and :mod:`gsal_tf.benchmark.evaluation` measures the IoU drop against the unbiased network
of the same backbone (trained once per backbone) plus CBD and CBL for every explanation method.
Each finished run writes ``results/<run>.json``, with the paired reliance test of its network
(:mod:`gsal_tf.benchmark.uptake`: did it take the bias?); a repeated command skips finished runs
(measuring uptake of runs finished before it was recorded), so an interrupted protocol resumes
where it stopped: a training after its last finished epoch (:mod:`gsal_tf.benchmark.training`),
tuning and evaluation after their last finished candidate / method (journals in
``models/<run>/``, :mod:`gsal_tf.benchmark.journal`). A finished run that was not tuned on
today's candidate space for every configured method (:data:`gsal_tf.benchmark.tuning_space.CANDIDATES`;
tuned on another space, untuned, or lacking a method; :func:`needs_retune`) is tuned and evaluated
again on its trained network — only new candidates and changed choices are computed; without its
network it is kept and reported as stale.
:func:`summarise` averages over runs per backbone,
strength and method and reports the spread (standard deviation over runs).

The reduced protocol (``configs/protocol/reduced.toml``: 3 digits × 2 textures × weak/strong,
MobileNetV2) is sized for a CPU; the paper's full protocol (10 digits × 5 textures × 5 datasets)
is the same code with longer lists.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Callable

import numpy as np

from gsal_tf.benchmark import evaluation, tuning, tuning_space, uptake
from gsal_tf.benchmark.config import load_config
from gsal_tf.benchmark.storage import load_samples
from gsal_tf.benchmark.texture_mnist import generate_once
from gsal_tf.benchmark.training import TrainConfig, train
from gsal_tf.config import read_toml
from gsal_tf.errors import GsalInputError
from gsal_tf.methods import method_name

__all__ = ["Protocol", "run_protocol", "needs_retune", "read_report", "read_results", "summarise"]


@dataclasses.dataclass
class Protocol:
    """A protocol config (``configs/protocol/*.toml``): which biased networks to train and evaluate.

    ``[protocol]`` table
        backbones : list of str — ``"mobilenetv2"`` and/or ``"xception"``; each needs a training
            config in ``[train_configs]``.
        bias_digits : list of int — the digits tied to a bias texture, one run each.
        textures : list of str — bias textures (names in the texture pool), one run each.
        strengths : list of str — ``"weak"`` and/or ``"strong"``.
        data_config : str — benchmark config (tiles, sizes, image law) of the biased runs; their
            ``[bias]`` fields are set per run.
        unbiased_config : str — benchmark config of the unbiased reference data (the IoU baseline
            and the evaluation data of the IoU comparison).
        n_train, n_test : int, optional — override both configs' split sizes.
        epochs : int, optional — overrides the training configs' epochs.
    ``[train_configs]`` table (``train_configs``)
        backbone -> training config path (``configs/train/*.toml``).
    ``[evaluate]`` table (``evaluate``)
        :class:`gsal_tf.benchmark.evaluation.EvaluationSettings`: ``methods``, ``per_digit``,
        ``biased``, ``batch_size``, ``tune`` / ``tune_requests``, and any
        :class:`gsal_tf.GridSaliency` option (``grid_size``, ``iterations``, ``lam``, ...). With
        ``tune = true`` every run first chooses each method's setting on held-out samples of its
        own data config (test_seed 4242; :mod:`gsal_tf.benchmark.tuning`) and its report records
        the candidates' table (``tuning``) and each method's setting and source (``settings``).

    Runs are every (backbone, strength, digit, texture) combination (:meth:`runs`).
    """

    backbones: list
    bias_digits: list
    textures: list
    strengths: list
    data_config: str
    unbiased_config: str
    train_configs: dict
    n_train: int | None = None
    n_test: int | None = None
    epochs: int | None = None
    evaluate: evaluation.EvaluationSettings = dataclasses.field(default_factory=evaluation.EvaluationSettings)

    @classmethod
    def from_toml(cls, path) -> "Protocol":
        raw = read_toml(path)
        table = dict(raw.get("protocol", {}))
        table["evaluate"] = dict(raw.get("evaluate", {}))
        table["train_configs"] = dict(raw.get("train_configs", {}))
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(table) - fields
        if unknown:
            raise GsalInputError(f"unknown key(s) {', '.join(sorted(unknown))} in [protocol] of {path}")
        table["evaluate"] = evaluation.EvaluationSettings.from_table(table["evaluate"], f"[evaluate] of {path}")
        try:
            protocol = cls(**table)
        except TypeError as exc:
            raise GsalInputError(f"{path}: {exc}") from None
        for backbone in protocol.backbones:
            if backbone not in protocol.train_configs:
                raise GsalInputError(f"{path}: no [train_configs] entry for backbone {backbone!r}")
        if not set(protocol.strengths) <= {"weak", "strong"}:
            raise GsalInputError(f"{path}: strengths must be 'weak' and/or 'strong', got {protocol.strengths}")
        return protocol

    def runs(self) -> list[dict]:
        """Every (backbone, digit, texture, strength) combination, with a stable run name."""
        return [
            {"backbone": b, "digit": int(d), "texture": t, "strength": s, "name": f"{b}-{s}-digit{d}-{t}"}
            for b, s, d, t in itertools.product(self.backbones, self.strengths, self.bias_digits, self.textures)
        ]


def run_protocol(protocol: Protocol, mnist, out_dir, on_event: Callable[[str, dict], None] | None = None) -> dict:
    """Run every unfinished run of ``protocol`` under ``out_dir``; return :func:`summarise`."""
    out_dir = Path(out_dir)
    (out_dir / "results").mkdir(parents=True, exist_ok=True)
    event = on_event or (lambda kind, info: None)
    sizes = {k: v for k, v in (("n_train", protocol.n_train), ("n_test", protocol.n_test)) if v}

    def data_for(config_path, **bias) -> Path:
        cfg = load_config(config_path, **sizes, **({"bias": bias} if bias else {}))
        key = "unbiased" if cfg.bias.strength == "none" else f"{cfg.bias.strength}-digit{cfg.bias.digit}-{cfg.bias.texture}"
        return generate_once(cfg, out_dir / "data" / key, mnist=mnist, on_generate=lambda folder: event("generate", {"data": key}))

    def trained(backbone, data_dir, name, eval_dir):
        run_dir = out_dir / "models" / name
        if not (run_dir / "metrics.json").is_file():
            cfg = TrainConfig.from_toml(protocol.train_configs[backbone], epochs=protocol.epochs)
            event("train", {"run": name})
            train(data_dir, run_dir, cfg, eval_dir=eval_dir)
        import keras

        return keras.saving.load_model(run_dir / "model.keras")

    unbiased_dir = data_for(protocol.unbiased_config)
    unbiased = load_samples(unbiased_dir, "test")
    references = {b: trained(b, unbiased_dir, f"{b}-unbiased", unbiased_dir) for b in protocol.backbones}
    def reliance(model, run) -> dict:
        cfg = load_config(protocol.data_config, **sizes)
        return uptake.measure(model, cfg, run["digit"], run["texture"], run["strength"], mnist)

    settings = protocol.evaluate
    for run in protocol.runs():
        result_file = out_dir / "results" / f"{run['name']}.json"
        run_dir = out_dir / "models" / run["name"]
        has_model = (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()
        finished = json.loads(result_file.read_text()) if result_file.is_file() else None
        if finished is not None and needs_retune(finished, settings):
            if not has_model:
                # Its network is not here (another machine trained it): keep the result, say so.
                event("stale (tuned on another space; no trained network here to re-tune)", run)
                continue
            # Tuned on another candidate space: tune and evaluate again on the same network (the
            # journals keep every candidate and method already computed with the same options).
            event("retune", run)
        elif finished is not None:
            if "reliance" not in finished and has_model:
                # A run finished before runs measured uptake: measure it now, keep the rest.
                import keras

                event("reliance", run)
                finished["reliance"] = reliance(keras.saving.load_model(run_dir / "model.keras"), run)
                _write_json(result_file, finished)
            event("skip", run)
            continue
        data_dir = data_for(protocol.data_config, strength=run["strength"], digit=run["digit"], texture=run["texture"])
        model = trained(run["backbone"], data_dir, run["name"], unbiased_dir)
        tuned = None
        if settings.tune:
            event("tune", run)
            cfg = load_config(protocol.data_config, **sizes, bias={"strength": run["strength"], "digit": run["digit"], "texture": run["texture"]})
            tuned = tuning.tune(model, tuning.held_out_samples(cfg, mnist), run["digit"], settings,
                                journal=out_dir / "models" / run["name"] / "tuning-journal.json")
        event("evaluate", run)
        explainers = settings.explainers(model, tuned.chosen if tuned else None)
        samples = load_samples(data_dir, "test")
        report = {
            **run,
            "iou": evaluation.iou_comparison(model, references[run["backbone"]], unbiased, run["digit"]),
            "explanations": evaluation.bias_statistics(explainers, samples, run["digit"], per_digit=settings.per_digit, biased=settings.biased,
                                                        journal=out_dir / "models" / run["name"] / "evaluation-journal.json"),
            "settings": evaluation.settings_record(settings, explainers, tuned),
        }
        if tuned is not None:
            report["tuning"] = tuned.record()
        report["explanations"].pop("requests")
        # A re-tuned run's network is the one its reliance was measured on (has_model: not retrained).
        report["reliance"] = finished["reliance"] if finished and has_model and "reliance" in finished else reliance(model, run)
        _write_json(result_file, report)
        event("done", run)
    return summarise(out_dir / "results")


def needs_retune(result: dict, settings) -> bool:
    """Whether a finished run's report must be tuned and evaluated again under ``settings`` (the
    protocol's ``[evaluate]``): tuning is on, and the report was not tuned on today's candidate
    space for every configured method (tuned on another space, untuned, or lacking a method)."""
    return bool(settings.tune) and not tuning_space.tuned_on(result.get("tuning", {}), settings.methods)


def _write_json(path: Path, data: dict) -> None:
    """Write atomically: a reader never sees half a report."""
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def read_report(path) -> dict:
    """A run's or an evaluation's JSON report, with method names in today's vocabulary
    (:data:`gsal_tf.methods.METHODS`; reports written before version 0.2 used other names)."""
    report = json.loads(Path(path).read_text())
    methods = report["explanations"]["methods"]
    report["explanations"]["methods"] = {method_name(m): row for m, row in methods.items()}
    return report


def read_results(results_dir) -> list[dict]:
    """Every run report (``results/<run>.json``) of a protocol folder, in name order."""
    return [read_report(f) for f in sorted(Path(results_dir).glob("*.json"))]


def summarise(results_dir) -> dict:
    """Mean and standard deviation over runs, per backbone, strength and method.

    Returns ``{"runs": n, "groups": {"<backbone>/<strength>": {"iou_drop_bias_digit": [mean, std],
    "iou_drop_other_digits": [...], "methods": {method: {"cbl": [mean, std], "cbd_ratio": [...],
    "cbd_bias_digit": [...], "cbd_other_digits": [...]}}, "runs": n}}, "cbd_matrix": {...}}``;
    ``cbd_matrix[backbone/strength/method]`` is bias digit × evaluated digit (mean over textures);
    ``uptake`` is :func:`gsal_tf.benchmark.uptake.uptake_summary` (how many networks took the bias,
    CBL over all of them and over those that did).
    """
    reports = read_results(results_dir)
    groups: dict = {}
    matrices: dict = {}
    for r in reports:
        key = f"{r['backbone']}/{r['strength']}"
        g = groups.setdefault(key, {"runs": 0, "_iou": [], "_other": [], "_methods": {}})
        g["runs"] += 1
        g["_iou"].append(r["iou"].get("bias_digit_drop"))
        g["_other"].append(r["iou"].get("other_digits_mean_drop"))
        for method, row in r["explanations"]["methods"].items():
            m = g["_methods"].setdefault(method, {"cbl": [], "cbd_ratio": [], "cbd_bias_digit": [], "cbd_other_digits": [], "inflation_cbl": []})
            m["cbl"].append(row.get("cbl_mean"))
            m["cbd_ratio"].append(row.get("cbd_ratio"))
            m["cbd_bias_digit"].append(row.get("cbd_bias_digit"))
            m["cbd_other_digits"].append(row.get("cbd_other_digits"))
            m["inflation_cbl"].append(row.get("inflation_cbl_mean"))
            rows = matrices.setdefault(f"{key}/{method}", {})
            rows.setdefault(r["digit"], []).append([np.nan if v is None else v for v in row["cbd_by_digit"]])
    summary = {"runs": len(reports), "groups": {}, "cbd_matrix": {}, "uptake": uptake.uptake_summary(reports)}
    for key, g in groups.items():
        summary["groups"][key] = {
            "runs": g["runs"],
            "iou_drop_bias_digit": _mean_std(g["_iou"]),
            "iou_drop_other_digits": _mean_std(g["_other"]),
            "methods": {m: {k: _mean_std(v) for k, v in vals.items()} for m, vals in g["_methods"].items()},
        }
    for key, rows in matrices.items():
        digits = sorted(rows)
        summary["cbd_matrix"][key] = {
            "bias_digits": digits,
            "values": [np.nanmean(np.array(rows[d], np.float64), axis=0).tolist() for d in digits],
        }
    return summary


def _mean_std(values) -> list:
    v = np.array([np.nan if x is None else x for x in values], np.float64)
    v = v[np.isfinite(v)]
    return [float(v.mean()), float(v.std())] if v.size else [None, None]
