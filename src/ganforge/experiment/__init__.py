"""``ganforge experiment``: answer a question by training every variant of a config over several seeds.

A spec (YAML) holds a base config (any config keys, flat or in ``model:``/``data:``/``train:`` sections),
``vary:`` (config key -> list of values), ``seeds:`` (a count or a list), and optionally ``metrics:`` (what
to evaluate; default: all that apply) and ``description:``. Each combination of the varied values is a
*variant*; each variant trains once per seed into ``OUT/runs/<variant>/seed-<s>/``, an ordinary run folder,
and is then evaluated by :mod:`ganforge.evaluation`. The experiment writes

- ``OUT/results.jsonl``: one row per run (metrics, real-data floors, mode coverage);
- ``OUT/summary.json`` and ``OUT/table.md``: per variant, mean, standard deviation, min and max over seeds,
  and how many seeds covered every mode (and from which step, when the runs evaluate with ``eval_every``);
- ``OUT/report.html``, when the report command is given OUT: the table and a chart per metric with error bars.

Resumable: a run's ``result.json`` is written last and atomically, and marks it done. Running the same
command again skips done runs, continues interrupted ones from their last checkpoint (ganforge's resume,
which gives the numbers of an uninterrupted run) and starts the others. Runs train in worker processes,
``jobs`` at a time with ``threads`` torch threads each (jobs x threads <= cores by default); with one job
they train in this process. Ctrl-C (or SIGTERM) makes every running run finish its step and save a checkpoint.

The modules, each importing only those listed before it: :mod:`~ganforge.experiment.folder` (the folder's
file names), :mod:`~ganforge.experiment.spec` (reading and checking a spec), :mod:`~ganforge.experiment.plan`
(the grid of runs, each config checked), :mod:`~ganforge.experiment.summary` (results.jsonl, summary.json,
table.md), :mod:`~ganforge.experiment.runner` (training and evaluating one run),
:mod:`~ganforge.experiment.pool` (worker processes) and :mod:`~ganforge.experiment.scheduler`
(:func:`~ganforge.experiment.scheduler.run_experiment`). The HTML page is drawn by the report package
(``experiment_page``), which this package never imports.
"""
