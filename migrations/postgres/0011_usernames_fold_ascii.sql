-- A username names one account whatever its case, and names are ASCII;
-- but lower() folds by the database's collation, and under a Turkish one
-- (an ICU tr-TR database, say) it folds 'I' to 'ı': "IVAN" and "ivan"
-- were two accounts, and neither signed in as the other. Under the "C"
-- collation lower() maps A-Z to a-z and nothing else, whatever the
-- database's locale, as the server folds names itself. A database that
-- took such a pair stops here, and the server names them.
DROP INDEX users_username_folded;
CREATE UNIQUE INDEX users_username_folded ON users (lower(username COLLATE "C"));
