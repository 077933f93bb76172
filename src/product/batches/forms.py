from django import forms

from product.batches.services import batch_models


class BatchUploadForm(forms.Form):
    """The batch page's upload: a file and the model its texts run on."""

    file = forms.FileField(
        help_text="JSONL in OpenAI's batch format, or one text a line (a line beginning with "
        "{ is read as JSON).",
    )
    model = forms.ChoiceField(choices=())

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(spec.name, spec.title) for spec in batch_models()]
