from django import forms

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

    def texts(self) -> list[str]:
        return [line for line in self.cleaned_data["text"].splitlines() if line.strip()]
