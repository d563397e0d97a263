"""The end-of-run summary printed by `mlspec run` (and `make demo`): what was published and how to call it."""

from __future__ import annotations

from mlspec.compiler import task_order
from mlspec.inference_protocol import curl, infer_request
from mlspec.spec import ModelSpec
from mlspec.storage import open_store

# A spec with a rollout whose new version lost to production: the champion gate runs first, so no step ran.
NO_ROLLOUT = {"state": "not_run", "steps": [], "note": "no rollout ran: the champion gate runs first, and a "
              "version that does not beat production is not rolled out"}


def read_summary(spec: ModelSpec, run_id: str) -> dict:
    """The promote task writes summary.json under the run's prefix of the store (deploy writes it when the
    champion holds: then a spec's rollout never began, and the summary says so)."""
    store = open_store(spec.storage.uri, spec.storage.connection)
    summary = store.read_json(f"{store.run_prefix(spec.name, run_id)}/summary.json")
    if summary.get("outcome") == "champion_holds" and spec.rollout is not None:
        summary.setdefault("rollout", NO_ROLLOUT)
    return summary


def rollout_lines(rollout: dict | None) -> list[str]:
    """The summary's rollout block: its final state and one line per step (share, requests, outcome)."""
    if not rollout:
        return []
    if not rollout.get("steps"):
        return [f"  rollout        {rollout.get('note') or rollout.get('state')}"]
    production = rollout.get("production")
    lines = [f"  rollout        {rollout.get('state')}, from production version {production}"]
    for step in rollout["steps"]:
        what = f"{step.get('kind')} {step['percent']}%" if step.get("percent") is not None else str(step.get("kind"))
        done = [f"{step['requests']} requests"] if step.get("requests") is not None else []
        done.append(str(step.get("outcome")) + (f" by {step['by']}" if step.get("by") else ""))
        lines.append(f"    {what:<13}{', '.join(done)}")
    return lines


def curl_command(summary: dict) -> str:
    """The example's request: a table model's published example rows (promote puts the request in the
    summary), else the one test sample as a single input."""
    example = summary["example"]
    request = example.get("request") or infer_request(example["input"], example["shape"])
    return curl(summary["infer_url"], request)


def try_it_line(example: dict) -> str:
    """What the curl below sends and what this model answers for it, beside what the data says: a test
    row's answer may be wrong, and the line must not read as if the wrong class were expected."""
    rows = len(example["request"]["inputs"][0]["data"]) if example.get("request") else 0
    if rows:  # a table model: real test rows, raw values; the label is the class itself
        first = f"{rows} test rows as they are in the data; for the first" if rows > 1 else "a test row as it is in the data; for it"
        if "target" in example:
            return (
                f"Try it: {first} this model answers {example['predicted']:.4g} as its 'prediction' "
                f"(the data says {example['target']:.4g}):"
            )
        return f"Try it: {first} this model answers {example['predicted']} as its 'label' (the data says {example['label']}):"
    if "target" in example:
        return (
            f"Try it: a test sample; this model answers {example['predicted']:.4g} as its 'prediction' "
            f"(the data says {example['target']:.4g}):"
        )
    return (
        f"Try it: a test sample; this model answers class {example['predicted']} as its 'label' (the class's "
        f"index, with its 'probabilities'; the data says class {example['label']}):"
    )


def format_summary(summary: dict, spec_file: str = "") -> str:
    """The summary as printed; `spec_file` (the spec's path) goes into the commands it suggests."""
    if summary.get("outcome") == "champion_holds":
        champion = summary["champion"]
        verdict = (
            "tie: the champion holds (the same score; a challenger must be better by more than min_delta)"
            if champion.get("decision") == "tie" else "the new model did not beat production"
        )
        return "\n".join([
            "",
            f"mlspec: {summary['model']}: {verdict}; nothing was deployed",
            f"  {champion['metric']:<14} new model {champion['challenger']:.4f}, production version "
            f"{champion['champion_version']} {champion['champion']:.4f} (min_delta {champion['min_delta']:g})",
            f"  candidate      version {summary['version']} at {summary['stored_uri']} (registered, not serving)",
            f"  serve it anyway with: mlspec deploy {spec_file or '<spec>'} --version {summary['version']}",
            *rollout_lines(summary.get("rollout")),
        ])
    registry = summary["registry"]
    smoke = summary["smoke_test"]
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in summary["metrics"].items())
    lines = [
        "",
        f"mlspec: {summary['model']} version {summary['version']} is trained, published and serving",
        f"  test metrics   {metrics}",
        f"  model version  {summary['version']}",
        f"  stored at      {summary['stored_uri']}/model.onnx",
        f"  registry       {registry['backend']} model '{registry['model_name']}' version {registry['registry_version']}"
        + (f" ({registry['url']})" if registry.get("url") else ""),
        f"  endpoint       {summary['infer_url']}",
        f"  smoke test     {smoke['samples']} samples, agreement {smoke['agreement']:.3f}, p95 {smoke['p95_ms']:.1f} ms",
        # A summary written before the classes were compared too calls the change "inputs_change".
        *rollout_lines(summary.get("rollout")),
        *([f"  NOTE           {change}"] if (change := summary.get("endpoint_change") or summary.get("inputs_change")) else []),
        "",
        try_it_line(summary["example"]),
        f"  {curl_command(summary)}",
        "",
        "The model server keeps running: `make stop` stops one that make started; one started with `mlspec serve`",
        "stops with Ctrl+C in its terminal.",
    ]
    return "\n".join(lines)


def format_failure(spec: ModelSpec, dag_run) -> str:
    states: dict[str, str] = {}
    for ti in dag_run.get_task_instances():
        # A mapped task (tuning trials) counts as failed when any of its instances failed.
        if states.get(ti.task_id) != "failed":
            states[ti.task_id] = str(ti.state)
    failed = [task for task in task_order(spec) if states.get(task) in ("failed", "upstream_failed")]
    first = next((task for task in failed if states[task] == "failed"), "unknown")
    return (
        f"\nmlspec: the run of {spec.name} did not succeed (state {dag_run.state}); first failed task: {first}.\n"
        f"Tasks not done: {', '.join(failed) or 'none'}. The task's log above says what failed and what to do next."
    )
