"""The report's warnings: failure signs of the training statistics and of the evaluations, and events."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ganforge.report.run_record import RunRecord
from ganforge.runs.metrics_log import events
from ganforge.train.diagnostics import (
    COLLAPSE_FRACTION,
    DIVERSITY_KEY,
    FID_RISING_EVALS,
    LOW_QUALITY_SHARE,
    STARVED_D_FAKE,
    WON_D_LOSS,
    FailureSign,
    detect_failure_signs,
    evaluation_signs,
)


def warnings_section(records: Sequence[RunRecord]) -> str:
    """The failure signs of each run, its events (rollbacks, warnings), and a note where quality was not measured."""
    esc = html.escape
    items = []
    for record in records:
        prefix = f"<b>{esc(record.label)}</b>: " if len(records) > 1 else ""
        if not record.rows:
            items.append(f'<li class="warning">{prefix}no metrics.jsonl rows: the run logged nothing yet</li>')
        for sign in _failure_signs(record):
            items.append(f'<li class="warning" data-kind="{esc(sign.kind)}">{prefix}{esc(sign.message)}</li>')
        for event in events(record.rows):
            details = ", ".join(f"{key} {value}" for key, value in event.items() if key not in ("step", "event"))
            items.append(f'<li class="event">{prefix}{esc(str(event["event"]))} at step {esc(str(event["step"]))}'
                         f'{": " + esc(details) if details else ""}</li>')
    checks = (f"Checked: the generator starved (D(G(z)) below {STARVED_D_FAKE}), the discriminator won "
              f"(D loss below {WON_D_LOSS}), each for many log rows in a row, and mode collapse (sample "
              f"diversity below {COLLAPSE_FRACTION:.0%} of its peak, where the run logs <code>{DIVERSITY_KEY}</code>); "
              "from the last evaluation: modes or classes lost, samples between the modes (high-quality share "
              f"below {LOW_QUALITY_SHARE:.0%} of the real data's), FID rising at {FID_RISING_EVALS} evaluations "
              "in a row.")
    unmeasured = [record for record in records if not _evaluated(record)]
    if unmeasured:
        names = ", ".join(esc(str(record.path)) for record in unmeasured)
        items.append(f'<li class="note">sample quality not measured for {names}: run <code>ganforge eval RUN</code> '
                     "(or train with --eval-every N), then report again</li>")
    if not items:
        return f'<p class="ok">No known failure signs.</p><p class="note">{checks}</p>'
    return f'<ul class="warnings">{"".join(items)}</ul><p class="note">{checks}</p>'


def _evaluated(record: RunRecord) -> bool:
    return record.evaluation is not None or any(_evaluated_row(row) for row in record.rows)


def _evaluated_row(row: dict[str, Any]) -> bool:
    """Whether a log row carries an evaluation's results (--eval-every)."""
    return "modes_covered" in row or "fid" in row


def _failure_signs(record: RunRecord) -> list[FailureSign]:
    """The signs of the log rows; those of the evaluations from eval.json where it is newer than the last
    evaluated log row (``ganforge eval`` after training), else from the rows."""
    evaluated_steps = [row["step"] for row in record.history if _evaluated_row(row)]
    evaluation = record.evaluation
    newer = (evaluation is not None and isinstance(evaluation.get("step"), int)
             and evaluation["step"] >= max(evaluated_steps, default=-1))
    signs = detect_failure_signs(record.rows, record.run_config, evaluations=not newer)
    if newer:
        assert evaluation is not None
        signs += evaluation_signs([evaluation], record.run_config)
    return signs
