-- People erased on request (person.erasure_requested), remembered by keyed hashes and lead ids
-- only. Not part of the projection: `drop` (the rebuild) keeps it, so replaying the topics, where
-- a capture comes before the request and the request itself expires after a day, cannot bring
-- anyone back. The counts are those of the first time the request was honoured (the receipt's).
CREATE TABLE IF NOT EXISTS console_erasures (
    request_id text PRIMARY KEY,
    subject_hash text NOT NULL,
    requested_at timestamptz NOT NULL,
    identifier_hashes text[] NOT NULL,
    lead_ids text[] NOT NULL,
    leads_erased integer NOT NULL,
    events_erased integer NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now()
);
