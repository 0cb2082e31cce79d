"""What a job leaves: result.json, outputs, formats, events, progress, job state, cancel."""
