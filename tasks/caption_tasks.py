"""Tasks on COCO test images (Karpathy split): caption metrics, CHAIR (Table 5), coverage (Table 2) and the
failure rates before/after stage 2 (Table 3). Synthetic world by default; real COCO through --data-root."""

from __future__ import annotations

from collections.abc import Sequence

from harness.metrics import MetricValue, proportion
from harness.task import ScoreContext, Task, TaskContext
from harness.types import ImageRef, Request, Response
from tasks.data import data_path
from tasks.readers.coco import KARPATHY_SPLITS, KarpathyImage, karpathy_split_images, read_karpathy


class KarpathyTask(Task):
    """Requests over the Karpathy test images (all, or a seeded draw of `max_images`); `dataset.split: val` reads
    the val images instead (`coco_coverage_val`: settings chosen there never read the test split)."""

    def images(self, ctx: TaskContext) -> list[KarpathyImage]:
        ds = self.spec.dataset
        split = ds.get("split", "test")
        if split not in KARPATHY_SPLITS:
            raise ValueError(f"task {self.name}: dataset.split {split!r} is not one of {KARPATHY_SPLITS}")
        images = read_karpathy(data_path(ctx, ds["split_file"]), data_path(ctx, ds["coco_root"]))
        chosen = karpathy_split_images(images, split)
        limit = ds.get("max_images")
        if limit is not None and limit < len(chosen):
            chosen = karpathy_split_images(images, split, n=int(limit), seed=int(ds.get("image_seed", 0)))
        return chosen

    def requests(self, ctx: TaskContext) -> list[Request]:
        self.by_id = {str(img.cocoid): img for img in self.images(ctx)}
        self.ctx = ctx
        return [
            Request(task=self.name, sample_id=sid, prompt=self.spec.prompt,
                    image=ImageRef(source="coco", id=sid, path=str(img.path)), settings=self.spec.generation)
            for sid, img in self.by_id.items()
        ]


class CocoCaptionMetrics(KarpathyTask):
    spec_name = "coco_caption_metrics"

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        from tasks.metrics.caption import caption_metrics

        references = {req.sample_id: list(self.by_id[req.sample_id].captions) for req, _ in pairs}
        candidates = {req.sample_id: resp.text for req, resp in pairs}
        result = caption_metrics(references, candidates)
        out = []
        for name in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"):
            out.append(MetricValue(name, result.get(name), len(pairs),
                                   details={"status": result.get(f"{name}_status", ""),
                                            "tokenizer": str(result.get("tokenizer", ""))}))
        return out


class Chair(KarpathyTask):
    """CHAIRi / CHAIRs / recall / length, with ground truth from COCO instances + reference captions."""

    spec_name = "chair_long"

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        from tasks.metrics.chair import Chair as ChairMetric

        files = [data_path(self.ctx, rel) for rel in self.spec.dataset["annotations"]]
        metric = ChairMetric.from_coco(files, mode=self.spec.dataset.get("chair_mode", "reference"),
                                       cache_dir=self.ctx.cache_dir / "chair")
        result = metric.compute([{"image_id": int(req.sample_id), "caption": resp.text} for req, resp in pairs])
        sfx = result.suffix  # "" in the reference mode; "_fixed" names the quirk-free variant apart
        # CHAIRi is 0/0 when no caption names a COCO object: undefined, and the report says why
        none = {} if result.n_mentions else {"status": f"undefined: no object words in {result.n_captions} captions"}
        return [
            proportion(f"CHAIRi{sfx}", result.n_hallucinated_mentions, result.n_mentions, higher_is_better=False,
                       mode=result.mode, **none),
            proportion(f"CHAIRs{sfx}", result.n_hallucinated_captions, result.n_captions, higher_is_better=False,
                       mode=result.mode),
            proportion(f"recall{sfx}", result.n_recalled, result.n_ground_truth, mode=result.mode),
            MetricValue("length_words", result.mean_length, result.n_captions, higher_is_better=False),
        ]


class ChairShort(Chair):
    spec_name = "chair_short"
