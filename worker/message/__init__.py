"""The job message: parsing, validation, inputs, the job namespace and pipelines."""
