//! Domain logic behind the admin API that is more than storing and rendering rows: the derived
//! account states, and the typed changes an admin may make to keys and accounts, each field
//! validated as it is read.

pub mod accounts;
pub mod keys;

use serde::{Deserialize, Deserializer};

/// The error "`field` why" of a payload field.
fn invalid<E: serde::de::Error>(field: &str, why: &str) -> E {
    E::custom(format!("`{field}` {why}"))
}

/// Reads a payload field as a `T`, or fails with "`field` why": serde's own messages say what
/// was expected but not which field was wrong.
fn read<'de, D, T>(d: D, field: &str, why: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map_err(|_| invalid(field, why))
}

/// Reads an `is_active` payload field (present means changed).
fn is_active<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    read(d, "is_active", "must be true or false").map(Some)
}
