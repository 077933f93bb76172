from django import forms

from product.inference.models import RequestPriority
from product.inference.specs import DEFAULT_MODEL, REGISTRY


class SubmitForm(forms.Form):
    model = forms.ChoiceField(
        choices=[(spec.name, spec.title) for spec in REGISTRY.values()], initial=DEFAULT_MODEL
    )
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "One text per line"}),
        help_text="One text per line; each line becomes one input.",
        strip=False,
    )
    priority = forms.ChoiceField(
        choices=[("", "By size"), *RequestPriority.choices], required=False,
        help_text="Interactive runs before bulk. By size: interactive for a few texts, bulk above.",
    )

    def texts(self) -> list[str]:
        return [line for line in self.cleaned_data["text"].splitlines() if line.strip()]

    def chosen_priority(self) -> str | None:
        """The priority chosen, or None to let the request's size decide."""
        return self.cleaned_data["priority"] or None
