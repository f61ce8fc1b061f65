-- The console's read model. Everything here is rebuilt from the topics (`leadpipe console rebuild`).
CREATE TABLE IF NOT EXISTS console_events (
    event_id text PRIMARY KEY,
    type text NOT NULL,
    time timestamptz NOT NULL,
    lead_id text,
    trigger_event_id text,
    summary text NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS console_events_lead ON console_events (lead_id, time);
CREATE INDEX IF NOT EXISTS console_events_trigger ON console_events (trigger_event_id);

CREATE TABLE IF NOT EXISTS console_leads (
    lead_id text PRIMARY KEY,
    name text, email text, phone text, company text, country text, source_kind text,
    grade text, score double precision, reasons jsonb NOT NULL DEFAULT '[]',
    core_account boolean NOT NULL DEFAULT false,
    stage text NOT NULL, stage_reason text,
    team text, rep_id text, rep_name text, assignment_id text, assignment_status text,
    accept_by timestamptz, captured_at timestamptz, assigned_at timestamptz, alerted_at timestamptz,
    accepted_at timestamptz, last_contact_at timestamptz, last_outcome text, queued_at timestamptz,
    sla_breached boolean NOT NULL DEFAULT false, updated_at timestamptz
);
CREATE INDEX IF NOT EXISTS console_leads_rep ON console_leads (rep_id);
