"""Every write to a batch: the upload (read line by line, stored in parts), the feed (parts
queued as requests, a few at a time) and the cancel.

A batch's parts become ordinary bulk requests through ``inference.services.request_submit``,
so fair turns, the runners and the queued-texts limit treat them as any other; they take no
token from the user's submit bucket (the upload was the submit). At most
``BATCH_QUEUED_PARTS`` parts of a batch are queued or running at once: the feeder
(``product.batches.feeder``, in every web process) queues the next as parts end. Everything it
needs is in the database (``Batch.parts_fed``, the parts' requests), so a crash or restart of
any process loses nothing: the next look carries on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now

from product.batches import selectors as batch_selectors
from product.batches.lines import BadLine, Line, line_model, read_line
from product.batches.models import Batch, BatchLineError, BatchPart, BatchStatus
from product.inference import services as inference_services
from product.inference.models import ACTIVE_STATUSES, InferenceRequest, RequestPriority
from product.inference.registry import REGISTRY, get_spec
from product.inference.specs import InputError, ModelSpec
from product.quotas import selectors as quota_selectors
from product.quotas.services import LimitExceeded

# Parts written per INSERT while an upload is read: memory stays at a few parts' texts.
_PARTS_PER_WRITE = 8
_READ_CHUNK = 1024 * 1024
_ERRORS_IN_REFUSAL = 5


class BatchRefused(Exception):
    """The upload cannot become a batch (nothing was created); the message says why."""


class BatchStateError(Exception):
    """The batch is not in a state that allows the action; the message says why."""


def batch_models() -> list[ModelSpec]:
    """The models a batch can run: those that return embeddings."""
    return [spec for spec in REGISTRY.values() if getattr(spec, "returns_embeddings", False)]


def _batch_spec(model: str) -> ModelSpec:
    try:
        spec = get_spec(model)
    except InputError as error:
        raise BatchRefused(str(error)) from None
    if spec not in batch_models():
        names = ", ".join(s.name for s in batch_models())
        raise BatchRefused(f"{model} does not return embeddings; a batch runs one of: {names}.")
    return spec


def max_line_bytes() -> int:
    """The longest line read: a line holds at most one request's input, so this is the
    request body limit (longer lines are bad lines, skipped without being held)."""
    return settings.MAX_REQUEST_BODY_BYTES


def file_lines(file: Any, *, max_bytes: int) -> Iterator[bytes | None]:
    """The lines of a binary file, read a chunk at a time; None stands for a line longer than
    ``max_bytes`` (not kept in memory). Line ends are ``\\n`` (a ``\\r`` before it is kept)."""
    pending, too_long = b"", False
    for chunk in iter(lambda: file.read(_READ_CHUNK), b""):
        pieces = chunk.split(b"\n")
        for piece in pieces[:-1]:
            yield None if too_long or len(pending) + len(piece) > max_bytes else pending + piece
            pending, too_long = b"", False
        if not too_long:
            pending += pieces[-1]
            if len(pending) > max_bytes:
                pending, too_long = b"", True
    if too_long:
        yield None
    elif pending:
        yield pending


class _Upload:
    """An upload being read: its parts written as they fill, its bad lines counted."""

    def __init__(self, *, user: Any, model: str | None, filename: str) -> None:
        self.user, self.model, self.filename = user, model, filename
        self.spec: ModelSpec | None = _batch_spec(model) if model is not None else None
        # A part must fit the user's queued-texts limit on its own, or it would wait forever.
        self.max_queued = quota_selectors.usage_of(user=user).max_queued_texts
        if self.max_queued < 1:
            raise BatchRefused(
                "quota exceeded: your account may have no texts queued (max_queued_texts is 0); "
                "ask an operator."
            )
        self.batch: Batch | None = None
        self.lines = self.requests = self.texts = self.bad = self.parts = 0
        self.errors: list[BatchLineError] = []
        self.first_errors: list[str] = []
        self._texts: list[str] = []
        self._lines: list[list] = []
        self._full: list[BatchPart] = []

    def read(self, raw_lines: Iterable[bytes | None]) -> None:
        for number, raw in enumerate(raw_lines, start=1):
            self.lines = number
            try:
                line = self._line(number, raw)
            except BadLine as error:
                self._bad(number, str(error))
                continue
            if line is not None:
                self._add(line)
        self._close_part()
        self._write_parts()

    def _line(self, number: int, raw: bytes | None) -> Line | None:
        if raw is None:
            raise BadLine(f"longer than {max_line_bytes()} bytes.")
        if self.spec is None:  # No model given: the first line that is not blank names it.
            if not raw.strip():
                return None
            named = line_model(raw)
            if named is None:
                raise BatchRefused(
                    "name the model: send the model field, or name it in the body of the "
                    'first line ({"body": {"model": ..., "input": ...}}).'
                )
            self.spec = _batch_spec(named)
        line = read_line(number, raw, spec=self.spec)
        if line is None:
            return None
        if line.model is not None and line.model != self.spec.name:
            raise BadLine(f"model {line.model!r} is not the batch's ({self.spec.name}); a batch runs one model.")
        if len(line.texts) > self.max_queued:
            raise BadLine(
                f"{len(line.texts)} texts, more than the {self.max_queued} you may have queued at "
                "once (max_queued_texts)."
            )
        return line

    def _bad(self, number: int, message: str) -> None:
        self.bad += 1
        if len(self.first_errors) < _ERRORS_IN_REFUSAL:
            self.first_errors.append(f"line {number}: {message}")
        if len(self.errors) < settings.BATCH_MAX_LINE_ERRORS:
            self.errors.append(BatchLineError(line=number, message=message))

    def _add(self, line: Line) -> None:
        if self.texts + len(line.texts) > settings.BATCH_MAX_TEXTS:
            raise BatchRefused(
                f"the file has more than {settings.BATCH_MAX_TEXTS} texts (line {line.number}); "
                "split it into several batches."
            )
        if len(self._texts) + len(line.texts) > min(self.spec.max_texts, self.max_queued):
            self._close_part()
        self._texts.extend(line.texts)
        self._lines.append([line.number, line.custom_id, len(line.texts)])
        self.texts += len(line.texts)
        self.requests += 1

    def _close_part(self) -> None:
        if not self._texts:
            return
        self._full.append(BatchPart(
            index=self.parts, text_start=self.texts - len(self._texts),
            text_count=len(self._texts), lines=self._lines, texts=self._texts,
        ))
        self.parts += 1
        self._texts, self._lines = [], []
        if len(self._full) >= _PARTS_PER_WRITE:
            self._write_parts()

    def _write_parts(self) -> None:
        if not self._full:
            return
        batch = self._batch()
        for part in self._full:
            part.batch = batch
        BatchPart.objects.bulk_create(self._full)
        self._full = []

    def _batch(self) -> Batch:
        """The batch's row, written with its first part (its counts when the file is read)."""
        if self.batch is None:
            self.batch = Batch.objects.create(
                owner=self.user, model=self.spec.name, filename=self.filename[:255],
                line_count=0, request_count=0, text_count=0, part_count=0,
            )
        return self.batch

    def finish(self) -> Batch:
        if not self.texts:
            reasons = "; ".join(self.first_errors) if self.first_errors else "the file is empty"
            raise BatchRefused(f"the file has no text to embed ({reasons}).")
        batch = self._batch()
        for error in self.errors:
            error.batch = batch
        BatchLineError.objects.bulk_create(self.errors)
        batch.line_count, batch.request_count, batch.text_count = self.lines, self.requests, self.texts
        batch.bad_line_count, batch.part_count = self.bad, self.parts
        batch.save(update_fields=[
            "line_count", "request_count", "text_count", "bad_line_count", "part_count",
        ])
        return batch


def batch_create(*, user: Any, file: Any, filename: str, model: str | None = None) -> Batch:
    """Read ``file`` (a binary file object: an upload) line by line into a new batch of
    ``model`` (None: the model the first line names), and queue its first parts.

    The file is read a chunk at a time and its texts written a few parts at a time, in one
    transaction: a refused upload (``BatchRefused``: an unknown model, no text at all, too many
    texts) leaves nothing behind. Bad lines are recorded by number and skipped."""
    upload = _Upload(user=user, model=model, filename=filename)
    with transaction.atomic():
        upload.read(file_lines(file, max_bytes=max_line_bytes()))
        batch = upload.finish()
    batch_feed(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def batch_feed(*, batch_id: int) -> int:
    """Queue the next parts of a running batch, up to ``BATCH_QUEUED_PARTS`` queued or running,
    and mark it completed once every part has ended. Returns the parts queued.

    The batch's row is locked, skipping one another process is feeding (SKIP LOCKED), so
    concurrent feeders never queue a part twice. A part the user's queued-texts limit does not
    admit now waits for the next look."""
    with transaction.atomic():
        batch = (
            Batch.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=batch_id, status=BatchStatus.RUNNING).select_related("owner").first()
        )
        if batch is None:
            return 0
        active = InferenceRequest.objects.filter(
            batch_part__batch=batch, status__in=ACTIVE_STATUSES
        ).count()
        room = settings.BATCH_QUEUED_PARTS - active
        fed = 0
        if room > 0 and batch.parts_fed < batch.part_count:
            parts = BatchPart.objects.filter(batch=batch, index__gte=batch.parts_fed).order_by("index")
            for part in parts[:room]:
                try:
                    part.request = inference_services.request_submit(
                        user=batch.owner, model=batch.model, raw_input=part.texts,
                        priority=RequestPriority.BULK, metered=False,
                    )
                except LimitExceeded:
                    break  # Over the user's queued-texts limit: the next look tries again.
                part.texts = None  # Its texts now live in the request's inputs.
                part.save(update_fields=["request", "texts"])
                fed += 1
        batch.parts_fed += fed
        fields = ["parts_fed"]
        if batch.parts_fed == batch.part_count and active == 0 and fed == 0:
            batch.status, batch.finished_at = BatchStatus.COMPLETED, Now()
            fields += ["status", "finished_at"]
        if len(fields) > 1 or fed:
            batch.save(update_fields=fields)
    return fed


def batches_feed() -> int:
    """``batch_feed`` for every batch that needs it now (``selectors.batches_to_feed``: two
    statements however many batches run); the parts queued."""
    waiting = batch_selectors.batches_to_feed(queued_parts=settings.BATCH_QUEUED_PARTS)
    return sum(batch_feed(batch_id=batch_id) for batch_id in waiting)


def batch_cancel(*, batch: Batch) -> Batch:
    """Cancel a running batch: no more parts are queued, its queued and running parts are
    cancelled; the parts that finished keep their results."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status != BatchStatus.RUNNING:
            raise BatchStateError(f"batch {batch.pk} is already {batch.status}.")
        batch.status, batch.finished_at = BatchStatus.CANCELLED, Now()
        batch.save(update_fields=["status", "finished_at"])
        BatchPart.objects.filter(batch=batch, request__isnull=True).update(texts=None)
    active = InferenceRequest.objects.filter(batch_part__batch=batch, status__in=ACTIVE_STATUSES)
    for request in active:
        try:
            inference_services.request_cancel(request=request)
        except inference_services.RequestStateError:
            pass  # It finished meanwhile: its results stay.
    batch.refresh_from_db()
    return batch
