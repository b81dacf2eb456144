from dialer.store import auth_models, models  # noqa: F401 - every table on one metadata
