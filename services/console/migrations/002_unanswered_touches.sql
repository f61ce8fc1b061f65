-- Lead-facing touches delivered since the lead last answered (the manager's "about to be given up").
ALTER TABLE console_leads ADD COLUMN IF NOT EXISTS unanswered_touches integer NOT NULL DEFAULT 0;
