//! A duration in whole seconds as a JSON body gives it.
//!
//! JSON (RFC 8259) has one number type: `236` and `236.0` are the same number, and JSON Schema
//! calls both an `integer`. JavaScript clients send whichever their number prints as, so a
//! whole-number float is taken as the integer it is. A fraction (`1.5`) or a negative number is
//! not a count of seconds: it is refused as an invalid field (`422`, naming it), like any other
//! value out of range, not as malformed JSON (`400`): the JSON is fine, the value is not.

use serde::{Deserialize, Serialize};

/// A JSON number that must be a whole, non-negative count of seconds; see [`Seconds::whole`].
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Seconds(serde_json::Number);

impl Seconds {
    /// The number of seconds, or what is wrong with it (for a [`super::FieldError`] message).
    /// A whole number beyond `u64` saturates: every caller's range check refuses it anyway.
    pub fn whole(&self) -> Result<u64, String> {
        if let Some(seconds) = self.0.as_u64() {
            return Ok(seconds);
        }
        if self.0.is_i64() {
            return Err(format!("must not be negative (got {})", self.0));
        }
        // Neither u64 nor i64: a float (serde_json without arbitrary precision reads integers
        // beyond u64 as floats too).
        let value = self.0.as_f64().unwrap_or(f64::NAN);
        if !value.is_finite() || value.fract() != 0.0 {
            return Err(format!(
                "must be a whole number of seconds (got {})",
                self.0
            ));
        }
        if value < 0.0 {
            return Err(format!("must not be negative (got {})", self.0));
        }
        // Whole and non-negative; `as` saturates at u64::MAX, which no range check accepts.
        Ok(value as u64)
    }
}

impl From<u64> for Seconds {
    fn from(seconds: u64) -> Self {
        Seconds(seconds.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Seconds {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn integers_and_whole_floats_are_the_same_seconds() {
        assert_eq!(parse("236").whole(), Ok(236));
        assert_eq!(parse("236.0").whole(), Ok(236));
        assert_eq!(parse("2.36e2").whole(), Ok(236));
        assert_eq!(parse("-0.0").whole(), Ok(0));
    }

    #[test]
    fn fractions_and_negatives_are_refused_with_the_value() {
        let fraction = parse("1.5").whole().unwrap_err();
        assert!(
            fraction.contains("whole number") && fraction.contains("1.5"),
            "{fraction}"
        );
        let negative = parse("-3").whole().unwrap_err();
        assert!(negative.contains("negative"), "{negative}");
        assert!(parse("-3.0").whole().unwrap_err().contains("negative"));
    }

    #[test]
    fn whole_numbers_beyond_u64_saturate_for_the_range_check() {
        assert_eq!(parse("1e30").whole(), Ok(u64::MAX));
        assert_eq!(parse("18446744073709551616").whole(), Ok(u64::MAX));
    }
}
