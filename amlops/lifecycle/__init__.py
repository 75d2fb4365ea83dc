"""The lifecycle over registry and serving: pipeline, published pipelines, release, retirement, efficacy, migration."""
