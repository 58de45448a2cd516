"""The evaluation of one (model, task), as five stages read in order:

1. `plan`   checks the run's settings, resolves each model's budgets, finds every dataset and
            decides which budgets a task still needs (a stored result is extended, not redone);
2. `data`   loads the task and lays it out for scoring (each distinct item once, candidates in
            trec_eval's tie order);
3. `encode` embeds the distinct items through the cache (locally or across torch.distributed
            ranks) and yields one set of embeddings per budget;
4. `score`  ranks with the evaluator of the task's kind (a shared corpus, exact or through an
            index, or a candidate list per query) and computes the metrics;
5. `record` turns scores into a budget row (metrics, cost, groups, per-query scores, TREC run
            files) and the rows into the task's result record.

`harness.evaluation.run` strings them together for every model and task.
"""
