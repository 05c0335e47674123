-- Cancellation: a request to stop a running or unknown operation, which its worker
-- sees in heartbeat and claim answers. Pending operations are failed at once instead.
ALTER TABLE operations ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
