-- Version 13 keeps the W3C trace context of the request that created an operation:
-- the traceparent as 25 bytes (trace id, parent span id, flags) and the tracestate as
-- text. Both NULL for an operation created outside any trace, so an untraced row grows
-- by nothing but its header's null bits.
ALTER TABLE operations ADD COLUMN trace_parent BLOB;
ALTER TABLE operations ADD COLUMN trace_state TEXT;
