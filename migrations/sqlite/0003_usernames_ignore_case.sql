-- A username names one account whatever its case: "Ann" cannot register
-- beside "ann", and either spelling signs in. Usernames are ASCII letters,
-- digits, '_', '-' and '.' (checked before they reach the database), so
-- lower() folds them alike on both backends; logins look names up through
-- this index. A database that already holds two names differing only in
-- case stops here, naming the index: rename one of them and start again.
CREATE UNIQUE INDEX users_username_folded ON users (lower(username));
