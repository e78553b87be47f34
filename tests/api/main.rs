//! The REST API end to end, each scenario against SQLite and PostgreSQL.

mod trading;
