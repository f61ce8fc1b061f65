-- When the lead's cadence next touches it (nurture's lead.stage_changed and notification.requested
-- carry it). The projection reads a new topic for it, so it is refilled from the topics once.
ALTER TABLE console_leads ADD COLUMN IF NOT EXISTS next_touch_at timestamptz;
