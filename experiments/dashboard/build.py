"""A paper's dashboard as a W&B report (`wandb_workspaces.reports.v2`), built without network.

One section per table: a heading, what fills it (run names, W&B groups, the commands), the table itself as
the report step logged it (``table/<name>``: ours, std, n seeds, the paper's value; and its PNG,
``plot/<name>``) read from the paper's report run, then the plots behind it over the table's runs.
"""
from __future__ import annotations

import hashlib
import json

from experiments.dashboard.spec import STEP, Dashboard, Key, Plot, Section, config_key

REPORT_JOB = "report"  # experiments/report.py logs the tables to a run of this job type, group <paper>


def report_keys(table: str) -> tuple[str, str]:
    """The keys the report step logs a table under: the W&B table and the PNG."""
    return f"table/{table}", f"plot/{table}"


def _wr():
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError as e:
        raise ImportError("the dashboards need wandb-workspaces: pip install -e '.[test]' (or `make install`)") from e
    return wr


def _stable_id(*parts) -> str:
    """Panel and run-set ids from their place in the report, so that a rebuild writes the same JSON."""
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:10]


def _with_id(obj, *parts):
    object.__setattr__(obj, "_id", _stable_id(*parts))
    return obj


def _quoted(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _metric(key: Key):
    wr = _wr()
    if key.name == STEP:
        return STEP
    return {"config": wr.Config, "summary": wr.SummaryMetric, "history": wr.Metric}[key.section](key.name)


def _panel(plot: Plot, where: tuple):
    wr = _wr()
    if plot.kind == "line":
        panel = wr.LinePlot(title=plot.label, x=_metric(plot.x), y=[_metric(k) for k in plot.y], log_x=plot.log_x or None,
                            log_y=plot.log_y or None, groupby_aggfunc="mean", groupby_rangefunc="stddev")
    elif plot.kind == "scatter":
        panel = wr.ScatterPlot(title=plot.label, x=_metric(plot.x), y=_metric(plot.y[0]), log_x=plot.log_x or None,
                               log_y=plot.log_y or None)
    else:
        # a bar chart shows each run's (or group's) final value of a key: W&B names them plainly, as logged
        panel = wr.BarPlot(title=plot.label, metrics=[k.name for k in plot.y], orientation="v",
                           groupby_aggfunc="mean", groupby_rangefunc="stddev")
    return _with_id(panel, *where)


def runs_filter(section: Section) -> str:
    """The table's runs: their W&B groups and run names (the experiments' ``name``)."""
    parts = []
    if section.groups:
        parts.append(f"Group in {_quoted(section.groups)}")
    if section.names:
        parts.append(f"Config('name') in {_quoted(section.names)}")
    return " and ".join(parts)


def report_filter(paper: str) -> str:
    return f"JobType = {json.dumps(REPORT_JOB)} and Group = {json.dumps(paper)}"


def _section_blocks(paper: str, section: Section, entity: str, project: str) -> list:
    wr = _wr()
    t = section.table
    table_key, png_key = report_keys(t.name)
    source = f"Paper numbers: {t.paper_source}." if t.paper_source else "This table has no paper numbers."
    about = [
        f"Table `experiments/{paper}/{t.name}.yaml`. Runs: {', '.join(f'`{n}`' for n in section.names) or 'none defined in conf/experiment'}"
        f" (W&B groups {', '.join(f'`{g}`' for g in section.groups) or 'none'}). {source}",
        "",
        "```bash",
        *section.commands,
        "```",
    ]
    blocks = [wr.H2(t.title), wr.MarkdownBlock("\n".join(about))]
    table_grid = wr.PanelGrid(
        runsets=[_with_id(wr.Runset(entity=entity, project=project, name=f"report/{paper}", filters=report_filter(paper)),
                          paper, t.name, "report")],
        panels=[_with_id(wr.WeavePanelSummaryTable(table_name=table_key, layout=wr.Layout(w=24, h=10)),
                         paper, t.name, "table"),
                _with_id(wr.MediaBrowser(title=t.title, media_keys=[png_key], layout=wr.Layout(w=24, h=10)),
                         paper, t.name, "png")])
    blocks.append(table_grid)
    by_grouping: dict[tuple[str, ...], list[tuple[int, Plot]]] = {}
    for i, plot in enumerate(section.plots):
        by_grouping.setdefault(plot.groupby, []).append((i, plot))
    for grouping, plots in by_grouping.items():
        runset = wr.Runset(entity=entity, project=project, name=t.name, filters=runs_filter(section),
                           groupby=[f"config.{config_key(k)}" for k in grouping])
        blocks.append(wr.PanelGrid(runsets=[_with_id(runset, paper, t.name, "runs", *grouping)],
                                   panels=[_panel(p, (paper, t.name, i)) for i, p in plots]))
    return blocks


def report(dash: Dashboard, entity: str = "", project: str = "reprolab"):
    """The `wandb_workspaces` Report of ``dash``. Its run sets name ``entity``/``project`` only when both are
    given: the library then looks the project up on the server (``--push``); offline they stay empty."""
    wr = _wr()
    intro = (f"The tables of `{dash.paper}` reproduced by reprolab: ours (mean ± std over seeds, n) beside the "
             "paper's number, then the curves behind each table. Made by `python -m experiments.dashboard "
             f"{dash.paper}` from `experiments/{dash.paper}/*.yaml`"
             + (f" and `experiments/{dash.paper}/dashboard.py`." if dash.spec else " (default panels: no dashboard.py)."))
    blocks = [wr.MarkdownBlock(intro)]
    if dash.commands:
        blocks.append(wr.MarkdownBlock("\n".join(["How the runs were made:", "", "```bash", *dash.commands, "```"])))
    blocks.append(wr.TableOfContents())
    for section in dash.sections:
        blocks += _section_blocks(dash.paper, section, entity if project else "", project if entity else "")
    return wr.Report(entity=entity, project=project, title=f"reprolab: {dash.paper} tables",
                     description=f"Paper tables of {dash.paper}, ours beside the paper's, with the curves behind them.",
                     blocks=blocks, width="fluid")


def spec_json(rep) -> dict:
    """The report in W&B's own form: what `Report.save` uploads as the view's spec."""
    model = rep._to_model()
    return {"displayName": model.display_name, "description": model.description,
            "project": {"entityName": model.project.entity_name, "name": model.project.name},
            "spec": json.loads(model.spec.model_dump_json(by_alias=True, exclude_none=True))}


def panel_keys(dash: Dashboard) -> list[tuple[str, Key]]:
    """``(where, key)`` for every metric or config key a panel or a run set of ``dash`` reads from the paper's runs
    (the report-run keys are `report_keys`)."""
    out = []
    for s in dash.sections:
        for i, p in enumerate(s.plots):
            where = f"{s.table.name}: {p.kind} plot {p.label!r}"
            out += [(where, k) for k in p.keys()]
            out += [(f"{where} groupby", Key("config", config_key(g))) for g in p.groupby]
    return out


def missing(dash: Dashboard, logged) -> list[str]:
    """Every panel key that ``logged`` (`wandb_file.Logged`: what the paper's runs logged) lacks, with where it is
    read: an empty list means no panel of ``dash`` would come up empty for want of its key."""
    have = {"history": logged.history, "summary": logged.summary, "config": logged.config}
    return [f"{where}: {key}" for where, key in panel_keys(dash) if key.name not in have[key.section]]
