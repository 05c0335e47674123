-- Cancellation: someone asked to cancel a running or unknown operation; its worker
-- should stop and fail it with CANCELLED (README, "Cancellation").
ALTER TABLE operations ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;
