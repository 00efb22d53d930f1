//! Validation hooks run while deserialising, so that an error raised by a
//! section's own rules carries the line of that section (serde-saphyr puts
//! the location of the value being read on a custom error).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::Pos;

/// A config section that checks itself once read.
pub(crate) trait Check {
    /// Records where the section starts in the file.
    fn set_pos(&mut self, _pos: Pos) {}
    /// The section's own validation (no cross-section rules).
    fn check(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// One list element: reads the value with its location, then checks it.
struct Item<T>(T);

impl<'de, T: Deserialize<'de> + Check> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let sp = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let mut v = sp.value;
        v.set_pos(Pos { line: sp.referenced.line(), column: sp.referenced.column() });
        v.check().map_err(D::Error::custom)?;
        Ok(Item(v))
    }
}

/// A list of checked sections; `null` is an empty list.
pub(crate) fn checked_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Check,
{
    let v: Option<Vec<Item<T>>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default().into_iter().map(|i| i.0).collect())
}

/// A single checked section; `null` is the section's default.
pub(crate) fn checked<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Check + Default,
{
    let mut v: T = Option::deserialize(d)?.unwrap_or_default();
    v.check().map_err(D::Error::custom)?;
    Ok(v)
}
