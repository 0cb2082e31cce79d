"""The job loop: pull, prepare, execute, record, settle; one place decides each message's fate."""
