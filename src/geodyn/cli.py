"""The `geodyn` command (Typer + Rich)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import geodyn

app = typer.Typer(
    name="geodyn",
    help="Geometric learning dynamics: covariant gradient descent, regimes, and the paper's claims as experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain Click help: flags read as flags (Rich help prints "--flag <bool>") and long names are never cut
    rich_markup_mode=None,
)
console = Console(stderr=True)

VERDICT_STYLE = {
    "reproduced": "green",
    "inconclusive": "blue",
    "partly": "yellow",
    "not reproduced": "red",
    "error": "bold red",
}


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _check_out_dir(path: Path, option: str = "--out") -> Path:
    """``path`` created and proven writable before any work starts; else a one-line error (exit 2)."""
    from geodyn.paths import FolderError, prepare_folder

    try:
        return prepare_folder(path)
    except FolderError as exc:
        _fail(f"{option} {exc}")


def _check_out_file(path: Path) -> None:
    """The folder of an output file must be writable (one-line error otherwise)."""
    _check_out_dir(path.parent if str(path.parent) else Path("."), "output folder")


def _engine(backend: str, address: str | None, workers: int | None):
    """The backend named on the command line; None for reproduce's default (in this process)."""
    from geodyn.backends import BACKENDS, make_backend

    if backend not in BACKENDS:
        _fail(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if address is not None and backend != "ray":
        _fail("--address needs --backend ray")
    if backend == "local" and workers is None:
        return None
    try:
        return make_backend(backend, workers=workers or os.cpu_count() or 1, address=address)
    except (RuntimeError, ValueError, ConnectionError) as exc:
        _fail(f"cannot start the {backend} backend: {exc}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"geodyn {geodyn.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """geodyn command line."""


@app.command()
def reproduce(
    quick: Annotated[bool, typer.Option("--quick/--full", help="Quick sizes (minutes) or full sizes.")] = True,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", metavar="NAME", help="Run only this experiment (repeatable; see --list).  [default: all]"
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder.  [default: runs/quick or runs/full]")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun experiments already finished in --out.  [default: off]")
    ] = False,
    seed: Annotated[
        int, typer.Option("--seed", help="Base random seed (each experiment derives its own from it).")
    ] = 0,
    bench: Annotated[
        Path | None, typer.Option("--bench", help="A bench results.json to summarise in the report.  [default: none]")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="torch threads per experiment (0: torch's default).")] = 1,
    backend: Annotated[
        str, typer.Option("--backend", help="'local' (in this process) or 'ray' (each experiment a Ray task).")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster address (with --backend ray).  [default: start a local one]"),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the registered claims (whole names) and exit.  [default: off]")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.  [default: off]")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print results.json (with --list: the list) as JSON to stdout.  [default: off]"),
    ] = False,
) -> None:
    """Run every claim of the paper as an experiment and write one HTML report."""
    from geodyn.experiments import REGISTRY
    from geodyn.experiments.runner import run_experiments

    if list_:
        rows = [
            {"name": exp.name, "equations": list(exp.claim.equations), "claim": exp.claim.statement} for exp in REGISTRY
        ]
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        # names are never cut (they are pasted into --only); the claim column folds instead
        table = Table(title="registered claims")
        table.add_column("experiment", no_wrap=True, min_width=max(len(r["name"]) for r in rows))
        table.add_column("equations", overflow="fold", max_width=16)
        table.add_column("claim", overflow="fold", ratio=1)
        for r in rows:
            table.add_row(r["name"], ", ".join(r["equations"]), r["claim"])
        Console().print(table)
        return
    for name in only or []:
        if name not in REGISTRY.names():
            _fail(f"unknown experiment {name!r} (known: {', '.join(REGISTRY.names())})")
    bench_data = None
    if bench is not None:
        try:
            bench_data = json.loads(bench.read_text())
        except (OSError, ValueError) as exc:
            _fail(f"cannot read --bench {str(bench)!r}: {exc}")
    if threads < 0:
        _fail(f"--threads must be >= 0, got {threads}")
    size = "quick" if quick else "full"
    out = _check_out_dir(out or Path("runs") / size)  # before any work: a run that cannot be saved never starts
    engine = _engine(backend, address, workers=None)

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
    selected = REGISTRY.select(only)
    with progress, engine or contextlib.nullcontext():
        overall = progress.add_task(f"reproduce ({size})", total=len(selected))
        current: dict[str, int] = {}

        def on_start(exp):
            current[exp.name] = progress.add_task(f"  {exp.name}", total=1.0)

        def on_progress(exp, fraction):
            progress.update(current[exp.name], completed=min(max(fraction, 0.0), 1.0))

        def on_finish(exp, result, cached):
            if exp.name in current:
                progress.update(current[exp.name], completed=1.0)
            progress.advance(overall)
            style = VERDICT_STYLE.get(result.verdict, "white")
            note = " (kept from an earlier run)" if cached else f" ({result.seconds:.1f} s)"
            if result.status == "error":
                first = result.error.splitlines()[0] if result.error else "error"
                progress.console.print(f"[red]✗ {exp.name}: {first}[/]", highlight=False)
            elif not quiet:
                progress.console.print(f"[{style}]● {exp.name}: {result.verdict}[/]{note}", highlight=False)

        run = run_experiments(
            REGISTRY,
            out,
            size=size,
            only=only,
            force=force,
            seed=seed,
            on_start=on_start,
            on_progress=on_progress,
            on_finish=on_finish,
            bench=bench_data,
            threads=threads or None,
            backend=engine,
        )

    if as_json:
        sys.stdout.write((out / "results.json").read_text() + "\n")
    report = (out / "report.html").resolve()
    if run.interrupted:
        console.print(
            f"[yellow]interrupted:[/] kept {len(run.experiments)} finished experiment(s); missing: "
            f"{', '.join(run.missing)}. Report: {report}",
            highlight=False,
        )
        raise typer.Exit(130)
    if not as_json:
        typer.echo(f"report: {report}")
    if any(r.status == "error" for r in run.experiments):
        raise typer.Exit(1)


def _names(values: list[str] | None) -> list[str]:
    """Repeatable options that also accept comma-separated lists: --tasks a,b --tasks c."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


@app.command()
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick/--full",
            help="Quick sizes (minutes; by default the reference, the strongest peers and geodyn's three-regime and "
            "Shampoo rows) or the full protocol (every installed optimizer).",
        ),
    ] = True,
    tasks: Annotated[
        list[str] | None,
        typer.Option("--tasks", metavar="NAMES", help="Tasks to run (repeatable or a,b,c).  [default: all]"),
    ] = None,
    optimizers: Annotated[
        list[str] | None,
        typer.Option(
            "--optimizers",
            metavar="NAMES",
            help="Optimizers to compare (repeatable or a,b,c; 'all': every installed one).  "
            "[default: --quick: adamw, adam, muon, soap and the geodyn three-regime and Shampoo rows; --full: all]",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Bench folder.  [default: runs/bench-quick or runs/bench-full]")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Cells run in parallel (local backend).  [default: one per core]")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="'local' or 'ray'.")] = "local",
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster address (with --backend ray).  [default: start a local one]"),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List tasks and optimizers and exit.  [default: off]")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.  [default: off]")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print results.json (with --list: the list) as JSON to stdout.  [default: off]"),
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="'cpu' or 'cuda' (the byte LM runs at full size on a GPU).")
    ] = "cpu",
) -> None:
    """Optimizer benchmark: equal-budget tuning, steps and time to target, performance profiles (resumable)."""
    from geodyn.bench import OPTIMIZERS, TASKS, available, run_bench
    from geodyn.bench.optimizers import QUICK_OPTIMIZERS, quick_selection

    if list_:
        if as_json:
            listing = {
                "tasks": [
                    {
                        "name": t.name,
                        "metric": t.metric,
                        "goal": t.goal,
                        "target": t.target,
                        "description": t.description,
                    }
                    for t in TASKS.values()
                ],
                "optimizers": [
                    {"name": o.name, "family": o.family, "available": o.available(), "description": o.description}
                    for o in OPTIMIZERS.values()
                ],
            }
            sys.stdout.write(json.dumps(listing, indent=2) + "\n")
            return
        table = Table(title="tasks")
        table.add_column("task", no_wrap=True, min_width=max(len(t) for t in TASKS))
        table.add_column("target", no_wrap=True)
        table.add_column("description", overflow="fold", ratio=1)
        for t in TASKS.values():
            table.add_row(t.name, f"{t.metric} {'≤' if t.goal == 'min' else '≥'} {t.target:g}", t.description)
        Console().print(table)
        table = Table(title="optimizers")
        table.add_column("optimizer", no_wrap=True, min_width=max(len(o) for o in OPTIMIZERS))
        table.add_column("family", overflow="fold")
        table.add_column("available", no_wrap=True)
        table.add_column("description", overflow="fold", ratio=1)
        for o in OPTIMIZERS.values():
            table.add_row(o.name, o.family, "yes" if o.available() else "no", o.description)
        Console().print(table)
        return
    task_list, opt_list = list(dict.fromkeys(_names(tasks))), list(dict.fromkeys(_names(optimizers)))
    every_optimizer = "all" in opt_list
    if every_optimizer and len(opt_list) > 1:
        _fail("--optimizers all cannot be combined with optimizer names")
    if every_optimizer:
        opt_list = []
    quick_default = quick and not opt_list and not every_optimizer
    if not opt_list:
        wanted = QUICK_OPTIMIZERS if quick_default else OPTIMIZERS
        absent = [name for name in wanted if not OPTIMIZERS[name].available()]
        if absent:
            console.print(
                f"[yellow]note:[/] not installed, left out: {', '.join(absent)} (pip install 'geodyn[bench]')",
                highlight=False,
            )
    for name in task_list:
        if name not in TASKS:
            _fail(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    for name in opt_list:
        if name not in OPTIMIZERS:
            _fail(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZERS)}; or all)")
        if not OPTIMIZERS[name].available():
            _fail(f"optimizer {name!r} needs {OPTIMIZERS[name].needs}, which is not installed here")
    if workers is not None and workers < 1:
        _fail(f"--workers must be >= 1, got {workers}")
    if device not in ("cpu", "cuda"):
        _fail(f"--device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            _fail("--device cuda: torch sees no CUDA device here")
    size = "quick" if quick else "full"
    out = _check_out_dir(out or Path("runs") / (f"bench-{size}" if device == "cpu" else f"bench-{size}-{device}"))
    engine = _engine(backend, address, workers=workers or os.cpu_count() or 1)
    chosen = opt_list or (quick_selection() if quick_default else available())
    if quick_default and not quiet:
        console.print(
            f"quick run of {', '.join(chosen)}; --optimizers all compares every installed optimizer",
            highlight=False,
        )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
        disable=quiet,
    )
    with progress, engine:
        bar = progress.add_task(f"bench ({size})", total=None, last="")

        def on_plan(total: int, done: int) -> None:
            if done < 0:  # a grid extension: only the total grows
                progress.update(bar, total=total)
            else:
                progress.update(bar, total=total, completed=done)

        def on_cell(result, cached: bool) -> None:
            c = result.cell
            progress.update(bar, advance=1, last=f"{c.task} · {c.optimizer} · lr {c.lr:g} · seed {c.seed}")
            if result.status == "error" and not cached:
                first = result.error.splitlines()[0] if result.error else "error"
                progress.console.print(f"[red]✗ {c.key}: {first}[/]", highlight=False)

        try:
            results = run_bench(
                out,
                size=size,
                tasks=task_list or None,
                optimizers=chosen,
                backend=engine,
                on_plan=on_plan,
                on_cell=on_cell,
                on_lost=lambda cell, exc: progress.console.print(
                    f"[red]✗ {cell.key} was lost ({type(exc).__name__}); a rerun will retry it[/]", highlight=False
                ),
                device=device,
            )
        except KeyboardInterrupt:
            console.print(
                f"[yellow]interrupted:[/] finished cells are kept in {str(out)!r}; rerun the same command to resume. "
                f"Report: {(out / 'report.html').resolve()}",
                highlight=False,
            )
            raise typer.Exit(130) from None

    if as_json:
        sys.stdout.write((out / "results.json").read_text() + "\n")
        return
    if results.reference:
        out_console = Console()
        for table in _ratio_tables(results, out_console.width):
            out_console.print(table)
    typer.echo(f"report: {(out / 'report.html').resolve()}")


def _ratio_tables(results, width: int) -> list[Table]:
    """The steps-ratio table, its task columns split over as many tables as it takes for each to fit ``width``:
    a table squeezed into a narrow terminal folds every header and number into unreadable slivers."""
    rows = {opt: {task: results.ratio_text(task, opt) for task in results.tasks} for opt in results.optimizers}
    first = max(len("optimizer"), *(len(opt) for opt in results.optimizers)) + 4  # borders and padding
    chunks: list[list[str]] = [[]]
    used = first
    for task in results.tasks:
        need = max(len(task), *(len(rows[opt][task]) for opt in results.optimizers)) + 3
        if chunks[-1] and used + need > width:
            chunks.append([])
            used = first
        chunks[-1].append(task)
        used += need
    tables = []
    for i, tasks in enumerate(chunks):
        part = f" ({i + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        table = Table(title=f"steps to target / {results.reference} (median of seeds){part}")
        table.add_column("optimizer", no_wrap=True)
        for task in tasks:
            table.add_column(task, no_wrap=True, justify="right")
        for opt in results.optimizers:
            table.add_row(opt, *(rows[opt][task] for task in tasks))
        tables.append(table)
    return tables


@app.command()
def regimes(
    eps: Annotated[float, typer.Option("--eps", help="ε of the three-regime metric (6.5).")] = 1e-4,
    zeta: Annotated[float, typer.Option("--zeta", help="ζ of the three-regime metric (6.5).")] = 1e2,
    steps: Annotated[int, typer.Option("--steps", help="Adam steps before measuring κ.")] = 300,
    samples: Annotated[int, typer.Option("--samples", help="Examples for the per-sample gradients.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Minibatch size b: the optimizer sees κ/b.")] = 64,
    by: Annotated[
        str, typer.Option("--by", help="'parameter' (κ_ii) or 'eigen' (eigenvalues per layer).")
    ] = "parameter",
    out: Annotated[Path, typer.Option("--out", help="Folder for regimes.png and regimes.json.")] = Path("runs/regimes"),
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed of the data split, the model and the minibatches.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print regimes.json to stdout.  [default: off]")] = False,
) -> None:
    """Train the bundled digits MLP, measure its noise covariance and print its regime map (6.6)–(6.9)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torch import nn

    from geodyn.analysis import regime_map
    from geodyn.metric import ThreeRegime
    from geodyn.noise import gradient_noise
    from geodyn.optim import presets
    from geodyn.tasks import digits, digits_mlp

    if by not in ("parameter", "eigen"):
        _fail(f"--by must be 'parameter' or 'eigen', got {by!r}")
    for name, value in (("--steps", steps), ("--samples", samples), ("--batch-size", batch_size)):
        if value < (0 if name == "--steps" else 1):
            _fail(f"{name} must be positive, got {value}")
    try:
        law = ThreeRegime(eps, zeta)
    except ValueError as exc:
        _fail(str(exc))
    _check_out_dir(out)
    try:
        x, y, _, _ = digits(seed)
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    model = digits_mlp(seed=seed)
    opt = presets.adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    noise = gradient_noise(model, nn.functional.cross_entropy, x[:samples], y[:samples])
    rmap = regime_map(noise, law, by=by, batch_size=batch_size)
    fig = rmap.figure()
    fig.savefig(out / "regimes.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    fractions = rmap.fractions()
    payload = {
        "metric": repr(law),
        "by": by,
        "batch_size": batch_size,
        "spectrum": "kappa/b" if by == "parameter" else "eigenvalues of kappa/b",
        "band": rmap.band_report(),
        "fractions": fractions,
    }
    (out / "regimes.json").write_text(json.dumps(payload, indent=2))
    if as_json:
        sys.stdout.write(json.dumps(payload) + "\n")
        return
    Console().print(rmap.table())
    report = rmap.band_report()
    band = "empty" if report["interval"] is None else "[{:.3g}, {:.3g}]".format(*report["interval"])
    typer.echo(f"band of (6.9) at share {report['share']:g}: {band}; {report['note']}")
    typer.echo(f"figure: {(out / 'regimes.png').resolve()}")


@app.command()
def simulate(
    config: Annotated[
        Path | None, typer.Argument(help="A TOML config (see examples/; --example writes one to start from).")
    ] = None,
    example: Annotated[
        str | None,
        typer.Option(
            "--example",
            metavar="NAME",
            help="Write the bundled example NAME to CONFIG (or NAME.toml) and exit.  [default: none]",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder.  [default: runs/simulate/<config name>]")
    ] = None,
    animate: Annotated[bool, typer.Option("--animate/--no-animate", help="Write density.gif.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.  [default: off]")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json to stdout.  [default: off]")] = False,
) -> None:
    """Run a simulator (Langevin, Fokker–Planck, Schrödinger, evolution) from a TOML config; fields as NetCDF."""
    from geodyn.simulate import EXAMPLES, ConfigError, example_text, load_config

    if example is not None:
        if example not in EXAMPLES:
            _fail(f"unknown example {example!r} (known: {', '.join(EXAMPLES)})")
        target = config or Path(f"{example}.toml")
        if target.exists():
            _fail(f"{str(target)!r} exists; give another file name")
        _check_out_file(target)
        target.write_text(example_text(example))
        typer.echo(f"wrote {target}; run it with: geodyn simulate {target}")
        return
    if config is None:
        _fail("give a CONFIG.toml or --example NAME (known: " + ", ".join(EXAMPLES) + ")")
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(f"{config}: {exc}")
    out = out or Path("runs") / "simulate" / config.stem
    _check_out_dir(out, "--out")

    from geodyn.simulate.output import write_run
    from geodyn.simulate.runners import simulate as run_simulation

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )
    with progress:
        bar = progress.add_task(f"{cfg.simulator} ({config.name})", total=cfg.frames - 1)
        try:
            outcome = run_simulation(cfg, on_frame=lambda k, total: progress.update(bar, completed=k))
        except (FloatingPointError, ValueError) as exc:
            _fail(f"{config}: {str(exc).splitlines()[0]}", code=1)
    payload = write_run(cfg, outcome, out, animate=animate)
    if as_json:
        sys.stdout.write(json.dumps(payload) + "\n")
    if outcome.interrupted:
        console.print(
            f"[yellow]interrupted:[/] kept {outcome.frames} of {cfg.frames} frames in {str(out)!r}", highlight=False
        )
        raise typer.Exit(130)
    if not as_json:
        typer.echo(f"run folder: {out.resolve()}")


if __name__ == "__main__":  # pragma: no cover
    app()
