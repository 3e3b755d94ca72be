"""``gsal benchmark``: the TextureMNIST context-bias benchmark, one module per command, each
backed by the module of the same step in :mod:`gsal_tf.benchmark`:

``generate`` (data), ``train`` (training), ``evaluate`` (evaluation), ``protocol`` (protocol).
"""

from __future__ import annotations

import typer

from gsal_cli.benchmark import evaluate, generate, protocol, train

app = typer.Typer(
    help="TextureMNIST: MNIST digits on textures with a controllable context bias (the paper's benchmark).",
    no_args_is_help=True,
)
app.command("generate")(generate.generate)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("protocol")(protocol.protocol)
