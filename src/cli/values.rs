//! Value parsers shared by several flags.

use std::time::Duration;

use crate::bot::money::Decimal;

/// Accepts `500ms`, `5s`, `2m`, `1h 30m`; a bare number or zero is refused.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| "expected a duration with a unit, like 500ms, 5s or 2m".to_owned())?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(duration)
}

/// Accepts a number of bytes, with `KiB`, `MiB` or `GiB` (or `K`, `M`,
/// `G`, the same) after it; at least 1 KiB.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return Err("expected bytes, like 65536, 512KiB, 64MiB or 1GiB".into()),
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(scale))
        .ok_or_else(|| "expected bytes, like 65536, 512KiB, 64MiB or 1GiB".to_owned())?;
    if bytes < 1 << 10 {
        return Err("must be at least 1KiB".into());
    }
    Ok(bytes)
}

/// An exact decimal above zero (see [`parse_decimal`]).
pub(crate) fn parse_positive<K>(text: &str) -> Result<Decimal<K>, String> {
    match parse_decimal(text)? {
        value if value.is_positive() => Ok(value),
        _ => Err("must be above zero".into()),
    }
}

/// An exact decimal of zero or more (`10000`, `0.5`, `1e3`): the digits
/// given, never read through a float, at most 18 after the point.
pub(crate) fn parse_decimal<K>(text: &str) -> Result<Decimal<K>, String> {
    match Decimal::parse(text.trim()) {
        Ok(value) if !value.is_negative() => Ok(value),
        Ok(_) => Err("must not be below zero".into()),
        Err(error) => Err(format!(
            "expected a decimal number: {:?} {error}",
            text.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2K"), Ok(2048));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("100").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
