from django import forms

from product.inference.models import RequestPriority
from product.inference.registry import REGISTRY, default_model
from product.inference.specs import ModelSpec


class SubmitForm(forms.Form):
    """A request for one model: its model, the model's own input fields (``spec.form_fields``)
    and a priority. The page offers one such form per model (``?model=<name>``)."""

    model = forms.CharField(widget=forms.HiddenInput)
    priority = forms.ChoiceField(
        choices=[("", "By size"), *RequestPriority.choices], required=False,
        help_text="Interactive runs before bulk. By size: interactive for a few inputs, bulk above.",
    )

    def __init__(self, data=None, *, spec: ModelSpec) -> None:
        super().__init__(data, initial={"model": spec.name})
        self.spec = spec
        fields = spec.form_fields()
        self.input_names = list(fields)
        self.fields = {"model": self.fields["model"], **fields, "priority": self.fields["priority"]}

    @staticmethod
    def spec_for(name: str | None) -> ModelSpec:
        """The spec the form is for: the named model's, the first model's if none or unknown."""
        return REGISTRY.get(name or "") or REGISTRY[default_model()]

    def input_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.input_names]

    def raw_input(self):
        """The request's ``input``, as the API would take it, from the model's fields."""
        return self.spec.form_input(self.cleaned_data)

    def chosen_priority(self) -> str | None:
        """The priority chosen, or None to let the request's size decide."""
        return self.cleaned_data["priority"] or None
