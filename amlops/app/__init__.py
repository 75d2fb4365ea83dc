"""The application: the one place that chooses local or Azure, the notebook API, the CI build steps."""
