//! Domain logic behind the admin API that is more than storing and rendering rows.

pub mod accounts;
