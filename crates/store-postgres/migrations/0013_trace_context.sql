-- Version 13 keeps the W3C trace context of the request that created an operation:
-- the traceparent as 25 bytes (trace id, parent span id, flags) and the tracestate as
-- text, appended after the fixed-width columns. Both NULL for an operation created
-- outside any trace: a NULL takes no bytes in the row, only a bit of its null bitmap.
-- Adding nullable columns without a default rewrites nothing.
ALTER TABLE operations ADD COLUMN trace_parent BYTEA;
ALTER TABLE operations ADD COLUMN trace_state TEXT;
