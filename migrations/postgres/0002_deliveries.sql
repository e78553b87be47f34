-- How far each user's private channel has been delivered over a WebSocket:
-- an authenticated connection resumes `user:{id}` after this `seq`, so an
-- offline user receives what happened meanwhile, in order, once.
CREATE TABLE deliveries (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    seq     BIGINT NOT NULL CHECK (seq >= 0)
);
