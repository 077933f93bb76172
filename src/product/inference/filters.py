"""What a list of requests is filtered by: one ``RequestFilter`` for the pages, the API, the
operators' bulk actions and the management commands, and the form that reads one from a query
string (``?status=failed&model=…&q=…``), with a message naming each value it refuses.

Ages are measured on PostgreSQL's clock, the one ``created_at`` comes from; dates are days in
the site's time zone, both ends included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now
from django.utils import timezone

from product.inference.models import InferenceRequest, RequestPriority, RequestStatus
from product.inference.registry import REGISTRY

MAX_SEARCH = 200


@dataclass(frozen=True)
class RequestFilter:
    """Requests matching every criterion given (None or empty: not filtered by it)."""

    ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    model: str | None = None
    priority: str | None = None
    owner: str | None = None  # A username.
    error_contains: str | None = None  # In the stored error, ignoring case.
    error_group: str | None = None  # The normalised error (``InferenceRequest.error_key``).
    text_contains: str | None = None  # In any of the inputs' texts, ignoring case.
    created_from: date | None = None
    created_to: date | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None

    def apply(self, requests: QuerySet) -> QuerySet:
        if self.ids:
            requests = requests.filter(pk__in=self.ids)
        if self.statuses:
            requests = requests.filter(status__in=self.statuses)
        if self.model:
            requests = requests.filter(model=self.model)
        if self.priority:
            requests = requests.filter(priority=self.priority)
        if self.owner:
            requests = requests.filter(owner__username=self.owner)
        if self.error_contains:
            requests = requests.filter(error__icontains=self.error_contains)
        if self.error_group:
            requests = requests.filter(error_key=self.error_group)
        if self.text_contains:
            requests = requests.filter(_inputs_contain(self.text_contains))
        if self.created_from is not None:
            requests = requests.filter(created_at__gte=_start_of(self.created_from))
        if self.created_to is not None:
            requests = requests.filter(created_at__lt=_start_of(self.created_to + timedelta(days=1)))
        if self.older_than is not None:
            requests = requests.filter(created_at__lte=Now() - self.older_than)
        if self.newer_than is not None:
            requests = requests.filter(created_at__gte=Now() - self.newer_than)
        return requests

    def query(self) -> dict[str, str]:
        """The query-string parameters ``RequestFilterForm`` reads this filter back from (for
        links to the next page); ids and ages, which the form does not take, are left out."""
        values = {
            "status": ",".join(self.statuses), "model": self.model, "priority": self.priority,
            "owner": self.owner, "error": self.error_contains, "error_group": self.error_group,
            "q": self.text_contains,
            "from": self.created_from and self.created_from.isoformat(),
            "to": self.created_to and self.created_to.isoformat(),
        }
        return {name: value for name, value in values.items() if value}


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _inputs_contain(text: str) -> RawSQL:
    """Whether any string among a request's inputs (at any depth: texts, pairs, labels)
    contains ``text``, ignoring case: a SQL/JSON path whose pattern is taken literally (flag
    ``q``), written as a JSON string, which is also how SQL/JSON paths quote one."""
    path = f"$.** ? (@ like_regex {json.dumps(text, ensure_ascii=False)} flag \"iq\")"
    return RawSQL(
        f"jsonb_path_exists({InferenceRequest._meta.db_table}.inputs, %s::jsonpath)", [path],
        output_field=BooleanField(),
    )


def _errors(**messages: str) -> dict[str, str]:
    """Error messages worded to follow the parameter's name ("from must be a date …")."""
    return {"max_length": "must be at most %(limit_value)d characters.", **messages}


class RequestFilterForm(forms.Form):
    """A ``RequestFilter`` from a query string; ``owner`` only for those who see everyone's."""

    # One status, or several separated by commas (the API's ``?status=failed,cancelled``).
    status = forms.CharField(
        required=False, widget=forms.Select(choices=[("", "Any status"), *RequestStatus.choices])
    )
    model = forms.ChoiceField(required=False, error_messages=_errors(invalid_choice="must be a known model."))
    priority = forms.ChoiceField(
        choices=[("", "Any priority"), *RequestPriority.choices], required=False,
        error_messages=_errors(invalid_choice=f"must be one of: {', '.join(RequestPriority.values)}."),
    )
    q = forms.CharField(required=False, max_length=MAX_SEARCH, label="Text contains", error_messages=_errors())
    error = forms.CharField(required=False, max_length=MAX_SEARCH, label="Error contains", error_messages=_errors())
    owner = forms.CharField(required=False, max_length=150, error_messages=_errors())
    # A failure group's normalised error (the operations page's "requeue all"); not shown.
    error_group = forms.CharField(required=False, widget=forms.HiddenInput)
    # The query string says "from" and "to" (add_prefix).
    created_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}),
        error_messages=_errors(invalid="must be a date, YYYY-MM-DD."),
    )
    created_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}),
        error_messages=_errors(invalid="must be a date, YYYY-MM-DD."),
    )

    def __init__(self, data=None, *, sees_all: bool = False) -> None:
        super().__init__(data)
        self.fields["model"].choices = [("", "Any model"), *((name, name) for name in REGISTRY)]
        if not sees_all:
            del self.fields["owner"]

    def add_prefix(self, field_name: str) -> str:
        """The query string's names: ``from`` and ``to`` for the date fields."""
        return _FIELD_QUERY_NAMES.get(field_name, field_name)

    def clean_status(self) -> tuple[str, ...]:
        statuses = tuple(s for s in self.cleaned_data["status"].split(",") if s)
        if any(s not in RequestStatus.values for s in statuses):
            raise forms.ValidationError(f"must be one of: {', '.join(RequestStatus.values)}.")
        return statuses

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            raise forms.ValidationError("the date range ends (to) before it starts (from).")
        return cleaned

    def request_filter(self) -> RequestFilter:
        """The filter (call after ``is_valid``)."""
        data = self.cleaned_data
        return RequestFilter(
            statuses=data["status"], model=data["model"] or None,
            priority=data["priority"] or None, owner=data.get("owner") or None,
            error_contains=data["error"] or None, error_group=data["error_group"] or None,
            text_contains=data["q"] or None,
            created_from=data["created_from"], created_to=data["created_to"],
        )

    def error_message(self) -> str:
        """Every refused value, each after its parameter's name, in one line."""
        return " ".join(
            error if name == "__all__" else f"{self.add_prefix(name)} {error}"
            for name, errors in self.errors.items() for error in errors
        )


_FIELD_QUERY_NAMES = {"created_from": "from", "created_to": "to"}
