-- No UNIQUE on message_id on purpose: the inbox alone must prevent doubled effects.
CREATE TABLE IF NOT EXISTS effects (
    id          bigserial PRIMARY KEY,
    message_id  text      NOT NULL,
    counter     text      NOT NULL,
    amount      integer   NOT NULL,
    worker      integer   NOT NULL
);
CREATE INDEX IF NOT EXISTS effects_counter ON effects (counter);
