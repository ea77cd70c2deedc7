"""Configs: experiments composed from YAML and overrides (`loader`), studies (`study`)."""
