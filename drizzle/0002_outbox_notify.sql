-- Custom SQL migration: wakes the outbox publisher (src/outbox/) when outbox rows commit.
-- One notification per inserting statement; PostgreSQL delivers it only if and when the transaction commits,
-- and folds identical notifications of one transaction into one. The payload is empty: the publisher reads
-- the table, so a lost or extra notification only changes when it looks, never what it publishes.
CREATE OR REPLACE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('outbox', '');
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify();
