"""The ablations beside a run: post data augmentation's images x copies grid (pda) and the teacher's selection
criteria and soft labels against the paper's method (teacher); each a table of mean +- std over seeds. Their
variants, pool and evaluations are planned in `variants` (read through gendistill.plan.Plan.ablations)."""
