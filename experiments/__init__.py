"""Paper tables: ``experiments/<paper>/<table>.yaml`` say which runs fill which cell and hold the
paper's own numbers; `experiments.report` builds the paper-vs-ours tables from run folders."""
