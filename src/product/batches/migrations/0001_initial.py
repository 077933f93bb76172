"""Batches, their parts and bad lines."""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('inference', '0008_failure_groups'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Batch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('model', models.CharField(max_length=100)),
                ('filename', models.CharField(blank=True, max_length=255)),
                ('status', models.CharField(choices=[('running', 'Running'), ('completed', 'Completed'), ('cancelled', 'Cancelled')], default='running', max_length=16)),
                ('line_count', models.PositiveIntegerField(help_text='Lines read, blank and bad ones included.')),
                ('request_count', models.PositiveIntegerField(help_text='Lines with texts (output lines).')),
                ('text_count', models.PositiveIntegerField(help_text='Texts to embed (rows of the .npy).')),
                ('bad_line_count', models.PositiveIntegerField(default=0)),
                ('part_count', models.PositiveIntegerField()),
                ('parts_fed', models.PositiveIntegerField(default=0, help_text='Parts queued so far (as requests); the next to queue has this index.')),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batches', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name_plural': 'batches',
                'ordering': ['-id'],
            },
        ),
        migrations.CreateModel(
            name='BatchLineError',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('line', models.PositiveIntegerField()),
                ('message', models.TextField()),
                ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='line_errors', to='batches.batch')),
            ],
            options={
                'ordering': ['line'],
            },
        ),
        migrations.CreateModel(
            name='BatchPart',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('index', models.PositiveIntegerField()),
                ('text_start', models.PositiveIntegerField()),
                ('text_count', models.PositiveIntegerField()),
                ('lines', models.JSONField()),
                ('texts', models.JSONField(help_text="Until queued; then the request's inputs.", null=True)),
                ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='parts', to='batches.batch')),
                ('request', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='batch_part', to='inference.inferencerequest')),
            ],
        ),
        migrations.AddIndex(
            model_name='batch',
            index=models.Index(fields=['owner', '-id'], name='batch_owner_recent'),
        ),
        migrations.AddIndex(
            model_name='batch',
            index=models.Index(condition=models.Q(('status', 'running')), fields=['id'], name='batch_running'),
        ),
        migrations.AddIndex(
            model_name='batchlineerror',
            index=models.Index(fields=['batch', 'line'], name='batch_line_error'),
        ),
        migrations.AddConstraint(
            model_name='batchpart',
            constraint=models.UniqueConstraint(fields=('batch', 'index'), name='batch_part_index'),
        ),
    ]
