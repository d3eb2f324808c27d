-- Messages of failed runs whose write to the message-store was not confirmed (the store went away before
-- answering, so the write may or may not have committed). Each is settled as failed in the message-store
-- once it answers again (POST /internal/messages/failed), then removed from here. `message` is the
-- MessageInput as JSON text (text, not jsonb: a lone surrogate in user input is kept as JSON escapes).
CREATE TABLE unconfirmed_messages (
  tenant_id   text COLLATE "C" NOT NULL,
  id          uuid NOT NULL,
  message     text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE INDEX unconfirmed_messages_recorded ON unconfirmed_messages (recorded_at);
