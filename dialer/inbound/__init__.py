"""Email that listens (docs/architecture.md §9.1): replies, bounces and auto-replies read
from a webhook or an IMAP mailbox, and tracked links."""
