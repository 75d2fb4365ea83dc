"""Core: settings, the doc's configuration files, errors, lineage, tag names, logging. Imports no other layer."""
