"""A-OKVQA and GQA (paper Tables 4 and 6), on the synthetic world by default or real files via --data-root.

- `aokvqa_mc`: the model writes an answer that `map_to_choice` maps to one of the four choices (the rule
  that decided is recorded per sample); `aokvqa_mc_ll`: the choices are ranked by log-likelihood. Both are
  scored as the official script scores (prediction string equals the correct choice).
- `aokvqa_da`: direct answers, min(1, matches/3) over questions not marked difficult, no normalisation.
- `gqa_testdev`: exact match after the normalisation the spec names (none / llava / lavis), recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from harness.metrics import MetricValue, proportion
from harness.task import ScoreContext, Task, TaskContext
from harness.types import ImageRef, Request, Response
from tasks.data import data_path
from tasks.metrics.vqa import aokvqa_scores, gqa_accuracy, map_to_choice
from tasks.readers.aokvqa import AokvqaQuestion, read_aokvqa
from tasks.readers.gqa import GqaQuestion, read_gqa


class _AokvqaTask(Task):
    def requests(self, ctx: TaskContext) -> list[Request]:
        ds = self.spec.dataset
        questions = read_aokvqa(data_path(ctx, ds["file"]), data_path(ctx, ds["coco_root"]))
        self.questions: dict[str, AokvqaQuestion] = {q.question_id: q for q in questions}
        choices_for_ranking = self.mode == "score_choices"
        return [
            Request(
                task=self.name, sample_id=q.question_id,
                prompt=self.spec.prompt.format(question=q.question, options=", ".join(q.choices)),
                image=ImageRef(source="coco2017", id=str(q.image_id), path=str(q.image_path)),
                settings=self.spec.generation,
                choices=tuple(q.choices) if choices_for_ranking else (),
            )
            for q in questions
        ]

    def _scored(self, pairs: Sequence[tuple[Request, Response]]) -> list[AokvqaQuestion]:
        questions = [self.questions[req.sample_id] for req, _ in pairs]
        if any(q.correct_choice_idx is None for q in questions):
            raise ValueError(f"{self.name}: the questions have no answers (a test split?); score on val")
        return questions


class AokvqaMC(_AokvqaTask):
    spec_name = "aokvqa_mc"

    def predict(self, request: Request, response: Response) -> tuple[str, str]:
        question = self.questions[request.sample_id]
        index, rule = map_to_choice(response.text, list(question.choices))
        return (question.choices[index] if index is not None else ""), rule

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        questions = self._scored(pairs)
        predictions, rules = {}, Counter()
        for req, resp in pairs:
            choice, rule = self.predict(req, resp)
            predictions[req.sample_id] = {"multiple_choice": choice}
            rules[rule] += 1
        mc = aokvqa_scores(questions, predictions)["multiple_choice"]
        return [proportion("mc_accuracy", int(mc["k"]), mc["n"], mapping=self.mapping_description(),
                           mapping_rules=dict(sorted(rules.items())), not_a_choice=mc["not_a_choice"])]

    def mapping_description(self) -> str:
        return "generate, then map_to_choice (tasks/metrics/vqa.py)"


class AokvqaMCRanked(AokvqaMC):
    spec_name = "aokvqa_mc_ll"

    def predict(self, request: Request, response: Response) -> tuple[str, str]:
        scores = response.choice_logprobs or ()
        if not scores:
            return "", "no scores"
        best = max(range(len(scores)), key=scores.__getitem__)
        return request.choices[best], "log-likelihood"

    def mapping_description(self) -> str:
        return "choices ranked by summed log-likelihood"


class AokvqaDA(_AokvqaTask):
    spec_name = "aokvqa_da"

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        questions = self._scored(pairs)
        predictions = {req.sample_id: {"direct_answer": resp.text.strip()} for req, resp in pairs}
        da = aokvqa_scores(questions, predictions, per_question=True)["direct_answer"]
        scores = list(da["per_question"].values())
        if not scores:
            return [MetricValue("da_accuracy", None, 0, details={"status": da.get("status", "")})]
        # credits are multiples of 1/3, not successes: a normal interval on the mean, not a binomial one
        mean = sum(scores) / len(scores)
        sd = (sum((x - mean) ** 2 for x in scores) / max(len(scores) - 1, 1)) ** 0.5
        half = 1.96 * sd / len(scores) ** 0.5
        return [MetricValue("da_accuracy", mean, len(scores), max(0.0, mean - half), min(1.0, mean + half),
                            details={"scored_on": "questions not marked difficult", "normalisation": "none",
                                     "interval": "normal 95% on per-question credit"})]


class GqaTestdev(Task):
    spec_name = "gqa_testdev"

    def requests(self, ctx: TaskContext) -> list[Request]:
        ds = self.spec.dataset
        questions = read_gqa(data_path(ctx, ds["file"]), data_path(ctx, ds["images"]))
        self.questions: dict[str, GqaQuestion] = {q.question_id: q for q in questions}
        return [
            Request(task=self.name, sample_id=q.question_id, prompt=self.spec.prompt.format(question=q.question),
                    image=ImageRef(source="gqa", id=q.image_id, path=str(q.image_path)),
                    settings=self.spec.generation)
            for q in questions
        ]

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        normalize = self.spec.dataset.get("normalize", "none")
        questions = [self.questions[req.sample_id] for req, _ in pairs]
        predictions = {req.sample_id: resp.text for req, resp in pairs}
        result = gqa_accuracy(questions, predictions, normalize)
        return [proportion("accuracy", int(result["k"]), result["n"], normalize=normalize,
                           normalize_detail=result["normalize_detail"])]
