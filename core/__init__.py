"""The small shared core that models/, losses/ and pipeline/ all depend on, and that depends on
none of them: the config schema and its validation, the registry class, user-facing errors."""
