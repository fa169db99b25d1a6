"""Judged tasks: caption coverage (Table 2), and the judge proxies of the human-rated Tables 1 and 3.

Coverage is the paper's own judged metric: one ground-truth caption per image (drawn with the spec's
`reference_seed`, recorded), the paper's exact prompt, strict yes/no parsing; unparseable and failed
verdicts are counted apart and never read as "no". Tables 1 and 3 were counted by people in the paper;
here a judge gives a proxy figure that is always named and labelled as a proxy, and the human figure stays
"awaiting ratings" until rating campaigns (human_eval) fill it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from harness.judges import NO, YES
from harness.judges.prompts import coverage_prompt, failure_prompt, request_met_prompt
from harness.metrics import MetricValue, proportion
from harness.task import ScoreContext, Task, TaskContext
from harness.types import ImageRef, Request, Response
from tasks.caption_tasks import KarpathyTask
from tasks.data import data_path
from tasks.readers.advanced import read_advanced_manifest

AWAITING = "awaiting human ratings (mgbench rate)"


def _ask(name: str, prompts: list[str], context: ScoreContext | None) -> list:
    """The judge's verdicts on `prompts` (one per scored pair, in order)."""
    if context is None or context.judge is None:
        raise ValueError(f"{name}: this task needs a judge (run it through the runner, or `mgbench judge`)")
    return context.judge(prompts, context.keys)


def _judged(name: str, prompts: list[str], pairs: Sequence[tuple[Request, Response]], context: ScoreContext | None,
            *, success: str, higher_is_better: bool, verdicts: list | None = None, **details) -> list[MetricValue]:
    """Ask the judge (or take its `verdicts`); k = verdicts equal to `success` among the yes/no verdicts; other
    states counted apart."""
    verdicts = _ask(name, prompts, context) if verdicts is None else verdicts
    states = Counter(v.verdict for v in verdicts)
    decided = states[YES] + states[NO]
    about = {"judge": context.judge_name, "judge_label": context.judge_label, "is_proxy": context.is_proxy,
             "unparseable": states["unparseable"], "errors": states["error"], "not_judged": states["not_judged"],
             "verbose": sum(v.verbose for v in verdicts), **details}
    return [proportion(name, states[success], decided, higher_is_better=higher_is_better, **about),
            MetricValue("judge_unparseable", float(states["unparseable"]), len(verdicts), higher_is_better=False,
                        details={"judge": context.judge_name})]


class CocoCoverage(KarpathyTask):
    spec_name = "coco_coverage"

    def reference_caption(self, sample_id: str) -> str:
        captions = self.by_id[sample_id].captions
        seed = self.spec.dataset.get("reference_seed", 0)
        return captions[random.Random(f"{seed}:{sample_id}").randrange(len(captions))]

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        references = [self.reference_caption(req.sample_id) for req, _ in pairs]
        prompts = [coverage_prompt(ref, resp.text) for ref, (_, resp) in zip(references, pairs, strict=True)]
        verdicts = _ask("coverage", prompts, context)
        seed = self.spec.dataset.get("reference_seed", 0)
        return [*_judged("coverage", prompts, pairs, context, success=YES, higher_is_better=True, verdicts=verdicts,
                         reference_seed=seed),
                *coverage_breakdown(references, [resp.text for _, resp in pairs], [v.verdict for v in verdicts])]


def coverage_breakdown(references: Sequence[str], texts: Sequence[str], verdicts: Sequence[str]) -> list[MetricValue]:
    """Where coverage is won: the paper's reading is that a detailed description covers references naming several
    objects that a short caption leaves out. Objects are COCO categories read as CHAIR reads them (synonyms, plurals,
    two-word names; `rule_judge.read_caption`), whichever judge gave the verdicts:
    - `coverage_one_object` / `coverage_several_objects`: coverage among references naming at most one category
      and among those naming two or more (the yes/no verdicts only, as `coverage`);
    - `objects_named`: distinct categories an answer names, on average over every answer scored."""
    from harness.judges.rule_judge import read_caption

    reading = "COCO categories read as CHAIR reads them (synonyms, plurals, two-word names)"
    groups: dict[bool, Counter] = {False: Counter(), True: Counter()}
    for reference, verdict in zip(references, verdicts, strict=True):
        if verdict in (YES, NO):
            groups[len(read_caption(reference)[0]) >= 2][verdict] += 1
    named = [len(read_caption(text)[0]) for text in texts]
    split = [proportion(name, groups[several][YES], groups[several][YES] + groups[several][NO],
                        references=f"naming {which} object categories", objects=reading)
             for name, several, which in (("coverage_one_object", False, "at most one"),
                                          ("coverage_several_objects", True, "two or more"))]
    return [*split, MetricValue("objects_named", sum(named) / len(named) if named else None, len(named),
                                higher_is_better=True, details={"objects": reading})]


class CocoCoverageVal(CocoCoverage):
    """Table 2's coverage on the Karpathy val split: for choosing settings without reading the test split."""

    spec_name = "coco_coverage_val"


class _HumanRated:
    """Tables 1 and 3: a judge proxy now, the human figure once people have rated."""

    proxy_metric: str
    success: str
    higher_is_better: bool

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        prompts = [self.proxy_prompt(req, resp) for req, resp in pairs]
        if context is not None and context.store is not None:  # people's majority verdicts, once they rated
            from human_eval.results import human_metric

            human = human_metric(context.store, context.model, self.name)
        else:
            human = MetricValue(self.proxy_metric.replace("_judge_proxy", "_human"), None, 0,
                                higher_is_better=self.higher_is_better, details={"status": AWAITING})
        return [*_judged(self.proxy_metric, prompts, pairs, context, success=self.success,
                         higher_is_better=self.higher_is_better), human]


class FailureCaption(_HumanRated, KarpathyTask):
    """Table 3: how often the answer fails (empty, repetitive, incoherent, not English, an apology, off the request)."""

    spec_name = "failure_caption"
    proxy_metric = "failure_rate_judge_proxy"
    success = YES  # "yes, it is a failure"
    higher_is_better = False

    def proxy_prompt(self, request: Request, response: Response) -> str:
        return failure_prompt(self.spec.prompt, response.text)


class FailurePoem(FailureCaption):
    spec_name = "failure_poem"


class AdvancedMeme(_HumanRated, Task):
    """Table 1: the advanced tasks on their 25 images each (the manifest names image and task)."""

    spec_name = "advanced_meme"
    proxy_metric = "request_met_judge_proxy"
    success = YES
    higher_is_better = True

    def requests(self, ctx: TaskContext) -> list[Request]:
        ds = self.spec.dataset
        items = [i for i in read_advanced_manifest(data_path(ctx, ds["manifest"])) if i.task == ds["task"]]
        return [Request(task=self.name, sample_id=item.image, prompt=self.spec.prompt,
                        image=ImageRef(source="advanced", id=item.image, path=str(item.image_path)),
                        settings=self.spec.generation) for item in items]

    def proxy_prompt(self, request: Request, response: Response) -> str:
        return request_met_prompt(self.spec.prompt, response.text)


class AdvancedRecipe(AdvancedMeme):
    spec_name = "advanced_recipe"


class AdvancedAd(AdvancedMeme):
    spec_name = "advanced_ad"


class AdvancedPoem(AdvancedMeme):
    spec_name = "advanced_poem"
